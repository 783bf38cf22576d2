"""The IPG pipeline's lifecycle and where the app runs: loading it once per process, the GPU
policy of each kind of host, and running it with per-step previews.

Where the app runs (:func:`hosting`): on this machine ("local"), a CPU Space ("cpu-space": the
oracle by default, IPG on the CPU only if the owner sets ``POSE2ID_CPU=1``), a ZeroGPU Space
("zero-gpu", ``SPACES_ZERO_GPU`` set: the pipeline is loaded at start-up and moved to CUDA, and
each generation asks ``spaces.GPU`` for a time slot sized by steps x poses,
:func:`gpu_duration`), or a Space with a dedicated GPU ("gpu-space").
"""

import logging
import math
import os
import queue
import sys
import threading
from dataclasses import dataclass

# GPUs with less memory than this start in the pipeline's low-memory mode (POSE2ID_LOW_MEMORY=1
# forces it): the two float16 UNets alone take 3.4 GB.
LOW_MEMORY_BELOW_GIB = 12


@dataclass
class GenerateConfig:
    """How IPG is obtained: ``test_pipeline`` injects ``pose2id.ipg.tiny_pipeline()``;
    otherwise the official weights are read from ``ckpt_dir`` (or the Hub cache / the Hub).
    ``allow_cpu`` (the app's ``--cpu``) runs IPG on a machine without a CUDA GPU, in float32:
    many minutes per image."""

    ckpt_dir: str = None
    test_pipeline: bool = False
    allow_cpu: bool = False


LOCAL, CPU_SPACE, ZERO_GPU, GPU_SPACE = "local", "cpu-space", "zero-gpu", "gpu-space"
# The time slot asked of ZeroGPU for one generation: start-up plus a share per pose per step
# (reference + denoising UNet with classifier-free guidance at 256x512), within ZeroGPU's bounds.
GPU_SECONDS_FIXED = 20
GPU_SECONDS_PER_POSE_STEP = 0.25
GPU_SECONDS_MIN, GPU_SECONDS_MAX = 30, 300


def on_spaces():
    """Whether the app runs on a Hugging Face Space (``SPACE_ID`` is set there)."""
    return bool(os.environ.get("SPACE_ID"))


# the words an on/off environment variable takes (lower case; unset reads as off)
SWITCH_ON = ("1", "true", "yes", "on")
SWITCH_OFF = ("", "0", "false", "no", "off")


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in SWITCH_OFF


def on_zero_gpu():
    """Whether the app runs on ZeroGPU (``SPACES_ZERO_GPU`` set, and not to a :data:`SWITCH_OFF` word).
    Imports nothing: ``app.py`` asks before importing torch, as ``spaces`` needs."""
    return _flag("SPACES_ZERO_GPU")


def hosting():
    """Where the app runs: LOCAL (no ``SPACE_ID``), ZERO_GPU (``SPACES_ZERO_GPU`` set: the GPU
    exists only inside ``@spaces.GPU`` calls), GPU_SPACE (a Space whose machine has CUDA) or
    CPU_SPACE (any other Space: the free tier)."""
    if on_zero_gpu():
        return ZERO_GPU
    if not on_spaces():
        return LOCAL
    import torch

    return GPU_SPACE if torch.cuda.is_available() else CPU_SPACE


def gpu_duration(config, photo, poses, steps, guidance, seed, names=None):
    """Seconds to ask ZeroGPU for one generation of ``len(poses)`` poses in ``steps`` steps
    (the arguments of :func:`run_ipg`, as ``spaces.GPU(duration=...)`` passes them)."""
    seconds = GPU_SECONDS_FIXED + GPU_SECONDS_PER_POSE_STEP * max(1, len(poses)) * max(1, int(steps))
    return int(min(GPU_SECONDS_MAX, max(GPU_SECONDS_MIN, math.ceil(seconds))))


_GPU_TASKS = {}


def gpu_task():
    """:func:`run_ipg` as ZeroGPU runs it: wrapped by ``spaces.GPU(duration=gpu_duration)`` of
    the ``spaces`` module imported now (outside ZeroGPU the wrapper is ``spaces``' own no-op;
    without the package, run_ipg itself). Built once per ``spaces`` module."""
    try:
        import spaces
    except ImportError:
        return run_ipg
    module = sys.modules.get("spaces", spaces)
    if id(module) not in _GPU_TASKS:
        _GPU_TASKS[id(module)] = (module, module.GPU(duration=gpu_duration)(_run_ipg))
    return _GPU_TASKS[id(module)][1]


def _run_ipg(config, photo, poses, steps, guidance, seed, names=None):
    """:func:`run_ipg`, looked up when called (the wrapper of :func:`gpu_task` is built once)."""
    yield from run_ipg(config, photo, poses, steps, guidance, seed, names)


def preload_pipeline(config):
    """Load IPG at start-up where a Space will generate with it: on ZeroGPU the weights are read
    and moved to CUDA in the main process, as the ZeroGPU documentation asks (the ``spaces``
    package makes that move take effect inside each ``@spaces.GPU`` call). Returns the pipeline,
    or None when IPG cannot run here (the tab then says why)."""
    try:
        pipeline = load_pipeline(config)
    except IPGUnavailable as error:  # told in the log for the host; the Generate tab tells visitors
        logging.getLogger(__name__).warning("IPG was not loaded at start-up: %s", error)
        return None
    if hosting() == ZERO_GPU and not config.test_pipeline:
        import torch

        pipeline.to("cuda", torch.float16)
    return pipeline


class IPGUnavailable(RuntimeError):
    """IPG cannot run here; the message says why and what to do."""


_PIPELINES = {}
_PIPELINE_LOCK = threading.Lock()


def load_pipeline(config):
    """The IPG pipeline for ``config``, built once per process.

    Raises
    ------
    IPGUnavailable when there is no GPU (outside test mode) or weights are missing.
    """
    key = ("tiny",) if config.test_pipeline else ("official", config.ckpt_dir)
    with _PIPELINE_LOCK:
        if key in _PIPELINES:
            return _PIPELINES[key]
        if config.test_pipeline:
            from pose2id.ipg import tiny_pipeline

            pipeline = tiny_pipeline()
        else:
            pipeline = _load_official(config)
        _PIPELINES[key] = pipeline
        return pipeline


def _load_official(config):
    import torch

    import pose2id.ipg as ipg

    # On ZeroGPU the GPU appears only inside @spaces.GPU calls; the weights load on CPU first.
    zero_gpu = hosting() == ZERO_GPU
    if not torch.cuda.is_available() and not zero_gpu and not config.allow_cpu:
        raise IPGUnavailable(
            "IPG needs a CUDA GPU: this machine has none. Run the app on a GPU machine after "
            "`python -m pose2id download`, or open it on a Hugging Face Space with a GPU (or start it with "
            "`--cpu`: many minutes per image). Meanwhile, pick a SynthPed identity and use the SynthPed oracle."
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        pipeline = ipg.IPGPipeline.from_official(
            ckpt_dir=config.ckpt_dir, device=device, allow_cpu=zero_gpu or config.allow_cpu,
            dtype=torch.float16 if device == "cuda" or zero_gpu else torch.float32)
    except ipg.MissingWeightsError as error:
        raise IPGUnavailable(f"IPG weights are missing. {error}") from None
    except RuntimeError as error:
        raise IPGUnavailable(str(error)) from None
    if device == "cuda" and wants_low_memory(torch.cuda.get_device_properties(0).total_memory):
        pipeline.enable_low_memory()
    return pipeline


def wants_low_memory(gpu_bytes):
    """Start in low-memory mode on a GPU of ``gpu_bytes``? (or when POSE2ID_LOW_MEMORY=1)"""
    return os.environ.get("POSE2ID_LOW_MEMORY") == "1" or gpu_bytes < LOW_MEMORY_BELOW_GIB * 2**30


def run_ipg(config, photo, poses, steps, guidance, seed, names=None):
    """Run IPG and yield ("step", index, previews) after every step, then ("done", images);
    each pose's noise comes from (seed, its name in ``names``; default "1", "2", …), so a pose's
    image does not change when other poses are drawn with it;
    ("note", text) when the GPU ran out of memory and generation started again in the
    pipeline's low-memory mode (which it then keeps).

    The pipeline runs in a worker thread so its step callback can hand previews to this
    generator as they are made. On ZeroGPU the GPU exists only inside this function (called as
    :func:`gpu_task`), so a pipeline not yet there is moved to it here."""
    import torch

    pipeline = load_pipeline(config)
    if torch.cuda.is_available() and pipeline.execution_device.type != "cuda":
        pipeline.to("cuda", torch.float16)
    messages = queue.Queue()
    stopped = threading.Event()  # set when the caller stops listening (the Stop button cancels it)

    def on_step(pipe, index, _timestep, kwargs):
        if stopped.is_set():
            pipe._interrupt = True  # the pipeline skips the remaining steps
        messages.put(("step", index, kwargs["preview"]))
        return {}

    def call():
        from pose2id.ipg import pose_generator

        generators = [pose_generator(int(seed), "", name) for name in (names or [str(i + 1) for i in range(len(poses))])]
        return pipeline(photo, poses, num_inference_steps=steps, guidance_scale=guidance,
                        generator=generators, callback_on_step_end=on_step)

    def work():
        try:
            try:
                out = call()
            except torch.OutOfMemoryError:
                if pipeline.low_memory:
                    raise
                pipeline.enable_low_memory()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                messages.put(("note", "The GPU ran out of memory: started again in low-memory mode (slower)."))
                out = call()
            messages.put(("done", out.images))
        except Exception as error:  # handed to the caller, which reports it
            messages.put(("error", error))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while True:
            item = messages.get()
            if item[0] == "error":
                raise item[1]
            yield item
            if item[0] == "done":
                return
    finally:
        stopped.set()
