"""Image -> feature extractors behind one interface, and an on-disk feature cache.

    >>> from pose2id.features import get_extractor, extract
    >>> extractor = get_extractor("handcrafted")
    >>> feats = extract(extractor, [image.path for image in dataset.query])   # (N, D) float32

Every extractor has ``.name`` (identifies it, weights included, for the cache), ``.dim`` and
``__call__(images, batch_size=64, progress=None) -> (N, dim) float32``; ``progress(done, total)``
is called after each batch.
"""

import hashlib
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pose2id.data.market1501 import DatasetError
from pose2id.features.deep import VIT_MODEL_ID, MissingWeightsError, TransReIDExtractor, ViTExtractor
from pose2id.features.handcrafted import HandcraftedExtractor

__all__ = [
    "HandcraftedExtractor",
    "MissingWeightsError",
    "TransReIDExtractor",
    "ViTExtractor",
    "cache_root",
    "extract",
    "get_extractor",
    "load_images",
]

_EXTRACTORS = {}


def get_extractor(spec, device="cpu"):
    """Build (once per process) the extractor named by ``spec``.

    Parameters
    ----------
    spec : "handcrafted" (colour/texture histograms, no weights), "transreid:PATH" (TransReID
        checkpoint; global + 4 local parts, 3840-d for ViT-B), "transreid-global:PATH" (global
        part only, 768-d), "vit" (ImageNet ``google/vit-base-patch16-224``) or "vit:PATH_OR_ID".
    device : torch device for the network extractors.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"spec must be a string such as 'handcrafted', 'transreid:PATH' or 'vit', got {spec!r}")
    key = (spec, str(device))
    if key in _EXTRACTORS:
        return _EXTRACTORS[key]
    kind, _, arg = spec.partition(":")
    if kind == "handcrafted" and not arg:
        extractor = HandcraftedExtractor()
    elif kind in ("transreid", "transreid-global"):
        if not arg:
            raise ValueError(f"spec {spec!r}: give the checkpoint path, e.g. 'transreid:weights/transformer_20.pth'")
        extractor = TransReIDExtractor(arg, part="all" if kind == "transreid" else "global", device=device)
    elif kind == "vit":
        extractor = ViTExtractor(arg or VIT_MODEL_ID, device=device)
    else:
        raise ValueError(
            f"spec must be 'handcrafted', 'transreid:PATH', 'transreid-global:PATH', 'vit' or 'vit:PATH', got {spec!r}"
        )
    _EXTRACTORS[key] = extractor
    return extractor


def cache_root():
    """Where pose2id keeps generated data and features: $POSE2ID_CACHE or ~/.cache/pose2id."""
    return Path(os.environ.get("POSE2ID_CACHE") or Path.home() / ".cache" / "pose2id").expanduser()


def load_images(paths):
    """Decode images as RGB PIL images; an unreadable file raises DatasetError naming it."""
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise DatasetError(f"cannot read image {path}: {error}") from None
    return images


def _cache_key(extractor_name, paths):
    """Changes when the extractor, the list of files, or any file's size/mtime changes."""
    digest = hashlib.sha1(extractor_name.encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"\n{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def extract(extractor, paths, cache_dir=None, progress=None, batch_size=64):
    """Features of the images at ``paths``, cached on disk.

    Parameters
    ----------
    extractor : from :func:`get_extractor`.
    paths : list of N image paths.
    cache_dir : folder for the .npy cache files; default ``cache_root()/features``; False disables caching.
    progress : optional ``progress(done, total)``.

    Returns
    -------
    (N, D) float32; a cache hit returns without decoding any image.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return np.zeros((0, extractor.dim), dtype=np.float32)
    cache_file = None
    if cache_dir is not False:
        folder = Path(cache_dir) if cache_dir is not None else cache_root() / "features"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", extractor.name)[:60]
        cache_file = folder / f"{slug}-{_cache_key(extractor.name, paths)}.npy"
        if cache_file.is_file():
            feats = np.load(cache_file)
            if feats.shape == (len(paths), extractor.dim):
                if progress is not None:
                    progress(len(paths), len(paths))
                return feats
    feats = np.empty((len(paths), extractor.dim), dtype=np.float32)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        feats[start : start + len(chunk)] = extractor(load_images(chunk), batch_size=batch_size)
        if progress is not None:
            progress(start + len(chunk), len(paths))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(temporary, feats)
        temporary.replace(cache_file)
    return feats
