"""Market-1501 style datasets: a folder of person crops named ``PPPP_cCsS_FFFFFF_NN.jpg``.

Layout (the one published with Market-1501, and the one Pose2ID's generated images follow)::

    root/
      query/                      0001_c1s1_001051_00.jpg ...
      bounding_box_test/          gallery; pid 0000 = distractors, pid -1 = junk
      bounding_box_train/         optional
      query_gen/pose1..pose8/NAME             optional IPG images of each query
      bounding_box_test_gen/pose1..pose8/NAME optional IPG images of each gallery image

Only the leading ``PPPP_cC`` of a name is read: the person id and the camera. Junk images
(pid -1) are dropped, distractors (pid 0) stay in the gallery, camera ids become 0-based.
A folder without ``query/`` but with Market-style names is split by the Market protocol
(see :func:`split_market_protocol`).
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pose2id import ArgumentError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
NAME_PATTERN = re.compile(r"^(-?\d+)_c(\d+)", re.IGNORECASE)
EXAMPLE_NAME = "0002_c1s1_000451_03.jpg"

QUERY_DIRS = ("query",)
GALLERY_DIRS = ("bounding_box_test", "gallery", "test")
TRAIN_DIRS = ("bounding_box_train", "train")
GEN_SUFFIX = "_gen"


class DatasetError(ArgumentError):
    """A dataset folder or archive that cannot be read as a re-identification dataset.

    A :class:`pose2id.ArgumentError` (so a ValueError) with its fields: ``problem`` (what is
    wrong, without the path), ``file`` (the folder, archive or file it is about), ``argument``
    (the library's name for the value, where it knows it: ``"spec"``, ``"root"``, ``"zip_path"``),
    ``value``; and ``shown_as``, how messages name ``file`` when its user knows it by another name:
    the zip's name (``"cams.zip"``, ``"cams.zip/query"``) for the folder it was extracted to.

    ``str(error)`` is ``"<shown_as or file>: <problem>"``; :meth:`told` and :meth:`worded` take
    another name for the file.
    """

    def __init__(self, problem, argument=None, file=None, value=None, label=None, shown_as=None):
        self.shown_as = None if shown_as is None else str(shown_as)
        super().__init__(problem, argument=argument, file=file, value=value, label=label)

    def told(self, file=None):
        return super().told(file or self.shown_as)

    def worded(self, name, file=None):
        return super().worded(name, file or self.shown_as)


def shown_path(path, given, shown_as=None):
    """How messages name ``path`` (``given`` or a path inside it): under ``shown_as`` when there
    is one (``"cams.zip/query"`` for ``given/query``), else None (its own path)."""
    if shown_as is None:
        return None
    relative = Path(path).relative_to(given).as_posix()
    return str(shown_as) if relative == "." else f"{shown_as}/{relative}"


@dataclass(frozen=True)
class ReIDImage:
    """One person crop: where it is, who it shows (``pid``), which camera took it (0-based)."""

    path: Path
    pid: int
    camid: int
    name: str


def parse_name(name):
    """``"0002_c1s1_000451_03.jpg"`` -> ``(2, 0)`` (pid, 0-based camera id), or None if not Market-style."""
    match = NAME_PATTERN.match(name)
    if match is None or not name.lower().endswith(IMAGE_SUFFIXES):
        return None
    camera = int(match.group(2))
    if camera < 1:
        return None
    return int(match.group(1)), camera - 1


def _image_problem(path):
    """Why ``path`` cannot be used as an image (a short reason), or None if it decodes."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            # Decode fully: a truncated JPEG has a valid header and only fails here.
            image.load()
            width, height = image.size
        if width == 0 or height == 0:
            return "zero-sized image"
    except UnidentifiedImageError:
        return "not image data"
    except (OSError, SyntaxError, ValueError):
        return "damaged or truncated image"
    return None


def read_images(folder, verify=True, skipped=None):
    """Read the Market-style images of one folder (not recursive), sorted by name.

    Parameters
    ----------
    folder : path of the folder.
    verify : decode each image and skip files that are not readable images.
    skipped : optional list; ``(path, reason)`` is appended for every file skipped as unreadable.

    Returns
    -------
    list of ReIDImage, junk (pid -1) excluded.
    """
    images = []
    for path in sorted(Path(folder).iterdir()):
        parsed = parse_name(path.name) if path.is_file() else None
        if parsed is None or parsed[0] == -1:
            continue
        if verify:
            problem = _image_problem(path)
            if problem is not None:
                if skipped is not None:
                    skipped.append((path, problem))
                continue
        images.append(ReIDImage(path=path, pid=parsed[0], camid=parsed[1], name=path.name))
    return images


def describe_skipped(skipped, limit=5):
    """``"a.jpg (reason), b.jpg (reason) and 3 more"`` for ``(path, reason)`` pairs (file names only)."""
    shown = ", ".join(f"{Path(path).name} ({why})" for path, why in skipped[:limit])
    return shown + (f" and {len(skipped) - limit} more" if len(skipped) > limit else "")


def split_market_protocol(images):
    """Split one pool of images into query and gallery as Market-1501 does.

    For each identity seen by at least two cameras, the first image (by name) of every camera
    becomes a query; everything else, distractors (pid 0) included, is gallery. Every query
    then has a true match in another camera.

    Returns
    -------
    (query, gallery) : lists of ReIDImage.
    """
    cameras = {}
    for image in images:
        if image.pid > 0:
            cameras.setdefault(image.pid, set()).add(image.camid)
    taken = set()
    query, gallery = [], []
    for image in sorted(images, key=lambda im: im.name):
        key = (image.pid, image.camid)
        if image.pid > 0 and len(cameras[image.pid]) >= 2 and key not in taken:
            taken.add(key)
            query.append(image)
        else:
            gallery.append(image)
    return query, gallery


KNOWN_LAYOUTS = (("duke", "DukeMTMC-reID"), ("cuhk03", "CUHK03-NP"), ("market", "Market-1501"))


def layout_name(root, stop=None):
    """The name of the published dataset with the Market-1501 layout that ``root`` is, told by its
    folder's name or a parent's up to ``stop`` (``DukeMTMC-reID``, ``cuhk03-np/detected``):
    "DukeMTMC-reID", "CUHK03-NP (detected)", "CUHK03-NP (labeled)"; else "Market-1501"."""
    root = Path(root)
    folders = [root, *root.parents]
    if stop is not None and Path(stop) in folders:
        # a CUHK03-NP set's name is its parent's
        keep = folders.index(Path(stop)) + 1 + (root.name.lower() in ("detected", "labeled"))
        folders = folders[:keep]
    for folder in folders[:3]:
        lowered = folder.name.lower()
        for key, name in KNOWN_LAYOUTS:
            if key in lowered:
                if name == "CUHK03-NP" and root.name.lower() in ("detected", "labeled"):
                    return f"{name} ({root.name.lower()})"
                return name
    return "Market-1501"


def _find_dir(root, names):
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _looks_like_root(folder):
    return _find_dir(folder, QUERY_DIRS) is not None and _find_dir(folder, GALLERY_DIRS) is not None


def _split_folders(folder, names):
    """``[(path, count)]`` for the folders called one of ``names`` in ``folder`` or up to two
    levels below it (where :func:`find_dataset_root` looks) that hold files with Market-style
    names, ``count`` of them each."""
    found = []
    for prefix in ("", "*/", "*/*/"):
        for name in names:
            for path in sorted(folder.glob(prefix + name)):
                if path.is_dir():
                    count = sum(1 for p in path.iterdir() if parse_name(p.name) is not None and p.is_file())
                    if count:
                        found.append((path, count))
    return found


def find_dataset_root(folder):
    """The folder itself if it holds ``query/`` and a gallery folder, else the one subfolder
    (up to two levels down, e.g. ``Market-1501-v15.09.15/``) that does, else the folder."""
    folder = Path(folder)
    if _looks_like_root(folder):
        return folder
    for depth_pattern in ("*", "*/*"):
        candidates = [p for p in sorted(folder.glob(depth_pattern)) if p.is_dir() and _looks_like_root(p)]
        if len(candidates) == 1:
            return candidates[0]
    return folder


def _has_market_images(folder):
    return any(path.is_file() and parse_name(path.name) is not None for path in folder.iterdir())


def _wrapped_images(folder):
    """The one subfolder that holds ``folder``'s Market-style images when ``folder`` itself holds
    none and nothing else but that subfolder (hidden and ``__MACOSX`` folders aside), else None.
    A split folder of the Market layout (``query/``, ``bounding_box_test/``, ...) is not such a
    wrapper: alone it is half a dataset, which :meth:`Market1501._layout_problem` explains."""
    if _has_market_images(folder):
        return None
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    split_names = {name.lower() for name in (*QUERY_DIRS, *GALLERY_DIRS, *TRAIN_DIRS)}
    if (len(entries) == 1 and entries[0].is_dir() and _has_market_images(entries[0])
            and entries[0].name.lower() not in split_names and not entries[0].name.lower().endswith("_gen")):
        return entries[0]
    return None


class Market1501:
    """A Market-1501 style dataset read from a folder.

    Parameters
    ----------
    root : folder with ``query/`` and ``bounding_box_test/`` (and optionally ``bounding_box_train/``
        and the ``*_gen`` folders), or any folder whose images have Market-style names.
    name : shown name; default for the standard layout "Market-1501", or "DukeMTMC-reID" /
        "CUHK03-NP (detected)" when the folder's name says so (see :func:`layout_name`); else
        the folder name.
    shown_as : how messages name ``root`` (and what is in it), e.g. the file name of the zip it
        was extracted to (:func:`pose2id.data.open_dataset`); default its path.
    verify : decode every image while reading (corrupt files are skipped, listed in
        ``skipped`` and reported with a warning in the log).

    Attributes
    ----------
    query, gallery, train : lists of :class:`ReIDImage`.
    skipped : list of ``(path, reason)`` for files with Market-style names that are not readable images.
    is_synthetic : False for real data.
    """

    is_synthetic = False

    def __init__(self, root, name=None, verify=True, shown_as=None):
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError("is not a folder; expected a Market-1501 style dataset folder", argument="root",
                               file=root, shown_as=shown_as)
        self._given, self._shown_as = root, shown_as
        self.root = find_dataset_root(root)
        self.skipped = []
        query_dir = _find_dir(self.root, QUERY_DIRS)
        gallery_dir = _find_dir(self.root, GALLERY_DIRS)
        train_dir = _find_dir(self.root, TRAIN_DIRS)
        if query_dir is not None and gallery_dir is not None:
            self.query = read_images(query_dir, verify, self.skipped)
            self.gallery = read_images(gallery_dir, verify, self.skipped)
            self.train = read_images(train_dir, verify, self.skipped) if train_dir is not None else []
            self._split_dirs = {"query": query_dir, "gallery": gallery_dir}
            default_name = layout_name(self.root, stop=root)
            if not self.query or not self.gallery:
                self._raise_empty(f"{query_dir.name}/ has {len(self.query)} usable image(s) and {gallery_dir.name}/ "
                                  f"has {len(self.gallery)}; both need at least one")
        else:
            split_names = {name.lower() for name in (*QUERY_DIRS, *GALLERY_DIRS, *TRAIN_DIRS)}
            if self.root.name.lower() in split_names and _looks_like_root(self.root.parent):
                # query/ or bounding_box_test/ of a dataset, not a pool to split by the protocol
                parent = self.root.parent
                parent = self.show_path(parent) if parent.is_relative_to(root) else str(parent)
                raise DatasetError(
                    f"is the {self.root.name}/ folder of the Market-1501 style dataset in {parent}; "
                    f"give that folder (the one that holds query/ and bounding_box_test/ side by side) instead",
                    argument="root", file=self.root, shown_as=shown_path(self.root, root, shown_as))
            wrapped = _wrapped_images(self.root)
            if wrapped is not None:  # a zip of one folder of images (zip -r cams.zip cams/)
                self.root = wrapped
            pool = read_images(self.root, verify, self.skipped)
            self.query, self.gallery = split_market_protocol(pool)
            self.train = []
            self._split_dirs = {"query": self.root, "gallery": self.root}
            default_name = (self._shown_as if self._shown_as and self.root in (root, wrapped) else self.root.name)
            if pool and not self.query:
                identities = len({im.pid for im in pool if im.pid > 0})
                self._raise_empty(
                    f"no identity is seen by at least two cameras, so no image can be a query ({len(pool)} usable "
                    f"image(s) of {identities} identit{'y' if identities == 1 else 'ies'}); "
                    f"add images of the same people from another camera (the cC in the name), or put the queries in "
                    f"query/ and the gallery in bounding_box_test/")
            if not pool:
                self._raise_empty(None if self.skipped else self._layout_problem())
        self.name = name or default_name
        if self.skipped:
            logger.warning("skipped %d unreadable image(s) in %s: %s", len(self.skipped), self.root,
                           describe_skipped(self.skipped))

    def show_path(self, path):
        """``path`` (the folder given or one inside it) as messages name it: under ``shown_as``
        when one was given (a zip's name instead of the folder it was extracted to), else itself."""
        return shown_path(path, self._given, self._shown_as) or str(path)

    def _error(self, problem, path=None):
        """A DatasetError about ``path`` (default: the dataset's root), named as messages name it."""
        path = self.root if path is None else path
        return DatasetError(problem, argument="root", file=path, shown_as=shown_path(path, self._given, self._shown_as))

    def _layout_problem(self):
        """Why no folder under the root holds query/ and a gallery folder side by side, when the
        query and gallery folders that are there tell (one missing, not side by side, or more
        than one dataset); None when there are none of them."""
        def listed(found):
            shown = [f"{path.relative_to(self.root).as_posix()}/ ({count} image{'s' if count != 1 else ''})"
                     for path, count in found[:3]]
            shown += [f"{len(found) - 3} more"] if len(found) > 3 else []
            return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]

        roots = [p for pattern in ("*", "*/*") for p in sorted(self.root.glob(pattern))
                 if p.is_dir() and _looks_like_root(p)]
        if len(roots) > 1:  # find_dataset_root takes only one
            names = ", ".join(f"{p.relative_to(self.root).as_posix()}/" for p in roots[:5])
            names += f" and {len(roots) - 5} more" if len(roots) > 5 else ""
            return (f"holds {len(roots)} Market-1501 style datasets ({names}), each with query/ and a gallery "
                    f"folder; use one of them at a time")
        needs = "a Market-1501 style dataset needs query/ and bounding_box_test/ side by side"
        queries = _split_folders(self.root, QUERY_DIRS)
        galleries = _split_folders(self.root, GALLERY_DIRS)
        if not queries and not galleries:
            return None
        if not queries:
            return f"has {listed(galleries)} but no query/ folder: {needs}"
        if not galleries:
            return (f"has {listed(queries)} but no bounding_box_test/ folder (the gallery; a gallery/ or "
                    f"test/ folder is read too): {needs}")
        return f"has {listed(queries)} and {listed(galleries)}, but not side by side: {needs}"

    def _raise_empty(self, problem):
        """Raise a DatasetError about the root saying why there is no query or no gallery:
        ``problem``, or (None) what the files under the root are (no images, no Market-style
        names, none readable, only junk, or all in subfolders that are not read)."""
        hint = (f"Expected Market-1501 style names 'PPPP_cC...jpg' such as {EXAMPLE_NAME!r} (pid 0002, camera 1), "
                f"in query/ and bounding_box_test/ folders or in one folder with identities seen by at least two "
                f"cameras")
        skipped = f"; {len(self.skipped)} unreadable image(s) skipped: {describe_skipped(self.skipped)}"
        if problem is not None:
            raise self._error(problem + (skipped if self.skipped else ""))
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if self.skipped:
            # the names are right, the contents are not
            raise self._error(f"none of the {len(self.skipped)} file(s) with Market-1501 style names is a readable "
                              f"image: {describe_skipped(self.skipped)}")
        if not files:
            raise self._error(f"there are no image files. {hint}")
        named = [p for p in files if parse_name(p.name) is not None]
        usable = [p for p in named if parse_name(p.name)[0] != -1]
        if named and not usable:
            raise self._error(
                f"no usable query/gallery images: all {len(named)} file(s) with Market-1501 style names are junk "
                f"(pid -1, a name starting with '-1_'), which is never a query or gallery image. {hint}")
        if usable:  # none directly in the root, and no query/ or gallery folder holds them
            example = usable[0].relative_to(self.root).as_posix()
            raise self._error(
                f"there are no Market-1501 style images directly in this folder: its {len(usable)} file(s) with such "
                f"names are in other folders (for example {example}), which are not read. {hint}")
        raise self._error(f"none of the {len(files)} image file(s) has a Market-1501 style name "
                          f"(for example {files[0].name!r}). {hint}")

    def generated(self, split):
        """Paths of the IPG (generated) images of each image of ``split``.

        Two layouts of ``<split folder>_gen`` are read: one folder per pose (``pose1/NAME``,
        ``pose2/NAME``, ... or ``1/NAME``, ...), or one folder per image (``<NAME without
        extension>/*.jpg``, one file per pose, in name order).

        Parameters
        ----------
        split : "query" or "gallery".

        Returns
        -------
        dict name -> list of P paths, in pose order; only images that have all P; empty if
        there is no generated-images folder.
        """
        if split not in ("query", "gallery"):
            raise ValueError(f"split must be 'query' or 'gallery', got {split!r}")
        split_dir = self._split_dirs[split]
        gen_dir = split_dir.parent / (split_dir.name + GEN_SUFFIX)
        if split_dir == self.root or not gen_dir.is_dir():
            return {}
        images = self.query if split == "query" else self.gallery
        pose_dirs = [p for p in gen_dir.iterdir() if p.is_dir() and re.fullmatch(r"(pose)?\d+", p.name)]
        pose_dirs.sort(key=lambda p: int(p.name.removeprefix("pose")))
        result = {}
        if pose_dirs:
            for image in images:
                paths = [d / image.name for d in pose_dirs]
                if all(p.is_file() for p in paths):
                    result[image.name] = paths
            return result
        per_image = {}
        for image in images:
            folder = gen_dir / Path(image.name).stem
            if folder.is_dir():
                per_image[image.name] = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        counts = [len(paths) for paths in per_image.values()]
        # every image needs the same number of poses (the most common count)
        poses = max(set(counts), key=counts.count) if counts else 0
        return {name: paths for name, paths in per_image.items() if poses and len(paths) == poses}

    def __repr__(self):
        return (
            f"{type(self).__name__}(name={self.name!r}, root='{self.root}', query={len(self.query)}, "
            f"gallery={len(self.gallery)}, train={len(self.train)}, synthetic={self.is_synthetic})"
        )
