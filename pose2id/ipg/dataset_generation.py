"""IPG images for a whole re-identification dataset: plan, shard, skip what exists, write atomically.

The layout written is the one the authors published and :meth:`pose2id.data.Market1501.generated`
reads back (so ``eval --dataset`` uses it)::

    root/query_gen/pose1..poseP/NAME
    root/bounding_box_test_gen/pose1..poseP/NAME      (MSMT17: test_gen/poseK/PID/NAME)

Every generated image is one file named like its reference. The work splits into *jobs*, one
per reference; a job belongs to exactly one worker, chosen by its position in the plan (every
N-th job to shard K of N, then round robin over that shard's launcher processes), never by what
is already on disk, so the N shards cover every reference once whatever number of processes
each one runs. Each file is written
under a temporary name (``.NAME.part``) in its final folder and renamed, so a run killed at any
moment leaves whole images only; the next run skips them and finishes the rest.

The initial noise of each image comes from its own generator, seeded from (seed, reference name,
pose name) (:func:`pose2id.ipg.pose_generator`): the pixels do not depend on batch size,
sharding, order or the number of processes.

    >>> plan = plan_dataset(open_dataset("market1501:/data/Market-1501"), pose_names)
    >>> summary = generate_dataset(pipeline, plan, poses, worker=(rank, world))
"""

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pose2id import ArgumentError
from pose2id._files import replace_atomically
from pose2id.data.market1501 import IMAGE_SUFFIXES, DatasetError

SPLITS = ("query", "gallery")
PART_SUFFIX = ".part"
JPEG_QUALITY = 95
POSE_FILE_SUFFIXES = (".json",) + IMAGE_SUFFIXES


@dataclass(frozen=True)
class Job:
    """One reference image and the P files its generated images go to (pose order)."""

    split: str
    reference: Path
    name: str
    pid: int
    targets: tuple

    def missing(self):
        """Indices of the poses whose file does not exist yet."""
        return tuple(i for i, target in enumerate(self.targets) if not target.is_file())


@dataclass
class Plan:
    """What a dataset needs: the jobs (all workers' together), and the references left out.

    Attributes
    ----------
    jobs : list of :class:`Job`, query first, each split in the dataset's order.
    gen_dirs : {split: folder of its ``poseK/`` folders}.
    pose_dirs : {split: its P pose folders, in pose order} (``poseK/``, or ``K/`` where a set there
        already uses bare-number folders: :func:`pose_folder_prefix`).
    pose_names : the P pose names (keys of the per-image seeds).
    unreadable : ``(path, reason)`` of references the dataset reader could not decode.
    distractors : number of references left out because they are distractors (pid 0).
    """

    jobs: list
    gen_dirs: dict
    pose_names: tuple
    pose_dirs: dict = field(default_factory=dict)
    unreadable: list = field(default_factory=list)
    distractors: int = 0


@dataclass
class Summary:
    """What one worker did: images written, images already there, references that failed."""

    done: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)  # (path, reason)
    references: int = 0
    seconds: float = 0.0

    def line(self):
        """One line for the log: ``done 16, skipped 8, failed 1: a.jpg (reason)``."""
        text = f"done {self.done}, skipped {self.skipped} (already there), failed {len(self.failed)}"
        if self.failed:
            shown = "; ".join(f"{Path(path).name} ({why})" for path, why in self.failed[:10])
            more = f"; and {len(self.failed) - 10} more" if len(self.failed) > 10 else ""
            text += f": {shown}{more}"
        return text


# ------------------------------------------------------------------------------------------ poses
def read_pose_folder(folder):
    """The poses of a folder, sorted by file name: OpenPose ``.json`` files (one pose each, or a
    list) and rendered skeleton images (``.png``/``.jpg``, used as given, like the authors'
    ``standard_poses/1.jpg`` ...).

    Returns
    -------
    (names, poses) : names are the file stems (``NAME_i`` for the i-th pose of a list file);
        poses are :class:`pose2id.poses.Pose` or RGB PIL images.

    Raises :class:`pose2id.ArgumentError` (``argument="folder"``, ``file`` the folder or the
    broken file) when it holds no pose file or one is broken.
    """
    import json

    from pose2id.poses import Pose, PoseError

    def refused(problem, file=None):
        return ArgumentError(problem, argument="folder", file=folder if file is None else file)

    folder = Path(folder)
    if not folder.is_dir():
        raise refused("is not a folder")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in POSE_FILE_SUFFIXES),
                   key=lambda p: _natural_key(p.name))
    if not files:
        raise refused("holds no pose files (OpenPose .json, or rendered skeleton .png/.jpg)")
    names, poses = [], []
    for path in files:
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise refused("not valid OpenPose JSON", path) from None
            items = data if isinstance(data, list) else [data]
            if not items:
                raise refused("an empty list; expected one OpenPose pose or a list of them", path)
            for i, item in enumerate(items):
                name = path.stem if len(items) == 1 else f"{path.stem}_{i}"
                try:
                    poses.append(Pose.from_openpose(item, name=name).check_body())
                except PoseError as error:
                    where = f"pose {i + 1} of {len(items)}: " if len(items) > 1 else ""
                    raise refused(where + error.problem, path) from None
                names.append(name)
        else:
            try:
                with Image.open(path) as image:
                    poses.append(image.convert("RGB"))
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                raise refused("not a readable image", path) from None
            names.append(path.stem)
    if len(set(names)) != len(names):
        raise refused("has two pose files with the same name before the extension")
    return names, poses


def _natural_key(name):
    """'pose10.json' after 'pose9.json'."""
    import re

    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# ------------------------------------------------------------------------------------------ plan
def _dataset_error(dataset, problem):
    """A DatasetError about ``dataset`` (its root, named as the dataset names it in messages)."""
    show = getattr(dataset, "show_path", None)
    shown = show(dataset.root) if show is not None else None
    return DatasetError(problem, argument="dataset", file=dataset.root,
                        shown_as=shown if shown != str(dataset.root) else None)


def generated_dirs(dataset, out=None):
    """{split: the folder that gets ``poseK/NAME``} for a dataset of :mod:`pose2id.data`.

    Next to the split folders (``query_gen/``, ``bounding_box_test_gen/``; MSMT17: ``test_gen/``
    for both), or under ``out`` with the same folder names. A flat folder of images (split by
    the Market protocol in memory) has no split folders for ``eval`` to read generated images
    next to, so it raises DatasetError.
    """
    if hasattr(dataset, "test_dir"):  # MSMT17: query and gallery are both in test/
        folders = {split: Path(dataset.test_dir) for split in SPLITS}
    else:
        folders = dict(getattr(dataset, "_split_dirs", {}))
        if not folders or any(Path(folders[split]) == Path(dataset.root) for split in SPLITS):
            raise _dataset_error(
                dataset, "is one folder of images (split into query and gallery in memory); generated images are "
                "read from query_gen/ and bounding_box_test_gen/ next to query/ and bounding_box_test/, so put the "
                "queries in query/ and the gallery in bounding_box_test/")
    base = None if out is None else Path(out)
    return {split: (base if base is not None else Path(folder).parent) / f"{Path(folder).name}_gen"
            for split, folder in folders.items()}


def pose_folder_prefix(gen_dir):
    """How the pose folders of ``gen_dir`` are named: "" when it already holds a set in bare-number
    folders (``1/``, ``2/``, ...; :meth:`pose2id.data.Market1501.generated` reads those too) and no
    ``poseK/`` folder, so that what is missing goes into the same folders (not into a second set of
    ``poseK/`` folders, which would be read as P more poses); else "pose"."""
    gen_dir = Path(gen_dir)
    if not gen_dir.is_dir():
        return "pose"
    folders = [p.name for p in gen_dir.iterdir() if p.is_dir()]
    bare = any(name.isdigit() for name in folders)
    named = any(name.startswith("pose") and name[4:].isdigit() for name in folders)
    return "" if bare and not named else "pose"


def plan_dataset(dataset, pose_names, splits=SPLITS, out=None, all_identities=False):
    """Every (reference, pose) file a dataset needs.

    Parameters
    ----------
    dataset : Market1501 or MSMT17 (:func:`pose2id.data.open_dataset`); junk (pid -1) is never read.
    pose_names : P names, in pose order (``poseK`` is the K-th).
    splits : which of "query", "gallery".
    out : root for the ``*_gen`` folders (default: next to the split folders).
    all_identities : also the distractors (pid 0). The published generated sets hold images of
        real identities only (pid > 0), which is the default.

    Returns
    -------
    :class:`Plan`. Raises ValueError naming ``splits`` / ``pose_names`` for bad values, and
    DatasetError when no reference is left.
    """
    splits = tuple(splits)
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise ValueError(f"splits must be some of {', '.join(SPLITS)}, got {', '.join(map(str, splits)) or 'none'}")
    pose_names = tuple(str(name) for name in pose_names)
    if not pose_names:
        raise ValueError("pose_names must name at least one pose")
    gen_dirs = generated_dirs(dataset, out)
    jobs, seen, distractors, pose_dirs = [], set(), 0, {}
    for split in dict.fromkeys(splits):
        prefix = pose_folder_prefix(gen_dirs[split])
        pose_dirs[split] = tuple(gen_dirs[split] / f"{prefix}{k + 1}" for k in range(len(pose_names)))
        for image in dataset.query if split == "query" else dataset.gallery:
            if image.pid < 0:
                continue
            if image.pid == 0 and not all_identities:
                distractors += 1
                continue
            targets = tuple(folder / image.name for folder in pose_dirs[split])
            if targets[0] in seen:
                continue
            seen.add(targets[0])
            jobs.append(Job(split, Path(image.path), image.name, image.pid, targets))
    if hasattr(dataset, "test_dir"):
        sources = {Path(dataset.test_dir)}
    else:
        sources = {Path(dataset._split_dirs[s]) for s in splits}
    unreadable = [(Path(p), why) for p, why in getattr(dataset, "skipped", [])
                  if any(Path(p).is_relative_to(folder) for folder in sources)]
    if not jobs:
        left_out = (f" ({distractors} distractor(s), pid 0, are left out unless all identities are asked for)"
                    if distractors else "")
        raise _dataset_error(dataset, f"no reference image to generate from in {' and '.join(splits)}{left_out}")
    return Plan(jobs=jobs, gen_dirs={s: gen_dirs[s] for s in dict.fromkeys(splits)}, pose_names=pose_names,
                pose_dirs=pose_dirs, unreadable=unreadable, distractors=distractors)


def check_writable(plan):
    """Create the plan's pose folders (``plan.pose_dirs``) and write (then remove) a probe file in
    each ``*_gen`` folder; OSError naming the folder if that fails."""
    for gen_dir in dict.fromkeys(plan.gen_dirs.values()):
        try:
            for split, folders in plan.pose_dirs.items():
                if plan.gen_dirs[split] == gen_dir:
                    for folder in folders:
                        folder.mkdir(parents=True, exist_ok=True)
            probe = gen_dir / f".write-test-{os.getpid()}{PART_SUFFIX}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise OSError(f"output folder {gen_dir} cannot be written ({error.strerror or error})") from None


# ------------------------------------------------------------------------------------------ sharding
def parse_shard(text):
    """``"K/N"`` (K from 1 to N) -> (K - 1, N); ValueError naming ``shard`` otherwise."""
    head, sep, tail = str(text).partition("/")
    if not (sep and head.strip().isdigit() and tail.strip().isdigit()):
        raise ArgumentError(f"must be K/N (this is part K of N, K from 1 to N, e.g. 1/4), got {text!r}",
                            argument="shard", value=text)
    k, n = int(head), int(tail)
    if n < 1 or not 1 <= k <= n:
        raise ArgumentError(f"must be K/N with K from 1 to N, got {text!r}", argument="shard", value=text)
    return k - 1, n


def worker_jobs(jobs, shard=(0, 1), process=(0, 1)):
    """The jobs of one worker: process ``rank`` of ``world`` (a launcher's processes) within
    shard ``index`` of ``count``. A shard's jobs are every ``count``-th of the plan and depend on
    ``count`` only, so shards run with different numbers of processes still cover every job once;
    the shard's processes then take every ``world``-th of them.

    Parameters
    ----------
    jobs : list of Job (the whole plan).
    shard : (index, count), index from 0.
    process : (rank, world size).
    """
    (index, count), (rank, world) = shard, process
    if not (0 <= index < count and 0 <= rank < world):
        raise ValueError(f"shard {shard} / process {process}: need 0 <= index < count and 0 <= rank < world")
    return jobs[index::count][rank::world]


# ------------------------------------------------------------------------------------------ writing
def part_path(target):
    """The temporary name ``target`` is written under before it is renamed."""
    target = Path(target)
    return target.with_name(f".{target.name}{PART_SUFFIX}")


def write_atomic(image, target):
    """Save ``image`` to ``target`` (format from the suffix; JPEG at quality 95) via a temporary
    file in the same folder and ``os.replace``: ``target`` is whole or absent, never partial."""
    target = Path(target)
    fmt = Image.registered_extensions().get(target.suffix.lower(), "PNG")
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    replace_atomically(target, lambda part: image.convert("RGB").save(part, format=fmt, **options),
                       staging=part_path(target))


def _read_reference(path):
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise ValueError("missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"unreadable image ({type(error).__name__})") from None


# ------------------------------------------------------------------------------------------ running
def default_batch_size(device):
    """References per pipeline call: 1 on the CPU; on a GPU, one per 12 GiB of its memory, 1 to 8."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return 1
    total = torch.cuda.get_device_properties(device).total_memory / 2**30
    return max(1, min(8, int(total // 12)))


def generate_dataset(pipeline, plan, poses, jobs=None, seed=42, steps=20, guidance=3.5, batch_size=1,
                     progress=True, describe="", report_unreadable=True, on_written=None):
    """Generate every missing image of ``jobs`` (default: the whole plan) and write it.

    Parameters
    ----------
    pipeline : :class:`pose2id.ipg.IPGPipeline` (on its device).
    plan : :class:`Plan` (:func:`plan_dataset`); ``poses`` are its P poses (Pose or PIL), in order.
    jobs : this worker's share (:func:`worker_jobs`).
    seed, steps, guidance : initial-noise seed, DDIM steps, guidance scale.
    batch_size : references per pipeline call (each with all its missing poses).
    progress : show a progress bar (images/s, references/s and ETA) on stderr.
    describe : prefix of the progress bar, e.g. "[2/4]".
    report_unreadable : count the plan's unreadable references as failed (one worker should).
    on_written : optional ``f(path)`` after each file is in place.

    Returns
    -------
    :class:`Summary`.
    """
    import torch
    from tqdm.auto import tqdm

    from pose2id.ipg import pose_generator

    if len(poses) != len(plan.pose_names):
        raise ValueError(f"poses: {len(poses)} given for {len(plan.pose_names)} pose names")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    jobs = plan.jobs if jobs is None else jobs
    summary = Summary(failed=list(plan.unreadable) if report_unreadable else [])
    start = time.perf_counter()
    groups = {}
    for job in jobs:
        for target in job.targets:  # a run killed mid-write left this worker's temporary files
            part_path(target).unlink(missing_ok=True)
        missing = job.missing()
        summary.skipped += len(job.targets) - len(missing)
        if missing:
            groups.setdefault(missing, []).append(job)
    total = sum(len(m) * len(g) for m, g in groups.items())
    references_total = sum(len(g) for g in groups.values())
    bar = tqdm(total=total, unit="img", desc=f"{describe} generating".strip(), disable=not progress or not total,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    try:
        for missing, group in groups.items():
            chosen = [poses[i] for i in missing]
            for s in range(0, len(group), batch_size):
                batch, references = [], []
                for job in group[s:s + batch_size]:
                    try:
                        references.append(_read_reference(job.reference))
                        batch.append(job)
                    except ValueError as error:
                        summary.failed.append((job.reference, str(error)))
                        bar.total -= len(missing)
                if not batch:
                    continue
                generators = [pose_generator(seed, job.name, plan.pose_names[i]) for job in batch for i in missing]
                try:
                    images = pipeline(references, chosen, num_inference_steps=steps, guidance_scale=guidance,
                                      generator=generators).images
                except torch.OutOfMemoryError:
                    raise RuntimeError(f"out of GPU memory with {len(batch)} reference(s) per call: give a smaller "
                                       "--batch-size (or --low-memory)") from None
                for r, job in enumerate(batch):
                    for p, i in enumerate(missing):
                        write_atomic(images[r * len(missing) + p], job.targets[i])
                        summary.done += 1
                        if on_written is not None:
                            on_written(job.targets[i])
                    summary.references += 1
                bar.update(len(batch) * len(missing))
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"{summary.references / elapsed:.2f} ref/s, {summary.references}/"
                                    f"{references_total} ref", refresh=False)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary
