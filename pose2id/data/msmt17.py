"""MSMT17: the query and gallery are listed in text files, not told by folders.

Layout (as published; ``MSMT17_V1`` names its image folders ``train/`` and ``test/``,
``MSMT17_V2`` ``mask_train_v2/`` and ``mask_test_v2/``)::

    root/
      list_query.txt          "0000/0000_000_01_0303morning_0015_0.jpg 0" per line: path under test/, label
      list_gallery.txt
      list_train.txt, list_val.txt   optional (paths under train/)
      test/0000/0000_000_01_0303morning_0015_0.jpg ...
      train/...
      test_gen/pose1..poseP/0000/0000_000_01_0303morning_0015_0.jpg   optional IPG images

A file name is ``PPPP_III_CC_<date/time>_FFFF_N.jpg``: the camera is its third field ``CC``
(1..15), made 0-based as for Market-1501. The label of a line is the person id within the split
(0, 1, ...); pids here are label + 1, so that pid 0 keeps meaning "distractor" everywhere else
(MSMT17 has none). Generated images, where there are any, sit in ``<test folder>_gen/poseK/``
under the same path as the image (or under its file name alone).
"""

import logging
import re
from pathlib import Path

from pose2id.data.market1501 import (IMAGE_SUFFIXES, DatasetError, ReIDImage, _image_problem, describe_skipped,
                                     shown_path)

logger = logging.getLogger(__name__)

LIST_FILES = {"query": "list_query.txt", "gallery": "list_gallery.txt"}
TEST_DIRS = ("test", "mask_test_v2")
TRAIN_DIRS = ("train", "mask_train_v2")
EXAMPLE_LINE = "0000/0000_000_01_0303morning_0015_0.jpg 0"
ALL_LIST_FILES = (*LIST_FILES.values(), "list_train.txt", "list_val.txt")


def parse_msmt17_camera(name):
    """``"0000_000_01_0303morning_0015_0.jpg"`` -> 0 (the 0-based camera), or None if the name has no
    ``_CC_`` third field."""
    match = re.match(r"^\d+_\d+_(\d{2})_", Path(name).name)
    if match is None or int(match.group(1)) < 1:
        return None
    return int(match.group(1)) - 1


def is_msmt17_root(folder):
    """Whether ``folder`` holds ``list_query.txt`` and ``list_gallery.txt``."""
    folder = Path(folder)
    return all((folder / name).is_file() for name in LIST_FILES.values())


def has_msmt17_lists(folder):
    """Whether ``folder`` holds ``list_query.txt`` or ``list_gallery.txt``: an MSMT17 folder,
    complete or not."""
    folder = Path(folder)
    return any((folder / name).is_file() for name in LIST_FILES.values())


def find_msmt17_root(folder, partial=False):
    """``folder`` or the one folder up to two levels below it (``MSMT17_V1/``) with MSMT17's
    list files, or None. ``partial``: any of the list files is enough (a download that lacks
    some of them is still recognised as MSMT17, to say which are missing)."""
    folder = Path(folder)
    test = has_msmt17_lists if partial else is_msmt17_root
    if test(folder):
        return folder
    for pattern in ("*", "*/*"):
        found = [p for p in sorted(folder.glob(pattern)) if p.is_dir() and test(p)]
        if len(found) == 1:
            return found[0]
    return None


class MSMT17:
    """An MSMT17 dataset read from its list files.

    Parameters
    ----------
    root : the folder with ``list_query.txt`` and ``list_gallery.txt`` (or one up to two levels above it).
    name : shown name (default "MSMT17").
    verify : decode every image while reading (unreadable and missing files are skipped, listed
        in ``skipped`` and reported with a warning in the log).
    shown_as : how messages name ``root`` (and what is in it), e.g. the file name of the zip it
        was extracted to; default its path.

    Attributes
    ----------
    query, gallery, train : lists of :class:`ReIDImage` (``train`` from list_train.txt + list_val.txt).
    skipped : ``(path, reason)`` of listed files that are missing or not readable images.
    is_synthetic : False.
    """

    is_synthetic = False

    def __init__(self, root, name="MSMT17", verify=True, shown_as=None):
        given = Path(root).expanduser()
        self._given, self._shown_as = given, shown_as
        if not given.is_dir():
            raise DatasetError("is not a folder; expected an MSMT17 folder with list_query.txt and list_gallery.txt",
                               argument="root", file=given, shown_as=shown_as)
        self.root = find_msmt17_root(given)
        if self.root is None:
            partial = find_msmt17_root(given, partial=True)
            if partial is not None:
                there = [name for name in ALL_LIST_FILES if (partial / name).is_file()]
                missing = [name for name in LIST_FILES.values() if not (partial / name).is_file()]
                raise self._error(f"has {' and '.join(there)} but no {' and no '.join(missing)}: MSMT17 needs "
                                  f"list_query.txt and list_gallery.txt (lines such as {EXAMPLE_LINE!r} naming "
                                  f"images under test/); the download or extraction may be incomplete", partial)
            raise self._error(f"has no list_query.txt and list_gallery.txt (MSMT17's layout: lines such as "
                              f"{EXAMPLE_LINE!r} naming images under test/)", given)
        self.name = name
        self.skipped = []
        self.test_dir = self._image_dir(TEST_DIRS, "test")
        train_dir = next((self.root / d for d in TRAIN_DIRS if (self.root / d).is_dir()), None)
        self.query = self._read_list(self.root / LIST_FILES["query"], self.test_dir, verify)
        self.gallery = self._read_list(self.root / LIST_FILES["gallery"], self.test_dir, verify)
        self.train = []
        if train_dir is not None:
            for list_name in ("list_train.txt", "list_val.txt"):
                if (self.root / list_name).is_file():
                    self.train += self._read_list(self.root / list_name, train_dir, verify)
        if not self.query or not self.gallery:
            extra = f"; {len(self.skipped)} listed file(s) skipped: {describe_skipped(self.skipped)}" if self.skipped else ""
            raise self._error(f"{LIST_FILES['query']} gives {len(self.query)} usable image(s) and "
                              f"{LIST_FILES['gallery']} {len(self.gallery)}; both need at least one{extra}")
        if self.skipped:
            logger.warning("skipped %d listed image(s) of %s: %s", len(self.skipped), self.root,
                           describe_skipped(self.skipped))

    def show_path(self, path):
        """``path`` (the folder given or one inside it) as messages name it: under ``shown_as``
        when one was given, else itself."""
        return shown_path(path, self._given, self._shown_as) or str(path)

    def _error(self, problem, path=None):
        """A DatasetError about ``path`` (default: the dataset's root), named as messages name it."""
        path = self.root if path is None else path
        return DatasetError(problem, argument="root", file=path, shown_as=shown_path(path, self._given, self._shown_as))

    def _image_dir(self, names, role):
        for name in names:
            if (self.root / name).is_dir():
                return self.root / name
        raise self._error(f"has the list files of MSMT17 but no {' or '.join(n + '/' for n in names)} folder with "
                          f"the {role} images")

    def _read_list(self, list_path, image_dir, verify):
        """The images a list file names, in its order."""
        images = []
        for number, line in enumerate(list_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or not re.fullmatch(r"\d+", fields[1]):
                raise self._error(f"line {number} is {line.strip()!r}; expected an image path and a label, such as "
                                  f"{EXAMPLE_LINE!r}", list_path)
            relative = fields[0].replace("\\", "/")
            camid = parse_msmt17_camera(relative)
            if camid is None or not relative.lower().endswith(IMAGE_SUFFIXES):
                raise self._error(f"line {number}: {relative!r} is not an MSMT17 image name (PPPP_III_CC_..., the "
                                  f"camera CC third), such as {EXAMPLE_LINE.split()[0]!r}", list_path)
            path = image_dir / relative
            if not path.is_file():
                self.skipped.append((path, "listed but missing"))
                continue
            if verify:
                problem = _image_problem(path)
                if problem is not None:
                    self.skipped.append((path, problem))
                    continue
            images.append(ReIDImage(path=path, pid=int(fields[1]) + 1, camid=camid, name=relative))
        return images

    def generated(self, split):
        """Paths of the IPG images of each image of ``split`` ("query" or "gallery"): dict name ->
        P paths in pose order, for the images that have all P; empty without ``<test folder>_gen/``."""
        if split not in ("query", "gallery"):
            raise ValueError(f"split must be 'query' or 'gallery', got {split!r}")
        gen_dir = self.test_dir.parent / (self.test_dir.name + "_gen")
        if not gen_dir.is_dir():
            return {}
        pose_dirs = [p for p in gen_dir.iterdir() if p.is_dir() and re.fullmatch(r"(pose)?\d+", p.name)]
        pose_dirs.sort(key=lambda p: int(p.name.removeprefix("pose")))
        result = {}
        for image in self.query if split == "query" else self.gallery:
            paths = []
            for folder in pose_dirs:
                path = folder / image.name
                paths.append(path if path.is_file() else folder / Path(image.name).name)
            if pose_dirs and all(p.is_file() for p in paths):
                result[image.name] = paths
        return result

    def __repr__(self):
        return (f"{type(self).__name__}(name={self.name!r}, root='{self.root}', query={len(self.query)}, "
                f"gallery={len(self.gallery)}, train={len(self.train)})")
