"""SynthPed: a small, synthetic, offline ReID benchmark with Market-1501's layout and protocol.

Real ReID data cannot be shipped, so SynthPed draws pedestrians procedurally. An *identity* is a
set of appearance attributes (clothing colours and pattern, sleeve and leg length, hair, skin
tone, bag, build, height); an *image* of it is that identity drawn around one of the 8 standard
18-keypoint skeletons (jittered, mirrored; front, back and side views) and then seen through one
of six *cameras* (colour cast, brightness, haze, blur, noise, background, person scale, partial
occlusion). As in real data, pose and camera change a colour/texture descriptor a lot, so
identity is far from the only thing features encode: this is the premise of the paper
(feature centralization removes pose/camera variation around each identity).

Everything is deterministic from ``seed``; the images are written once into a cache folder
(``$POSE2ID_CACHE`` or ``~/.cache/pose2id``, ``synthped-<version>-<seed>``) as a Market-1501
style folder, with the oracle's "generated" images (:mod:`pose2id.data.oracle`) in the
``*_gen/pose1..8`` folders where the IPG images of real data would be.

SynthPed is synthetic: numbers measured on it say how the methods behave on drawings, not what
they achieve on real pedestrians. It is named "SynthPed (synthetic)" wherever it is shown.
"""

import hashlib
import itertools
import json
import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

# The drawing primitives live in pose2id.data.drawing (shared with the oracle); re-exported here.
from pose2id.data.drawing import (  # noqa: F401
    WIDTH,
    HEIGHT,
    _SS,
    CLOTHING_COLOURS,
    SKIN_TONES,
    HAIR_COLOURS,
    Identity,
    _pick_colour,
    sample_identity,
    Camera,
    make_cameras,
    NEUTRAL_CAMERA,
    NOSE,
    NECK,
    R_SHO,
    R_ELB,
    R_WRI,
    L_SHO,
    L_ELB,
    L_WRI,
    R_HIP,
    R_KNEE,
    R_ANK,
    L_HIP,
    L_KNEE,
    L_ANK,
    R_EYE,
    L_EYE,
    R_EAR,
    L_EAR,
    _EXTRAPOLATE,
    standard_skeletons,
    pose_arrays,
    complete_skeleton,
    view_of,
    _pattern_mask,
    _fabric,
    _limb,
    _offset_polygon,
    _background,
    render_person,
    _occlude,
    _apply_camera,
    place_skeleton,
    SynthPedConfig,
    build_world,
)
from pose2id.data.market1501 import Market1501
from pose2id.data.oracle import OracleGenerator

try:
    import fcntl
except ImportError:  # not on Windows: the temporary-folder renames still keep each stage whole
    fcntl = None

logger = logging.getLogger(__name__)

VERSION = "1"
DISPLAY_NAME = "SynthPed (synthetic)"


class SynthPed(Market1501):
    """The SynthPed benchmark read back from its cache folder; a :class:`Market1501` with
    ``is_synthetic = True`` and the attributes of every identity in ``identities``
    (pid -> Identity) and its cameras in ``cameras``.

    ``has_generated`` is False for the originals-only stage (``load_synthped(generated=False)``):
    then :meth:`generated` is empty for every split, whatever is on disk, so a Benchmark of it has
    no +IPG methods.
    """

    is_synthetic = True

    def __init__(self, root, identities, cameras, seed, has_generated=True):
        super().__init__(root, name=DISPLAY_NAME, verify=False)
        self.identities = identities
        self.cameras = cameras
        self.seed = seed
        self.has_generated = bool(has_generated)

    def generated(self, split):
        if not self.has_generated:
            if split not in ("query", "gallery"):
                raise ValueError(f"split must be 'query' or 'gallery', got {split!r}")
            return {}
        return super().generated(split)


def _cache_dir(cache_dir, seed, config):
    if cache_dir is not None:
        return Path(cache_dir)
    from pose2id.features import cache_root

    text = json.dumps(asdict(config), sort_keys=True)
    suffix = "" if config == SynthPedConfig() else "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return cache_root() / f"synthped-{VERSION}-{seed}{suffix}"


# On-disk completion markers, one per stage, each written last (inside the temporary folder
# before it is renamed into place, or after the generated folders are moved in).
ORIGINALS_MARKER = "originals.json"  # query/, bounding_box_test/, bounding_box_train/ complete
COMPLETE_MARKER = "synthped.json"  # and the oracle's *_gen/pose1..8 folders complete
GEN_FOLDERS = ("query_gen", "bounding_box_test_gen")


def synthped_stages(cache_dir=None, seed=0, config=None):
    """Which stages of SynthPed are already on disk, without drawing anything.

    Parameters
    ----------
    cache_dir, seed, config : as for :func:`load_synthped`.

    Returns
    -------
    dict {"originals": bool, "generated": bool}.
    """
    root = _cache_dir(cache_dir, seed, config or SynthPedConfig())
    complete = (root / COMPLETE_MARKER).is_file()
    return {"originals": complete or (root / ORIGINALS_MARKER).is_file(), "generated": complete}


def load_synthped(cache_dir=None, seed=0, config=None, progress=None, generated=True):
    """SynthPed, drawn on first use and read from the cache afterwards; in two stages.

    Stage 1 draws the originals (query, gallery, train: ~1,200 images, a few seconds), enough for
    the Base and +NFC rankings; stage 2 draws the oracle's generated images (8 per query and
    gallery image) that +IPG needs. ``generated=False`` runs stage 1 only; a later call with
    ``generated=True`` runs only the stage that is missing and reuses the originals on disk, so the
    images (and their cached features) are the same as a one-shot build, byte for byte. Each stage
    is written to a temporary folder and moved into place under a lock, so threads and processes
    building the same dataset at once are safe.

    Parameters
    ----------
    cache_dir : folder to hold the images; default ``$POSE2ID_CACHE/synthped-<version>-<seed>``.
    seed : everything (identities, cameras, poses, noise) follows from it.
    config : SynthPedConfig (sizes, oracle fidelity for the generated images).
    progress : optional ``progress(done, total)`` over the images the call draws (originals,
        then the originals whose 8 generated images are drawn).
    generated : bool; False returns the originals only (``has_generated`` False, no
        ``generated()`` images, even if they are on disk); True (default) the full benchmark.

    Returns
    -------
    SynthPed (a Market1501 with ``is_synthetic = True`` and name "SynthPed (synthetic)").
    """
    config = config or SynthPedConfig()
    if not isinstance(config, SynthPedConfig):
        raise ValueError(f"config must be a SynthPedConfig, got {type(config).__name__}")
    if config.num_identities < 1 or config.num_cameras < 2:
        raise ValueError(f"config needs num_identities >= 1 and num_cameras >= 2, got {config}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(generated, (bool, np.bool_)):
        raise ValueError(f"generated must be True or False, got {generated!r}")
    root = _cache_dir(cache_dir, seed, config)
    identities, distractors, cameras = build_world(seed, config)
    stages = synthped_stages(root, seed, config)
    if not stages["originals"] or (generated and not stages["generated"]):
        plan = _plan(seed, config, identities, distractors)
        gen_items = [i for i, (split, identity, _, _) in enumerate(plan) if _has_generated(split, identity)]
        todo = (0 if stages["originals"] else len(plan)) + (len(gen_items) if generated else 0)
        tracker = _Counter(progress, todo)
        start = time.perf_counter()
        if not stages["originals"]:
            _draw_originals(root, seed, plan, cameras, tracker)
        if generated:
            _draw_generated(root, seed, config, plan, gen_items, identities, cameras, tracker, start)
    return SynthPed(root, identities, cameras, seed, has_generated=bool(generated))


class _Counter:
    """One ``progress(done, total)`` stream over both stages."""

    def __init__(self, callback, total):
        self.callback, self.total, self.done = callback, total, 0

    def step(self):
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _has_generated(split, identity):
    """Whether a plan entry gets the oracle's generated images (query and gallery persons)."""
    return identity is not None and split != "bounding_box_train"


def _image_name(identity, camid, index):
    pid = -1 if identity is None else identity.pid
    return f"{pid:04d}_c{camid + 1}s1_{index:06d}_00.jpg" if pid >= 0 else f"-1_c{camid + 1}s1_{index:06d}_00.jpg"


def _plan(seed, config, identities, distractors):
    """[(split, identity or None for junk, camid, track)] of every original image, in index order.
    Images of one track are consecutive detections of a person walking past one camera (same view
    and size, similar poses), as in Market-1501's gallery."""
    rng = np.random.default_rng([seed, 1])
    plan = []
    tracks = itertools.count()
    for pid in range(1, config.num_identities + 1):
        # As in Market-1501: seen by 2-6 cameras, one query per camera that saw the person.
        cams = rng.choice(config.num_cameras, size=rng.integers(2, config.num_cameras + 1), replace=False)
        for c in cams:
            plan.append(("query", identities[pid], int(c), next(tracks)))
            track = next(tracks)
            for _ in range(rng.integers(1, 4)):
                plan.append(("bounding_box_test", identities[pid], int(c), track))
    for identity in distractors:
        plan.append(("bounding_box_test", identity, int(rng.integers(config.num_cameras)), next(tracks)))
    for pid in range(config.num_identities + 1, config.num_identities + config.num_train_identities + 1):
        for c in rng.choice(config.num_cameras, size=2, replace=False):
            track = next(tracks)
            for _ in range(2):
                plan.append(("bounding_box_train", identities[pid], int(c), track))
    plan.extend(("bounding_box_test", None, int(rng.integers(config.num_cameras)), -1) for _ in range(config.num_junk))
    return plan


@contextmanager
def _locked(root):
    """An exclusive lock (threads and processes) on moving stages into ``root``."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _draw_originals(root, seed, plan, cameras, tracker):
    """Stage 1: the original images into ``root`` (temporary folder, renamed into place)."""
    start = time.perf_counter()
    skeletons, visible = standard_skeletons()
    skeletons = np.stack([complete_skeleton(k, v) for k, v in zip(skeletons, visible)])
    views = [view_of(k) for k in skeletons]
    by_view = {v: [i for i, w in enumerate(views) if w == v] for v in ("front", "back", "side")}
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".tmp", dir=root.parent))
    try:
        for split in sorted({entry[0] for entry in plan}):
            (tmp / split).mkdir(parents=True, exist_ok=True)
        for index, (split, identity, camid, track) in enumerate(plan):
            image_rng = np.random.default_rng([seed, 2, index])
            camera = cameras[camid]
            if identity is None:
                # Junk, as in Market-1501: a badly cropped box with hardly any person in it.
                image = _background(image_rng, camera, (WIDTH, HEIGHT))
                image = _apply_camera(image, camera, image_rng)
            else:
                track_rng = np.random.default_rng([seed, 4, track])
                view = str(track_rng.choice(["front", "back", "side"], p=camera.view))
                candidates = by_view[view] or list(range(len(skeletons)))
                pose_index = track_rng.choice(candidates)
                if image_rng.random() < 0.4:
                    pose_index = image_rng.choice(candidates)
                scale = track_rng.uniform(*camera.scale)
                mirror = bool(track_rng.random() < 0.5)
                kp = place_skeleton(skeletons[pose_index], image_rng, (scale, scale), mirror=mirror)
                # a detector roughly centres its box on the person
                kp[:, 0] = kp[:, 0] - (kp[:, 0].mean() - WIDTH / 2) * 0.3
                image = render_person(identity, kp, camera, image_rng)
            image.save(tmp / split / _image_name(identity, camid, index), quality=int(image_rng.integers(80, 96)))
            tracker.step()
        info = {"name": DISPLAY_NAME, "version": VERSION, "seed": seed, "images": len(plan), "synthetic": True,
                "seconds": round(time.perf_counter() - start, 2)}
        (tmp / ORIGINALS_MARKER).write_text(json.dumps(info, indent=1))
        with _locked(root):
            if (root / ORIGINALS_MARKER).is_file() or (root / COMPLETE_MARKER).is_file():
                return  # another thread or process finished the same dataset first
            if root.exists():
                shutil.rmtree(root)  # left over from an interrupted run of an older version
            tmp.rename(root)
        logger.info("drew SynthPed's %d original images in %s in %.1f s", len(plan), root, info["seconds"])
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _draw_generated(root, seed, config, plan, gen_items, identities, cameras, tracker, start):
    """Stage 2: the oracle's images of every query and gallery person into ``root/*_gen/pose1..8``
    (a temporary folder beside ``root``, its folders moved in under the lock, marker last)."""
    oracle = OracleGenerator(config.oracle_fidelity, seed=seed, identities=identities)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".gen-tmp", dir=root.parent))
    folders = {}
    try:
        for index in gen_items:
            split, identity, camid, _ = plan[index]
            name = _image_name(identity, camid, index)
            generated = oracle.generate(identity, camera=cameras[camid], seed=[seed, 3, index])
            for p, gen in enumerate(generated, start=1):
                folder = folders.get((split, p))
                if folder is None:
                    folder = folders[(split, p)] = tmp / f"{split}_gen" / f"pose{p}"
                    folder.mkdir(parents=True, exist_ok=True)
                gen.save(folder / name, quality=92)
            tracker.step()
        info = {"name": DISPLAY_NAME, "version": VERSION, "seed": seed, "config": asdict(config), "images": len(plan),
                "synthetic": True, "seconds": round(time.perf_counter() - start, 2)}
        with _locked(root):
            if (root / COMPLETE_MARKER).is_file():
                return  # another thread or process finished the same dataset first
            for folder in GEN_FOLDERS:
                if (root / folder).exists():
                    shutil.rmtree(root / folder)  # left over from an interrupted run
                if (tmp / folder).exists():
                    (tmp / folder).rename(root / folder)
            marker = tmp / COMPLETE_MARKER
            marker.write_text(json.dumps(info, indent=1))
            marker.rename(root / COMPLETE_MARKER)
        logger.info("drew SynthPed's generated images in %s (%.1f s in all)", root, info["seconds"])
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
