"""The Generate tab: the same person in new poses, with IPG or (for SynthPed identities) the
oracle generator, streaming a preview of every denoising step.

IPG runs where it can: a CUDA GPU with the official weights (fetched from the Hub on first use
on a Space), or the tiny random-weight pipeline in test mode. Everywhere else the tab says why
it cannot run and offers the SynthPed oracle, which re-renders a synthetic identity exactly and
is labelled as not being a model. The pipeline's lifecycle and GPU policy live in
:mod:`pose2id.demo.ipg_runner`, seeds and poses in :mod:`pose2id.demo.seeds`, pictures and the
zip in :mod:`pose2id.demo.compositing`.
"""

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from pose2id.demo import editor, ipg_runner, scratch
from pose2id.demo.compositing import pair_image, pose_previews, preview_strip, save_png, write_zip  # noqa: F401
from pose2id.demo.inputs import InputError, number, open_photo, photo_digest
from pose2id.demo.ipg_runner import (CPU_SPACE, GPU_SPACE, LOCAL, ZERO_GPU, GenerateConfig,  # noqa: F401
                                     IPGUnavailable, hosting, load_pipeline, preload_pipeline, wants_low_memory)
from pose2id.demo.messages import status, warn
from pose2id.demo.seeds import MAX_SEED, RANDOM_SEED, pose_seed_names, resolve_seed, selected_poses  # noqa: F401
from pose2id.poses import PoseError

# the generator choice: short values (what the API takes) and the labels the page shows
IPG, ORACLE = "ipg", "oracle"
IPG_LABEL = "IPG (Pose2ID model)"
ORACLE_LABEL = "SynthPed oracle (re-renders a synthetic identity; not a model)"
GENERATORS = (IPG, ORACLE)
# SynthPed identities offered among the examples (varied clothes, hair and bags); the first one is
# chosen when the app starts on a machine where IPG cannot run, so Generate works at once.
SYNTHPED_EXAMPLES = (41, 44, 46, 47, 50)
EDITOR_POSE = "editor"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedImages:
    """Images generated of one reference photo, for the +IPG of that photo in the Retrieve tab."""

    photo_digest: str  # content hash of the reference photo (pose2id.demo.inputs.photo_digest)
    images: tuple  # PIL images, one per pose
    poses: tuple  # their pose labels ("pose 1", ..., "editor pose")
    generator: str  # what made them, for the status line


@dataclass(frozen=True)
class Generations:
    """What the Generate tab did in this session (its ``gr.State``): the last finished generation,
    kept until another one finishes, and the photo being generated now or whose last generation
    failed (content hashes), with what it failed with: ``error``, the tab's status message, and
    ``reason``, a few words for the Retrieve tab's note ("the GPU ran out of memory")."""

    finished: GeneratedImages = None
    running: str = None
    failed: str = None
    error: str = ""
    reason: str = ""


def fusion_summary(photo, images, eta):
    """How IPG fusion moves the photo's feature (training-free handcrafted features): cosine
    similarity to the generated images' centre before and after ``normalize(f + eta * mean(g))``."""
    import pose2id as p2
    from pose2id.features import get_extractor

    extractor = get_extractor("handcrafted")
    feats = extractor([photo] + list(images))
    f, g = feats[:1], feats[None, 1:]
    centre = g[0].mean(0)
    centre = centre / max(np.linalg.norm(centre), 1e-12)
    before = float(f[0] @ centre / max(np.linalg.norm(f[0]), 1e-12))
    fused = np.asarray(p2.ipg_fuse(f, g, eta=eta))[0]
    after = float(fused @ centre)
    return f"IPG fusion (eta={eta:g}, handcrafted features): cosine to the generated images' centre {before:.3f} → {after:.3f}."


class Generate:
    """The Generate tab's callbacks for one app configuration."""

    def __init__(self, config=None, synthped_identities=None):
        self.config = config or GenerateConfig()
        self._identities = synthped_identities
        self._photos = {}  # SynthPed pid -> path of its reference picture

    def ipg_note(self):
        """Why IPG cannot run here ("" when it can), without loading anything heavy."""
        blocker = self._blocker()
        return blocker[1] if blocker else ""

    def _blocker(self):
        """(short reason, full note) why IPG cannot run here, or None: no CUDA GPU (without
        ``--cpu``), or weights that are missing and cannot be downloaded (offline, or a
        ``--ckpt-dir`` folder without them). Weights missing from the cache of a machine online
        are not a blocker: the first Generate downloads them."""
        kind = hosting()
        if self.config.test_pipeline:
            return None
        import torch

        if kind in (ZERO_GPU, GPU_SPACE):
            pass  # a GPU is there (on ZeroGPU, inside each generation): only the weights may be missing
        elif kind == CPU_SPACE and not self.config.allow_cpu:
            return ("needs a GPU, and this Space runs on a CPU (its owner can choose GPU or ZeroGPU hardware, or set "
                    "POSE2ID_CPU=1 to run it here: many minutes per image)",
                    "This Space runs on a CPU, so IPG is off and the SynthPed oracle is chosen: pick a SynthPed example "
                    "or a 'SynthPed identity' above (synthetic people). The Space's owner can choose GPU or ZeroGPU "
                    "hardware for IPG, or set POSE2ID_CPU=1 to run it on this CPU (many minutes per image, and one "
                    "generation at a time for every visitor).")
        elif not torch.cuda.is_available() and not self.config.allow_cpu:
            return ("needs a CUDA GPU (this machine has none; the app's `--cpu` runs it here, many minutes per image)",
                    "IPG needs a CUDA GPU and this machine has none. The SynthPed oracle works here: pick a SynthPed "
                    "example or a 'SynthPed identity' above (synthetic people), or run the app on a GPU machine after "
                    "`python -m pose2id download` (or start it with `--cpu`: many minutes per image).")
        from huggingface_hub import constants

        from pose2id.ipg.weights import MissingWeightsError, resolve_files

        try:
            resolve_files(self.config.ckpt_dir, local_files_only=True)
        except MissingWeightsError as error:
            if constants.HF_HUB_OFFLINE or self.config.ckpt_dir:
                note = f"IPG cannot run here: its weights are missing, so the SynthPed oracle is chosen. {error}"
                if kind in (ZERO_GPU, GPU_SPACE):  # a Space fetches them as it is built
                    return ("needs its weights, which are not in this Space (its README's `preload_from_hub`)",
                            f"{note} On a Space, list them under `preload_from_hub` in its README (as this "
                            "repository's README does): they are fetched when the Space is built.")
                return "needs its weights, which are not on this machine (`python -m pose2id download`)", note
        return None

    def _on_cpu(self):
        """IPG runs on the CPU here (``--cpu`` on a machine without CUDA)."""
        if not self.config.allow_cpu or self.config.test_pipeline or hosting() == ZERO_GPU:
            return False
        import torch

        return not torch.cuda.is_available()

    def generator_label(self):
        if self.config.test_pipeline:
            return "IPG: tiny random-weight pipeline (test mode; images are noise)"
        return f"{IPG_LABEL} on the CPU (slow: many minutes per image)" if self._on_cpu() else IPG_LABEL

    def generator_choices(self):
        """The generator choice as (label, value) pairs, values as :data:`GENERATORS`."""
        return [(self.generator_label(), IPG), (ORACLE_LABEL, ORACLE)]

    # ----------------------------------------------------------------- SynthPed identities
    def identities(self):
        """pid -> Identity of SynthPed (seed 0), built without rendering any image."""
        if self._identities is None:
            from pose2id.data.synthped import SynthPedConfig, build_world

            config = SynthPedConfig()
            identities, _, _ = build_world(0, config)
            # the test identities (the ones in the Retrieve gallery) come after the training ones
            self._identities = {pid: ident for pid, ident in identities.items() if pid > config.num_train_identities}
        return self._identities

    def identity_choices(self):
        return [(f"#{pid}: {ident.describe()}", pid) for pid, ident in self.identities().items()]

    def synthped_pid(self, pid):
        """``pid`` as one of the oracle's identities (an int), or ValueError saying which ones exist."""
        pids = sorted(self.identities())
        known = f"{pids[0]}–{pids[-1]}"
        try:
            value = float(pid)
        except (TypeError, ValueError):
            raise ValueError(f"SynthPed pid {pid!r} is not a number: give one of {known}") from None
        if not (np.isfinite(value) and value == int(value) and int(value) in self.identities()):
            raise ValueError(f"SynthPed pid {value:g} is not one of the oracle's identities: give one of {known} "
                             "(the test identities of the Retrieve tab's SynthPed gallery)")
        return int(value)

    def identity_picture(self, pid):
        """The picture of SynthPed identity ``pid`` used as its reference photo: the oracle's exact
        rendering in standard pose 1, enlarged 2x (PIL RGB, 128x256)."""
        from pose2id.data.synthped import OracleGenerator

        oracle = OracleGenerator(fidelity=0.0, identities=self.identities())
        image = oracle.generate(pid, [editor.standard_pose("1")], seed=[pid, 1])[0]
        return image.resize((image.width * 2, image.height * 2), Image.NEAREST).convert("RGB")

    def identity_photo(self, pid):
        """Path of a PNG of :meth:`identity_picture` (written once per identity)."""
        if pid not in self._photos:
            # one per identity, kept for the process (their number is bounded by SynthPed's)
            path = scratch.folder("synthped", keep=None) / f"synthped_{pid:04d}.png"
            self.identity_picture(pid).save(path)
            self._photos[pid] = str(path)
        return self._photos[pid]

    def pick_identity(self, pid):
        """(reference photo path, pid state, status) for SynthPed identity ``pid``: the oracle's
        rendering of it in a standard pose, used as the reference photo."""
        if pid in (None, ""):
            return None, None, status("Choose a SynthPed identity.", "info")
        try:
            pid = self.synthped_pid(pid)
        except ValueError as error:
            return gr.update(), gr.update(), warn(str(error))
        return (self.identity_photo(pid), pid,
                status(f"SynthPed identity #{pid} (synthetic): {self.identities()[pid].describe()}.", "ok"))

    def photo_changed(self, photo):
        """(pid state, identity dropdown, status) once the reference photo is uploaded or removed:
        another photo is not the SynthPed identity's, so the identity is cleared, and the status
        says what can be done with the new photo (or why it cannot be used, at once)."""
        if photo in (None, ""):
            return None, None, status("No reference photo: upload a photo of a person, or pick an example or a "
                                      "SynthPed identity.", "info")
        try:
            image = open_photo(photo)
        except InputError as error:
            return None, None, warn(f"Reference photo: {error}")
        name = f"{Path(photo).name} ({image.width}x{image.height})"
        blocker = self._blocker()
        if blocker:
            return None, None, status(
                f"Reference photo {name}: a real photo needs IPG, which {blocker[0]}, "
                "and the SynthPed oracle only draws SynthPed identities. 'Search the gallery with this person' works "
                "here; to generate on this machine pick a SynthPed example (labelled synthetic).", "warning")
        return None, None, status(f"Reference photo {name}: press Generate to draw this person in the ticked poses "
                                  f"with {self.generator_label()}, or search the gallery with it.", "info")

    def generator_changed(self, generator, photo, pid):
        """The status once the user picks another generator: what pressing Generate will now do
        with the photo shown, or why it cannot."""
        if generator == ORACLE:
            if pid is not None:
                return status(f"SynthPed oracle: press Generate to draw SynthPed identity #{pid} in the ticked poses.",
                              "info")
            return status("The SynthPed oracle only draws SynthPed identities: pick a SynthPed example (labelled "
                          "synthetic) or a 'SynthPed identity'.", "info")
        note = self.ipg_note()
        if note:
            return status(note, "warning")
        if photo in (None, ""):
            return status(f"{self.generator_label()}: upload a reference photo or pick an example, then press "
                          "Generate.", "info")
        return status(f"Press Generate to draw this person in the ticked poses with {self.generator_label()}.", "info")

    def photo_uploaded(self, photo, previous=None):
        """(reference photo, last good photo, pid state, identity dropdown, status) once a photo is
        uploaded or removed: as :meth:`photo_changed`, except that a file that cannot be used
        gives way to ``previous``, the photo shown before it (kept with its SynthPed identity),
        so a wrong file dropped on the box loses nothing."""
        if photo not in (None, ""):
            try:
                open_photo(photo)
            except InputError as error:
                if previous:
                    return previous, previous, gr.skip(), gr.skip(), warn(
                        f"Reference photo: {error} The previous photo is kept.")
                return None, None, None, None, warn(f"Reference photo: {error}")
        pid, identity, message = self.photo_changed(photo)
        return gr.skip(), photo or None, pid, identity, message

    def start_state(self):
        """(photo path, SynthPed pid, status) the tab opens with: where IPG cannot run, the first
        SynthPed example, chosen, so that Generate works at once with the oracle; otherwise none."""
        if not self.ipg_note():
            return None, None, ""
        pid = SYNTHPED_EXAMPLES[0]
        return (self.identity_photo(pid), pid, status(
            f"SynthPed identity #{pid} (synthetic) is chosen: press Generate to see the SynthPed oracle draw it in "
            "the ticked poses, or pick another example.", "info"))

    def examples(self, photos):
        """Items of the examples gallery: the example ``photos`` (paths), then the SynthPed
        identities of SYNTHPED_EXAMPLES, captioned with their pid (the gallery's label says they
        are synthetic; a thumbnail has no room for more)."""
        return [(path, None) for path in photos] + [(self.identity_photo(pid), f"#{pid}") for pid in SYNTHPED_EXAMPLES]

    def pick_example(self, photos, index):
        """(reference photo path, pid state, identity dropdown value, status) for item ``index``
        of :meth:`examples`: a photo clears the SynthPed identity, a SynthPed item chooses it."""
        if index >= len(photos):
            photo, pid, message = self.pick_identity(SYNTHPED_EXAMPLES[index - len(photos)])
            return photo, pid, pid, message
        name = Path(photos[index]).name
        blocker = self._blocker()
        if blocker:
            return photos[index], None, None, status(
                f"Example photo {name}: a real person. The SynthPed oracle only draws SynthPed identities and IPG "
                f"{blocker[0]}, so on this machine pick a SynthPed example (labelled synthetic).", "warning")
        return photos[index], None, None, status(f"Example photo {name}: generate it in new poses with IPG.", "info")

    # ----------------------------------------------------------------- the main action
    def generate_in_page(self, photo, pose_names, use_editor, editor_value, generator, synth_pid, steps,
                         guidance, seed, randomize, eta, generations=None, progress=gr.Progress()):
        """:meth:`generate` for the page's Generate button: a refusal is said in the status it
        yields, and not raised again (the page would add an error toast and badges to it)."""
        try:
            yield from self.generate(photo, pose_names, use_editor, editor_value, generator, synth_pid, steps,
                                     guidance, seed, randomize, eta, generations, progress=progress)
        except gr.Error:
            return

    def generate(self, photo, pose_names, use_editor, editor_value, generator, synth_pid, steps, guidance,
                 seed, randomize, eta, generations=None, progress=gr.Progress()):
        """Stream (preview, gallery, zip path, status, seed used, generations) while generating;
        ``progress`` drives Gradio's progress bar (one tick per denoising step).

        ``generations`` is the session's :class:`Generations`; the one yielded marks the photo as
        running while IPG denoises, then holds the finished images (or the failure, keeping the
        images of the last generation that finished).

        Every bad input (no photo, no pose, a bad seed, steps, guidance, eta or generator, the
        oracle without a SynthPed identity, IPG where it cannot run) ends in one yield with a
        specific status that leaves everything else as it was (``gr.update()``), then raises
        ``gr.Error`` with the same message: the page shows it, an API client raises it.

        Every picture and the zip are files written atomically into a folder of this call's own
        (:func:`pose2id.demo.scratch.folder`), so concurrent calls never share or rewrite a file
        a download may be reading.

        The SynthPed oracle needs no photo: it draws identity ``synth_pid`` and uses the identity's
        own picture (:meth:`identity_picture`) as the reference, for the fusion line and the
        Retrieve tab's +IPG; a different photo given with it is not used, and the status says so.
        Seed -1 (or ``randomize``) draws a random seed, which is yielded as the seed used.
        """
        if not isinstance(generations, Generations):
            generations = Generations()
        keep = (gr.update(), gr.update(), gr.update())
        empty = (None, [], None)
        try:
            steps, guidance, eta = number(steps, "steps", whole=True), number(guidance, "guidance"), number(eta, "eta")
            if not 1 <= steps <= 100:
                raise ValueError(f"steps must be between 1 and 100, got {steps}")
            if not 0 <= guidance <= 20:
                raise ValueError(f"guidance must be between 0 and 20, got {guidance}")
            if not (np.isfinite(eta) and eta >= 0):
                raise ValueError(f"eta must be a number >= 0, got {eta}")
            if generator not in GENERATORS:
                raise ValueError(f"generator must be one of {', '.join(map(repr, GENERATORS))}, got {generator!r}")
            seed, random_seed = resolve_seed(seed, randomize)
            oracle_pid = None
            if generator == ORACLE and synth_pid not in (None, ""):
                oracle_pid = self.synthped_pid(synth_pid)
            image = open_photo(photo) if photo or oracle_pid is None else None
            labelled = selected_poses(pose_names, use_editor, editor_value)
        except (InputError, PoseError, ValueError, TypeError) as error:
            yield *keep, warn(str(error)), gr.update(), generations
            raise gr.Error(str(error)) from None
        note = ""  # a remark to keep in front of the final status
        if oracle_pid is not None:
            reference = self.identity_picture(oracle_pid)
            if image is not None and photo_digest(image) != photo_digest(reference):
                note = (f"Your photo was not used: the SynthPed oracle draws identity #{oracle_pid} from its own "
                        "picture (choosing a SynthPed identity shows it as the reference photo). ")
            image = reference
        digest = photo_digest(image)

        def failed(message, reason):
            return replace(generations, running=None, failed=digest, error=message, reason=reason)

        poses = [pose for _, pose in labelled]
        settings = {"generator": generator, "poses": [label for label, _ in labelled], "steps": steps,
                    "guidance": guidance, "seed": seed, "eta": eta}
        used = f"{'random seed' if random_seed else 'seed'} {seed}"

        if generator == ORACLE:
            if oracle_pid is None:
                message = ("The SynthPed oracle only re-renders SynthPed identities: pick a SynthPed example "
                           "(labelled synthetic) or choose one under 'SynthPed identity'; your photo is kept. A real "
                           "photo needs IPG.")
                yield *keep, warn(message), gr.update(), failed(message, "the SynthPed oracle only draws SynthPed "
                                                                         "identities")
                raise gr.Error(message)
            from pose2id.data.synthped import OracleGenerator

            oracle = OracleGenerator(fidelity=0.0, identities=self.identities())
            images = oracle.generate(oracle_pid, poses, seed=[oracle_pid, seed])
            settings["synthped_pid"] = oracle_pid
            label = f"SynthPed oracle (not a model), identity #{oracle_pid}"
            used += " (for the oracle it changes only the background and the camera noise)"
        else:
            unavailable = self.ipg_note()
            reason = "IPG cannot run on this machine"
            running = replace(generations, running=digest)
            if not unavailable:
                # the photo is marked as running at once, before the (first, slow) pipeline load, so
                # that the Retrieve tab's +IPG of it says "still generating" from the start
                yield *keep, status(f"{note}{self.generator_label()}: starting…", "info"), seed, running
                try:
                    ipg_runner.load_pipeline(self.config)  # built once, outside the GPU time slot
                except IPGUnavailable as error:
                    unavailable, reason = str(error), "IPG could not be loaded"
            if unavailable:
                yield *keep, warn(unavailable), gr.update(), failed(unavailable, reason)
                raise gr.Error(unavailable)
            images, folder = None, scratch.folder("generated")
            try:
                for item in ipg_runner.gpu_task()(self.config, image, poses, steps, guidance, seed,
                                       pose_seed_names(labelled)):
                    if item[0] == "step":
                        progress((item[1] + 1, steps), desc="Denoising", unit="steps")
                        text = f"{note}{self.generator_label()}: step {item[1] + 1} of {steps}…"
                        step = save_png(preview_strip(item[2]), folder / f"step_{item[1] + 1:03d}.png")
                        yield step, [], None, status(text, "info"), seed, running
                    elif item[0] == "note":
                        note = item[1] + " "
                        yield gr.update(), [], None, status(item[1], "warning"), seed, running
                    else:
                        images = item[1]
            except Exception as error:  # a failure inside the model must not take the app down
                message, reason = _told_run_failure(error)
                if message is None:  # not the user's: a bug, told as one, with its traceback in the log
                    logger.exception("IPG generation failed with an internal error")
                    message = (f"Generation failed with an internal error ({type(error).__name__}: {error}). This is "
                               "a bug, not a problem with your input; the server log has its traceback.")
                    reason = f"an internal error, {type(error).__name__}"
                yield *empty, warn(message), seed, failed(message, reason)
                return
            label = self.generator_label()
            used = f"{steps} steps, guidance {guidance:g}, {used}"
            # named: a photo changed while it ran must not seem to be the one these images are of
            used += f", of {Path(photo).name}" if photo else ""
        if generator == ORACLE:
            folder = scratch.folder("generated")
        gallery = [(save_png(pair_image(pose, im), folder / f"{k:02d}_{name.replace(' ', '_')}.png"), f"{name} | generated")
                   for k, ((name, pose), im) in enumerate(zip(labelled, images), start=1)]
        archive = write_zip(image, labelled, images, settings, folder)
        text = f"{label}: {len(images)} image(s), {used}. " + fusion_summary(image, images, eta)
        done = Generations(finished=GeneratedImages(digest, tuple(images), tuple(n for n, _ in labelled), label))
        strip = save_png(preview_strip(images), folder / "preview.png")
        yield strip, gallery, archive, status(note + text, "ok"), seed, done


def _told_run_failure(error):
    """(status message, short reason) for an exception out of the model run that the user can act
    on: the GPU out of memory even after the runner's low-memory retry, a run stopped or refused by
    ZeroGPU (``gr.Error``: aborted, quota, queue timeout), IPG unavailable. (None, None) for any
    other exception, which is a bug."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return ("Generation failed: the GPU ran out of memory, even in low-memory mode. Generate fewer poses at a "
                "time, or try again when the GPU is less busy.", "the GPU ran out of memory")
    if isinstance(error, gr.Error):
        title = getattr(error, "title", "") or ""
        reason = title if title and title != "Error" else "the run was stopped"
        return f"Generation stopped: {getattr(error, 'message', error)}", reason
    if isinstance(error, IPGUnavailable):
        return str(error), "IPG could not be loaded"
    return None, None
