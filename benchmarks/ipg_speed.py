"""IPG generation speed: the reference code's structure against IPGPipeline's fast path.

Full-size models (two SD-1.5 UNets, sd-vae-ft-mse, TransReID ViT-B, PoseGuider, IFR) with random
weights (speed does not depend on the values); 8 poses at 512x256, 20 DDIM steps, guidance 3.5.

* reference structure: float32, one call per pose, nothing cached (grey-image ReID, VAE encode
  and reference UNet pass on every call), one image decoded at a time. The official code also
  runs its reference UNet on the unconditional rows and their self-attention twice, so its real
  time is somewhat above this one.
* ours: float16 (and bfloat16), all poses in one batch, reference pass once on the conditional
  rows, reference keys/values projected once, unconditional tokens cached, SDPA attention.
* ours + channels_last: the same with both UNets in channels-last memory format (an experiment:
  not the pipeline's default until measured to help).
* low memory: ours with ``enable_low_memory()`` (models visit the GPU one at a time, 2 poses per
  UNet call, one image per VAE decode), run with PyTorch's allocator capped at 7 GiB
  (``torch.cuda.set_per_process_memory_fraction``; an 8 GB card less its CUDA context and a
  desktop): it either fits or fails with out-of-memory.

    python -m benchmarks.ipg_speed            # on a CUDA GPU
    python -m benchmarks.ipg_speed --compile  # also pipe.compile() (reduce-overhead, max-autotune)

Every row of ours also reports the largest difference of its images to the eager float16 ones
(same initial noise): float16 rounding only, if the variant computes the same thing.
    python -m benchmarks.ipg_speed --tiny     # small models on the CPU, 2 poses, 2 steps: a smoke check, not a timing
"""

import argparse
import gc
import statistics
import time
from contextlib import contextmanager

import numpy as np
import torch
from diffusers import DDIMScheduler
from PIL import Image

from pose2id.configs import load_config
from pose2id.ipg import IPGPipeline, build, tiny_pipeline
from pose2id.poses import load_standard_poses

# An 8 GB card, less what the CUDA context and a desktop take: the allocator's cap is stricter than the card.
LOW_MEMORY_CAP_GIB = 7


def random_pipeline(tiny, device, dtype):
    if tiny:
        return tiny_pipeline(seed=0).to(device, dtype)
    pipeline = IPGPipeline(
        vae=build("vae", device, dtype),
        reference_unet=build("reference_unet", device, dtype),
        denoising_unet=build("denoising_unet", device, dtype),
        pose_guider=build("pose_guider", device, dtype),
        ifr=build("ifr", device, dtype),
        reid=build("transreid", device, dtype),
        scheduler=DDIMScheduler(**load_config("scheduler_config")),
    )
    pipeline.progress = False
    return pipeline


def random_reference():
    """A 256x512 noise 'photo' (the content does not change the timing)."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 256, 3), dtype=np.uint8))


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure(fn, device, repeats):
    """Median wall time (s) over ``repeats`` runs after one warm-up, and peak GPU memory
    (GiB allocated, GiB reserved by the caching allocator) over the timed runs."""
    fn()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peaks = (torch.cuda.max_memory_allocated(device) / 2**30, torch.cuda.max_memory_reserved(device) / 2**30)
    else:
        peaks = (float("nan"), float("nan"))
    return (statistics.median(times), *peaks)


@contextmanager
def capped(device, gib):
    """The process may use at most ``gib`` GiB of the GPU inside this block (no-op on the CPU)."""
    index = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        total = torch.cuda.get_device_properties(index).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2**30 / total), index)
    try:
        yield
    finally:
        if index is not None:
            torch.cuda.set_per_process_memory_fraction(1.0, index)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="small random models on the CPU (smoke check)")
    # --tiny is a smoke check of the script: a few steps of two poses, once, unless asked for more
    parser.add_argument("--poses", type=int, help="poses per call (default 8; 2 with --tiny)")
    parser.add_argument("--steps", type=int, help="DDIM steps (default 20; 2 with --tiny)")
    parser.add_argument("--guidance", type=float, default=3.5)
    parser.add_argument("--repeats", type=int, help="timed runs per row (default 3; 1 with --tiny)")
    parser.add_argument("--skip-reference", action="store_true", help="time only our modes")
    parser.add_argument("--compile", action="store_true",
                        help="also time pipe.compile() with mode reduce-overhead and max-autotune")
    args = parser.parse_args(argv)
    for name, full, tiny in (("poses", 8, 2), ("steps", 20, 2), ("repeats", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)

    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        parser.error("no CUDA GPU: full-size timing needs one (use --tiny for a CPU smoke check)")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the reference runs plain float32
        torch.backends.cudnn.allow_tf32 = False
    half_dtypes = [torch.float32] if device.type == "cpu" else [torch.float16, torch.bfloat16]

    poses = (load_standard_poses() * (args.poses // 8 + 1))[: args.poses]
    reference = random_reference()
    call = dict(num_inference_steps=args.steps, guidance_scale=args.guidance)
    rows = []

    noise = torch.randn(len(poses), 4, 64, 32, generator=torch.Generator().manual_seed(0))
    if args.tiny:
        noise = noise[:, :, :32, :16]
    baseline = {}  # the eager float16 images, for each variant's max difference

    def run_ours(pipeline):
        return lambda: pipeline(reference, poses, latents=noise, output_type="np", **call)

    def row(name, fn, repeats=args.repeats):
        try:
            rows.append((name, *measure(fn, device, repeats)))
            images = fn().images
            if "images" not in baseline and "reference" not in name:
                baseline["images"] = images
            diff = float(np.abs(images - baseline["images"]).max()) if "images" in baseline else float("nan")
            rows[-1] = rows[-1] + (diff,)
        except torch.OutOfMemoryError:
            rows.append((name + " [out of memory]", float("nan"), float("nan"), float("nan"), float("nan")))
        name, seconds, allocated, reserved, diff = rows[-1]
        print(f"  done: {name}: {seconds:.3f} s, peak {allocated:.2f} GiB allocated, {reserved:.2f} GiB reserved, "
              f"max diff to eager {diff:.2e}", flush=True)

    if not args.skip_reference:
        pipeline = random_pipeline(args.tiny, device, torch.float32)

        def reference_structure():
            images = []
            for k, pose in enumerate(poses):
                pipeline._negative_tokens = None  # the reference recomputes the grey-image ReID every call
                images.append(pipeline(reference, [pose], latents=noise[k:k + 1], output_type="np", **call).images)
            return argparse.Namespace(images=np.concatenate(images))

        row("reference structure (fp32, per pose)", reference_structure)
        del pipeline
        free(device)

    for dtype in half_dtypes:
        pipeline = random_pipeline(args.tiny, device, dtype)
        name = str(dtype).split(".")[-1]
        row(f"ours ({name}, batched, cached)", run_ours(pipeline))
        if dtype == half_dtypes[0]:
            pipeline.reference_unet.to(memory_format=torch.channels_last)
            pipeline.denoising_unet.to(memory_format=torch.channels_last)
            row(f"ours ({name}) + channels_last UNets", run_ours(pipeline))
        del pipeline
        free(device)

    pipeline = random_pipeline(args.tiny, device, half_dtypes[0]).enable_low_memory()
    free(device)
    with capped(device, LOW_MEMORY_CAP_GIB):
        row(f"ours, enable_low_memory(), capped at {LOW_MEMORY_CAP_GIB} GiB", run_ours(pipeline), repeats=1)
    del pipeline
    free(device)

    if args.compile:  # last: compiling takes minutes, and every row above is already printed
        for mode in ("reduce-overhead", "max-autotune"):
            pipeline = random_pipeline(args.tiny, device, half_dtypes[0]).compile(mode=mode)
            name = str(half_dtypes[0]).split(".")[-1]
            run_ours(pipeline)()  # warm-up: compiles (and records the CUDA graphs) once
            row(f"ours ({name}) + pipe.compile(mode={mode!r})", run_ours(pipeline))
            del pipeline
            free(device)

    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu (smoke check, not a timing)'}"
          f", torch {torch.__version__}")
    print(f"{len(poses)} poses, {args.steps} steps, guidance {args.guidance}, {'tiny' if args.tiny else 'full-size'} models")
    print(f"{'mode':56s} {'seconds':>8s} {'peak alloc GiB':>15s} {'peak reserved GiB':>18s} {'max diff':>9s}")
    for name, seconds, allocated, reserved, diff in rows:
        print(f"{name:56s} {seconds:8.2f} {allocated:15.2f} {reserved:18.2f} {diff:9.2e}")
    if not args.skip_reference:
        print(f"speed-up of ours ({str(half_dtypes[0]).split('.')[-1]}) over the reference structure: "
              f"{rows[0][1] / rows[1][1]:.1f}x")


if __name__ == "__main__":
    main()
