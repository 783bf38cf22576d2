"""Re-identification datasets: Market-1501 style folders and archives, and the SynthPed benchmark.

    >>> from pose2id.data import open_dataset
    >>> dataset = open_dataset("synthped")            # generated on first use, cached
    >>> dataset = open_dataset("market1501:/data/Market-1501-v15.09.15")
    >>> dataset = open_dataset("msmt17:/data/MSMT17_V1")          # list_query.txt / list_gallery.txt
    >>> dataset = open_dataset("cuhk03-np:/data/cuhk03-np")         # its detected/ images
    >>> dataset.query[0]
    ReIDImage(path=..., pid=1, camid=0, name='0001_c1s1_001051_00.jpg')
"""

import hashlib
from pathlib import Path

from pose2id import ArgumentError
from pose2id.data.archive import open_archive
from pose2id.data.market1501 import DatasetError, Market1501, ReIDImage, _looks_like_root, parse_name, shown_path
from pose2id.data.msmt17 import MSMT17, find_msmt17_root, has_msmt17_lists

__all__ = ["DatasetError", "MSMT17", "Market1501", "ReIDImage", "dataset_folder", "open_archive", "open_dataset",
           "parse_name", "spec_path"]

# "kind:PATH" specs of the published datasets; a plain PATH is recognised from its layout
KINDS = ("market1501", "dukemtmc", "cuhk03-np", "cuhk03-np-labeled", "msmt17")
SPEC_HELP = ("'synthped', a folder or .zip (Market-1501 style names, or MSMT17's list files), or "
             + ", ".join(f"'{kind}:PATH'" for kind in KINDS))


def _cuhk03_split(path, which, shown_as=None):
    """The ``detected/`` or ``labeled/`` folder (``which``) of a CUHK03-NP folder: ``path`` itself
    when it is one, else ``path/which`` or ``path/*/which``."""
    if path.name.lower() in ("detected", "labeled"):
        return path
    for candidate in [path / which, *sorted(path.glob(f"*/{which}"))]:
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"has no {which}/ folder; CUHK03-NP (the new protocol) has detected/ and labeled/, each with "
                       "query/, bounding_box_test/ and bounding_box_train/", argument="spec", file=path,
                       shown_as=shown_as)


# how a refusal names each kind of dataset found in one folder
_KIND_NAMES = {"msmt17": "MSMT17", "cuhk03-np": "CUHK03-NP", "market1501": "Market-1501 style"}


def _kind_at(folder):
    """The kind of dataset ``folder`` itself is ("msmt17", "cuhk03-np", "market1501"), or None."""
    if has_msmt17_lists(folder):
        return "msmt17"
    if all((folder / which).is_dir() for which in ("detected", "labeled")):
        return "cuhk03-np"
    return "market1501" if _looks_like_root(folder) else None


def _datasets_inside(folder):
    """``[(subfolder, kind)]``: the datasets up to two levels inside ``folder`` (where a plain
    PATH is looked into), each once: a dataset's own subfolders (CUHK03-NP's ``detected/``) are
    part of it."""
    found = []
    for pattern in ("*", "*/*"):
        for sub in sorted(folder.glob(pattern)):
            if sub.is_dir() and not any(sub.is_relative_to(known) for known, _ in found):
                kind = _kind_at(sub)
                if kind is not None:
                    found.append((sub, kind))
    return found


def _open_folder(path, kind=None, shown_as=None):
    """The dataset in the folder ``path``: of ``kind`` (one of KINDS) or, without one, recognised
    from its layout (MSMT17's list files, else Market-1501 style names). Messages name ``path``
    (and what is in it) ``shown_as`` when given."""
    if kind is None and path.is_dir() and _kind_at(path) is None:
        found = _datasets_inside(path)
        if len({found_kind for _, found_kind in found}) > 1:
            # a folder holding several kinds of download (data/MSMT17_V1/, data/Market-1501-v15.09.15/):
            # opening any one of them without a word would be a guess
            listed = ", ".join(f"{sub.relative_to(path).as_posix()}/ ({_KIND_NAMES[found_kind]})"
                               for sub, found_kind in found)
            raise DatasetError(f"holds {len(found)} datasets: {listed}; give the folder of the one to open",
                               argument="spec", file=path, shown_as=shown_as)
    msmt17_root = find_msmt17_root(path, partial=True) if kind is None else None
    if kind == "msmt17" or msmt17_root is not None:
        return MSMT17(path, shown_as=shown_as)
    if kind in ("cuhk03-np", "cuhk03-np-labeled"):
        which = "labeled" if kind == "cuhk03-np-labeled" else "detected"
        split = _cuhk03_split(path, which, shown_as)
        return Market1501(split, name=f"CUHK03-NP ({split.name.lower()})", shown_as=shown_path(split, path, shown_as))
    if kind is None and path.is_dir() and all(any(p.is_dir() for prefix in ("", "*/") for p in path.glob(prefix + which))
                                              for which in ("detected", "labeled")):
        raise DatasetError("holds CUHK03-NP's detected/ and labeled/ sets; choose one by writing 'cuhk03-np:' "
                           "(detected) or 'cuhk03-np-labeled:' before the path", argument="spec", file=path,
                           shown_as=shown_as)
    name = {"market1501": None, "dukemtmc": "DukeMTMC-reID"}.get(kind)
    return Market1501(path, name=name, shown_as=shown_as)


def _kind_and_path(spec):
    """(kind or None, PATH) of a "kind:PATH" or plain PATH spec."""
    kind, _, rest = str(spec).partition(":")
    kind = kind.lower() if rest and kind.lower() in KINDS else None
    return kind, Path(rest if kind else str(spec)).expanduser()


def spec_path(spec):
    """The folder or ``.zip`` a dataset spec names (PATH of "kind:PATH"), or None for SynthPed."""
    spec = str(spec)
    if spec == "synthped" or spec.startswith("synthped:"):
        return None
    return _kind_and_path(spec)[1]


def extraction_folder(path, cache_dir=None):
    """The folder :func:`open_dataset` extracts the ``.zip`` ``path`` into: ``cache_dir``, else one
    under ``$POSE2ID_CACHE/archives`` named after the zip's path, size and time (a changed zip
    is extracted afresh)."""
    if cache_dir is not None:
        return Path(cache_dir)
    from pose2id.features import cache_root

    path = Path(path).expanduser()
    stat = path.stat() if path.is_file() else None
    tag = hashlib.sha1(f"{path.resolve()}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_root() / "archives" / f"{path.stem}-{tag}"


def dataset_folder(spec, cache_dir=None):
    """The folder whose files :func:`open_dataset` ``(spec, cache_dir)`` reads: PATH of a
    "kind:PATH" or plain PATH spec, the folder a ``.zip`` is extracted into, SynthPed's cache
    folder. Resolved, for a server's ``allowed_paths``; it need not exist yet."""
    path = spec_path(spec)
    if path is None:
        from pose2id.data.synthped import SynthPedConfig, _cache_dir

        seed = str(spec).partition(":")[2] or "0"
        return _cache_dir(cache_dir, int(seed) if seed.isdigit() else 0, SynthPedConfig()).resolve()
    return (extraction_folder(path, cache_dir) if path.suffix.lower() == ".zip" else path).resolve()


def open_dataset(spec, cache_dir=None, progress=None, generated=True):
    """Open a dataset from a short description.

    Parameters
    ----------
    spec : "synthped" or "synthped:SEED" (the built-in synthetic benchmark); a plain PATH: a
        folder, or a .zip of one (extracted safely into the cache), recognised from its layout
        (MSMT17's ``list_query.txt`` / ``list_gallery.txt``, else Market-1501 style names); or a
        named one: "market1501:PATH", "dukemtmc:PATH" (both the Market-1501 layout),
        "cuhk03-np:PATH" (its ``detected/`` set; PATH may be ``detected/`` itself),
        "cuhk03-np-labeled:PATH", "msmt17:PATH".
    cache_dir : where SynthPed / extracted archives go; default under ``$POSE2ID_CACHE``.
    progress : optional ``progress(done, total)`` while SynthPed is generated.
    generated : SynthPed only: False draws (or reads) only its original images, a dataset without
        generated images (Base and +NFC, in a few seconds on a fresh cache); True (default) also
        draws the missing generated sets, reusing the originals on disk. Ignored for other datasets.

    Returns
    -------
    Market1501 (SynthPed is a subclass with ``is_synthetic = True``) or MSMT17.
    """
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise ArgumentError(f"must be {SPEC_HELP}, got {spec!r}", argument="spec", value=spec)
    spec = str(spec)
    if spec == "synthped" or spec.startswith("synthped:"):
        from pose2id.data.synthped import load_synthped

        seed_text = spec.partition(":")[2] or "0"
        if not seed_text.isdigit():
            raise ArgumentError(f"must be 'synthped:SEED' with SEED a non-negative integer, got {spec!r}",
                                argument="spec", value=spec)
        return load_synthped(cache_dir=cache_dir, seed=int(seed_text), progress=progress, generated=generated)
    kind, path = _kind_and_path(spec)
    if path.suffix.lower() == ".zip":
        dest = extraction_folder(path, cache_dir)
        marker = dest / ".pose2id-extracted"
        if not marker.is_file():
            marker.write_text(str(open_archive(path, dest)))
        # messages name what is in the zip by the zip's name, not by the folder it was extracted to
        return _open_folder(dest, kind, shown_as=path.name)
    if not path.exists():
        raise DatasetError("does not exist; expected a Market-1501 style folder or .zip, or 'synthped'",
                           argument="spec", file=path, value=spec)
    return _open_folder(path, kind)
