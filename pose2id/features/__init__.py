"""Image -> feature extractors behind one interface, and an on-disk feature cache.

    >>> from pose2id.features import get_extractor, extract
    >>> extractor = get_extractor("handcrafted")
    >>> feats = extract(extractor, [image.path for image in dataset.query])   # (N, D) float32

Every extractor has ``.name`` (identifies it, weights included, for the cache), ``.dim``,
``.uses_camera_ids`` and ``__call__(images, batch_size=64, progress=None) -> (N, dim) float32``;
``progress(done, total)`` is called after each batch. The built-in extractors also have the
hooks :func:`extract` feeds a torch ``DataLoader`` with: ``loader_transform(image)`` (PIL RGB ->
array, run in the worker processes), ``loader_collate(list)`` (-> one batch, also in the
workers) and ``forward(batch, camids=None) -> (B, dim) float32`` (in the calling process, on the
extractor's device). An extractor with ``__call__`` only still works: its images are decoded in
the workers and described in the calling process.
"""

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pose2id import ArgumentError
from pose2id.data.market1501 import DatasetError
from pose2id.features.deep import VIT_MODEL_ID, MissingWeightsError, TransReIDExtractor, ViTExtractor
from pose2id.features.handcrafted import HandcraftedExtractor

__all__ = [
    "HandcraftedExtractor",
    "MissingWeightsError",
    "TransReIDExtractor",
    "ViTExtractor",
    "cache_root",
    "default_num_workers",
    "extract",
    "get_extractor",
    "load_images",
]

_EXTRACTORS = {}


def get_extractor(spec, device="cpu", camera_ids="auto"):
    """Build (once per process) the extractor named by ``spec``.

    Parameters
    ----------
    spec : "handcrafted" (stripe colour/texture histograms, no weights), "transreid:PATH"
        (TransReID checkpoint; global + 4 local parts, 3840-d for ViT-B), "transreid-global:PATH"
        (global part only, 768-d), "vit" (ImageNet ``google/vit-base-patch16-224``) or "vit:PATH_OR_ID".
    device : torch device for the network extractors (float16 batches on CUDA).
    camera_ids : TransReID only: "auto" (use the checkpoint's camera embedding when it has one),
        "on" (the checkpoint must have one: ValueError naming the file otherwise) or "off".
        The other extractors accept "auto" and "off"; "on" is an error for them.
    """
    if not isinstance(spec, str) or not spec:
        raise ArgumentError(f"must be a string such as 'handcrafted', 'transreid:PATH' or 'vit', got {spec!r}",
                            argument="spec", value=spec)
    from pose2id.reid import CAMERA_MODES

    if camera_ids not in CAMERA_MODES:
        raise ValueError(f"camera_ids must be one of {CAMERA_MODES}, got {camera_ids!r}")
    kind, _, arg = spec.partition(":")
    if camera_ids == "on" and kind not in ("transreid", "transreid-global"):
        raise ValueError(
            f"camera_ids='on' needs a TransReID checkpoint with a camera embedding; spec {spec!r} has none"
        )
    key = (spec, str(device), camera_ids)
    if key in _EXTRACTORS:
        return _EXTRACTORS[key]
    if kind == "handcrafted" and not arg:
        extractor = HandcraftedExtractor()
    elif kind in ("transreid", "transreid-global"):
        if not arg:
            raise ArgumentError(f"{spec!r} needs the checkpoint's path, e.g. 'transreid:weights/transformer_20.pth'",
                                argument="spec", value=spec)
        extractor = TransReIDExtractor(
            arg, part="all" if kind == "transreid" else "global", device=device, camera_ids=camera_ids
        )
    elif kind == "vit":
        extractor = ViTExtractor(arg or VIT_MODEL_ID, device=device)
    else:
        raise ArgumentError(
            f"must be 'handcrafted', 'transreid:PATH', 'transreid-global:PATH', 'vit' or 'vit:PATH', got {spec!r}",
            argument="spec", value=spec)
    _EXTRACTORS[key] = extractor
    return extractor


def cache_root():
    """Where pose2id keeps generated data and features: $POSE2ID_CACHE or ~/.cache/pose2id."""
    return Path(os.environ.get("POSE2ID_CACHE") or Path.home() / ".cache" / "pose2id").expanduser()


def default_num_workers():
    """DataLoader worker processes for decoding: one per core the process may use, at most 8
    (0 on a single core). The calling process mostly waits on the workers (handcrafted
    features are computed in them) or on the GPU, so it needs no core of its own."""
    from pose2id._threads import available_cores

    cores = available_cores()
    return 0 if cores <= 1 else min(8, cores)


def _decode(path):
    with Image.open(path) as image:
        return image.convert("RGB")


def _unreadable_reason(error):
    """Why an image could not be decoded, in a few words that do not repeat its path."""
    if isinstance(error, UnidentifiedImageError):
        return "not image data"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _unreadable(path, reason):
    """The DatasetError for the image ``path`` that cannot be decoded (``file`` is the image)."""
    return DatasetError(f"cannot read this image ({reason})", file=path)


def load_images(paths):
    """Decode images as RGB PIL images; an unreadable file raises DatasetError whose ``file`` is it."""
    images = []
    for path in paths:
        try:
            images.append(_decode(path))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise _unreadable(path, _unreadable_reason(error)) from None
    return images


class _Unreadable:
    """An image a worker could not decode; the calling process raises DatasetError for it."""

    def __init__(self, path, error):
        self.path, self.reason = str(path), _unreadable_reason(error)


class _ImageFiles:
    """Map-style dataset: index -> ``transform(decoded RGB image)`` or :class:`_Unreadable`."""

    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        try:
            image = _decode(path)
            return image if self.transform is None else self.transform(image)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            return _Unreadable(path, error)


class _Collate:
    """Worker-side collate: the first unreadable image of the batch, or ``inner(items)``."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, items):
        for item in items:
            if isinstance(item, _Unreadable):
                return item
        return self.inner(items)


def _as_list(items):
    return list(items)


def _cache_key(extractor_name, paths, camids=None):
    """Changes when the extractor, the list of files, any file's size/mtime, or the camera ids change."""
    digest = hashlib.sha1(extractor_name.encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"\n{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    if camids is not None:
        digest.update(b"\ncamids:" + np.asarray(camids, dtype=np.int64).tobytes())
    return digest.hexdigest()[:20]


def _check_camids(extractor, camids, paths):
    """camids as used by ``extractor``: None, or an (N,) int64 array checked against the model."""
    if camids is None or not getattr(extractor, "uses_camera_ids", False):
        return None
    ids = np.asarray(camids)
    if ids.ndim != 1 or len(ids) != len(paths):
        raise ValueError(f"camids has {ids.shape[0] if ids.ndim else 0} entries but paths has {len(paths)}; "
                         "give one 0-based camera id per image")
    if ids.dtype.kind not in "iu":
        raise ValueError(f"camids must be integers (dataset camera - 1), got dtype {ids.dtype}")
    cameras = getattr(extractor, "num_cameras", None)
    bad = np.flatnonzero((ids < 0) | (ids >= cameras)) if cameras else np.zeros(0, dtype=int)
    if len(bad):
        raise ValueError(
            f"camids[{bad[0]}] = {ids[bad[0]]} for {Path(paths[bad[0]]).name}: {extractor.name} knows cameras "
            f"0..{cameras - 1} (dataset camera - 1)"
        )
    return ids.astype(np.int64)


DEFAULT_CHUNK_SIZE = 4096


def extract(extractor, paths, cache_dir=None, progress=None, batch_size=64, camids=None, num_workers=None,
            chunk_size=DEFAULT_CHUNK_SIZE):
    """Features of the images at ``paths``, cached on disk in resumable chunks.

    Parameters
    ----------
    extractor : from :func:`get_extractor`.
    paths : list of N image paths.
    cache_dir : folder for the .npy cache files; default ``cache_root()/features``; False disables caching.
    progress : optional ``progress(done, total)``.
    batch_size : images per forward pass.
    camids : N ints aligned with ``paths``, 0-based (the dataset's camera number - 1, as
        TransReID counts), or None = no camera embedding. Only used when
        ``extractor.uses_camera_ids``; ignored otherwise. Part of the cache key.
    num_workers : DataLoader worker processes that decode (and preprocess) the images; None =
        :func:`default_num_workers`, 0 = decode in this process.
    chunk_size : images per cache chunk. Every finished chunk is written at once, so an
        interrupted run computes only the missing chunks when run again; the chunks are merged
        into one file (and removed) when all are done.

    Returns
    -------
    (N, D) float32; a cache hit returns without decoding any image.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return np.zeros((0, extractor.dim), dtype=np.float32)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
        raise ValueError(f"num_workers must be 0 or a positive integer, got {num_workers!r}")
    camids = _check_camids(extractor, camids, paths)
    total = len(paths)
    feats = np.empty((total, extractor.dim), dtype=np.float32)
    chunks = [(start, min(start + chunk_size, total)) for start in range(0, total, chunk_size)]
    cache_file = parts = None
    done = [False] * len(chunks)
    if cache_dir is not False:
        folder = Path(cache_dir) if cache_dir is not None else cache_root() / "features"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", extractor.name)[:60]
        stem = f"{slug}-{_cache_key(extractor.name, paths, camids)}"
        cache_file = folder / f"{stem}.npy"
        if cache_file.is_file():
            cached = np.load(cache_file)
            if cached.shape == (total, extractor.dim):
                if progress is not None:
                    progress(total, total)
                return cached
        parts = folder / f"{stem}.parts-{chunk_size}"
        for index, (start, stop) in enumerate(chunks):
            part = parts / f"{index:06d}.npy"
            if part.is_file():
                cached = np.load(part)
                if cached.shape == (stop - start, extractor.dim):
                    feats[start:stop] = cached
                    done[index] = True
    todo = [(index, start, stop) for index, ((start, stop), finished) in enumerate(zip(chunks, done)) if not finished]
    completed = total - sum(stop - start for _, start, stop in todo)
    if progress is not None and completed:
        progress(completed, total)
    if todo:
        _compute_chunks(extractor, paths, camids, todo, feats, parts, batch_size, num_workers, progress, completed)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        _save_atomic(cache_file, feats)
        shutil.rmtree(parts, ignore_errors=True)
    return feats


def _compute_chunks(extractor, paths, camids, todo, feats, parts, batch_size, num_workers, progress, completed):
    """Fill ``feats`` for the (chunk index, start, stop) ranges in ``todo``; save each finished one under ``parts``."""
    import torch
    from torch.utils.data import DataLoader

    transform = getattr(extractor, "loader_transform", None)
    if transform is not None:
        collate, forward = extractor.loader_collate, extractor.forward
    else:  # an extractor with __call__ only: PIL images in, described here

        def forward(images, _camids):
            return extractor(images, batch_size=len(images))

        collate = _as_list
    batches = [
        list(range(b, min(b + batch_size, stop))) for _, start, stop in todo for b in range(start, stop, batch_size)
    ]
    workers = default_num_workers() if num_workers is None else num_workers
    workers = min(workers, len(batches) - 1)  # one batch: starting a worker costs more than it saves
    device = getattr(extractor, "device", None)
    loader = DataLoader(
        _ImageFiles(paths, transform),
        batch_sampler=batches,
        collate_fn=_Collate(collate),
        num_workers=max(0, workers),
        pin_memory=isinstance(device, torch.device) and device.type == "cuda",
    )
    chunk_of = {start: (index, start, stop) for index, start, stop in todo}
    index = start = stop = None
    for indices, batch in zip(batches, loader):
        if isinstance(batch, _Unreadable):
            raise _unreadable(batch.path, batch.reason)
        first, last = indices[0], indices[-1] + 1
        if first in chunk_of:
            index, start, stop = chunk_of[first]
        ids = None if camids is None else camids[first:last]
        feats[first:last] = forward(batch, ids)
        completed += last - first
        if progress is not None:
            progress(completed, len(paths))
        if last == stop and parts is not None:
            parts.mkdir(parents=True, exist_ok=True)
            _save_atomic(parts / f"{index:06d}.npy", feats[start:stop])


def _save_atomic(path, array):
    temporary = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(temporary, array)
    temporary.replace(path)
