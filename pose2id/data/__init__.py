"""Re-identification datasets: Market-1501 style folders and archives, and the SynthPed benchmark.

    >>> from pose2id.data import open_dataset
    >>> dataset = open_dataset("synthped")            # generated on first use, cached
    >>> dataset = open_dataset("market1501:/data/Market-1501-v15.09.15")
    >>> dataset.query[0]
    ReIDImage(path=..., pid=1, camid=0, name='0001_c1s1_001051_00.jpg')
"""

import hashlib
from pathlib import Path

from pose2id.data.archive import open_archive
from pose2id.data.market1501 import DatasetError, Market1501, ReIDImage, parse_name

__all__ = ["DatasetError", "Market1501", "ReIDImage", "open_archive", "open_dataset", "parse_name"]


def open_dataset(spec, cache_dir=None, progress=None):
    """Open a dataset from a short description.

    Parameters
    ----------
    spec : "synthped" or "synthped:SEED" (the built-in synthetic benchmark), "market1501:PATH"
        or a plain PATH (a Market-1501 style folder, or a .zip of one, extracted safely into the
        cache).
    cache_dir : where SynthPed / extracted archives go; default under ``$POSE2ID_CACHE``.
    progress : optional ``progress(done, total)`` while SynthPed is generated.

    Returns
    -------
    Market1501 (SynthPed is a subclass with ``is_synthetic = True``).
    """
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise ValueError(f"spec must be 'synthped', 'market1501:PATH' or a folder/zip path, got {spec!r}")
    spec = str(spec)
    if spec == "synthped" or spec.startswith("synthped:"):
        from pose2id.data.synthped import load_synthped

        seed_text = spec.partition(":")[2] or "0"
        if not seed_text.isdigit():
            raise ValueError(f"spec {spec!r}: the SynthPed seed must be a non-negative integer")
        return load_synthped(cache_dir=cache_dir, seed=int(seed_text), progress=progress)
    path = Path(spec.partition(":")[2] if spec.startswith("market1501:") else spec).expanduser()
    if path.suffix.lower() == ".zip":
        from pose2id.features import cache_root

        stat = path.stat() if path.is_file() else None
        tag = hashlib.sha1(f"{path.resolve()}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}".encode()).hexdigest()[:12]
        dest = Path(cache_dir) if cache_dir is not None else cache_root() / "archives" / f"{path.stem}-{tag}"
        marker = dest / ".pose2id-extracted"
        if not marker.is_file():
            marker.write_text(str(open_archive(path, dest)))
        # messages name what is in the zip by the zip's name, not by the folder it was extracted to
        return Market1501(dest, shown_as=path.name)
    if not path.exists():
        raise DatasetError(f"spec: {path} does not exist; expected a Market-1501 style folder or .zip, or 'synthped'")
    return Market1501(path)
