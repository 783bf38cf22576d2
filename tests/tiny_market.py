"""A tiny Market-1501 style dataset for the app's tests, written as a folder or a zip."""

import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def market_folder(root, pids=6, cams=3, with_gen=True):
    """A tiny Market-style dataset: each identity a colour, each camera a brightness."""
    rng = np.random.default_rng(0)
    for split in ("query", "bounding_box_test"):
        (root / split).mkdir(parents=True)
    for pid in range(1, pids + 1):
        colour = rng.integers(40, 215, 3)
        for cam in range(1, cams + 1):
            for k in range(2):
                split = "query" if cam == 1 and k == 0 else "bounding_box_test"
                name = f"{pid:04d}_c{cam}s1_{k:06d}_00.jpg"
                pixels = np.clip(colour * (0.7 + 0.15 * cam) + rng.normal(0, 12, (128, 64, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name)
                if with_gen:
                    for pose in (1, 2):
                        folder = root / f"{split}_gen" / f"pose{pose}"
                        folder.mkdir(parents=True, exist_ok=True)
                        gen = np.clip(colour + rng.normal(0, 12, (128, 64, 3)), 0, 255)
                        Image.fromarray(gen.astype(np.uint8)).save(folder / name)
    return root


def market_zip(path, pids=20, cams=3, unreadable=(), top="my_cams"):
    """:func:`market_folder` (no generated images) zipped under ``top/``; the ``unreadable``
    names are added to the gallery with bytes that are no image."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path, "w") as archive:
        root = market_folder(Path(tmp), pids=pids, cams=cams, with_gen=False)
        for file in sorted(root.rglob("*.jpg")):
            archive.write(file, f"{top}/{file.relative_to(root).as_posix()}")
        for name in unreadable:
            archive.writestr(f"{top}/bounding_box_test/{name}", b"not an image")
    return path
