"""Features computed by any ReID model, read from a ``.npz`` file (``--features npz:FILE``).

The file holds (``np.savez(FILE, names=..., feats=..., gen_feats=...)``):

``names`` : (N,) str
    Image names of the dataset: the file name (``0002_c1s1_000451_03.jpg``) or its path under the
    dataset root (``query/0002_c1s1_000451_03.jpg``, ``test/0000/0000_000_01_0303morning_0015_0.jpg``).
    Every query and gallery image needs a row; other rows (train, junk) are ignored.
``feats`` : (N, D) float
    One raw (not necessarily normalized) feature per image.
``gen_feats`` : (N, P, D) float, optional
    Features of the P generated (IPG) images of each image, same D.
``gen_mask`` : (N,) bool, optional
    False where an image has no generated images: its ``gen_feats`` row is then not read and the
    image keeps its own feature, as when its generated images are missing from a dataset.

Person ids and cameras come from the dataset (the names), exactly as for the built-in extractors.
Every check runs when the file is read, before any distance is computed.
"""

import hashlib
import zipfile
import zlib
from pathlib import Path

import numpy as np

from pose2id import ArgumentError

__all__ = ["FeatureFile", "FeatureFileError", "load_feature_file"]

FIELDS = ("names", "feats", "gen_feats", "gen_mask")
SAVE_HINT = "write it with np.savez(FILE, names=..., feats=...)"


class FeatureFileError(ArgumentError):
    """A features file that cannot be used with the dataset.

    A :class:`pose2id.ArgumentError` (so a ValueError) with its fields: ``problem`` (what is wrong,
    naming the field, e.g. ``"the features file has no 'names' array ..."``, without the path),
    ``file`` (the ``.npz`` file) and ``argument`` ``"spec"``: the file is the ``FILE`` of a
    features spec ``npz:FILE`` (``--features``). ``str(error)`` is ``"<file>: <problem>"``.
    """


def _refused(path, problem):
    """The FeatureFileError about the features file ``path``."""
    return FeatureFileError(problem, argument="spec", file=path)


def _reason(error):
    """Why numpy could not read the file (or an array in it), in words that do not repeat its path."""
    if isinstance(error, EOFError):
        return "it ends too early: empty or cut short"
    if isinstance(error, ValueError) and "pickle" in str(error):
        return "not numpy data; pickled content is never loaded"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _examples(items, limit=3):
    items = list(items)
    shown = ", ".join(repr(str(item)) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _bad_rows(array):
    """Indices of the rows (first axis) holding NaN or infinity."""
    finite = np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    return np.flatnonzero(~finite)


class FeatureFile:
    """The arrays of a features file, checked on their own (see the module docstring).

    Parameters
    ----------
    path : the ``.npz`` file.

    Attributes
    ----------
    path : Path.
    names : (N,) list of str.
    feats : (N, D) float32.
    gen_feats : (N, P, D) float32 or None.
    gen_mask : (N,) bool (all True when the file has ``gen_feats`` and no ``gen_mask``) or None.
    name : ``"npz:<file name>:<digest>"``, for display and caches.

    Raises
    ------
    FeatureFileError : its ``file`` is ``path``; its ``problem`` names the array at fault.
    """

    def __init__(self, path):
        self.path = path = Path(path).expanduser()
        if path.is_dir():
            raise _refused(path, f"the features file is a folder, not a .npz file; {SAVE_HINT}")
        if not path.is_file():
            raise _refused(path, "the features file does not exist")
        try:
            archive = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise _refused(path, f"the features file is not a .npz archive of arrays ({_reason(error)}); "
                                 f"{SAVE_HINT}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise _refused(path, f"the features file holds a single array, not a .npz archive; {SAVE_HINT}")
        with archive:
            present = set(archive.files)
            for field in ("names", "feats"):
                if field not in present:
                    raise _refused(path, f"the features file has no '{field}' array (it has: "
                                         f"{', '.join(sorted(present)) or 'nothing'}); it needs names (N image "
                                         "names) and feats (N x D), optionally gen_feats (N x P x D)")

            def read(field):
                try:
                    return archive[field]
                except ValueError as error:
                    if "pickle" in str(error):  # object arrays need pickle, which is never loaded
                        raise _refused(path, f"'{field}' in the features file is an array of Python objects; save "
                                             "it as plain strings or numbers (e.g. np.asarray(names, "
                                             "dtype=str))") from None
                    raise _refused(path, f"'{field}' in the features file cannot be read ({_reason(error)})") from None
                except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                    raise _refused(path, f"'{field}' in the features file is damaged ({_reason(error)}); write "
                                         "the file again") from None

            names = read("names")
            feats = read("feats")
            gen_feats = read("gen_feats") if "gen_feats" in present else None
            gen_mask = read("gen_mask") if "gen_mask" in present else None
        self.names = self._check_names(names, path)
        self.feats = self._check_floats(feats, "feats", 2, path)
        n, d = self.feats.shape
        if n != len(self.names):
            raise _refused(path, f"'feats' in the features file has {n} rows but 'names' has {len(self.names)} "
                                 "names; they need one row per name")
        self.gen_feats = None
        self.gen_mask = None
        if gen_feats is not None:
            self.gen_feats = self._check_floats(gen_feats, "gen_feats", 3, path, mask=gen_mask)
            if self.gen_feats.shape[0] != n:
                raise _refused(path, f"'gen_feats' in the features file has {self.gen_feats.shape[0]} rows but "
                                     f"'names' has {n} names; it needs one (P x D) block per name")
            if self.gen_feats.shape[2] != d:
                raise _refused(path, f"'gen_feats' in the features file has features of dimension "
                                     f"{self.gen_feats.shape[2]} but 'feats' has {d}; both must come from the "
                                     "same model")
            if self.gen_feats.shape[1] < 1:
                raise _refused(path, f"'gen_feats' in the features file has shape {self.gen_feats.shape}: no "
                                     "generated image per name (P = 0); leave it out instead")
            self.gen_mask = np.ones(n, dtype=bool) if gen_mask is None else self._check_mask(gen_mask, n, path)
        elif gen_mask is not None:
            raise _refused(path, "the features file has 'gen_mask' but no 'gen_feats'; give both or neither")
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:10]
        self.name = f"npz:{path.name}:{digest}"

    @staticmethod
    def _check_names(names, path):
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise _refused(path, f"'names' in the features file must be a 1-D array of strings (image names), "
                                 f"got shape {names.shape} of {names.dtype}")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
        names = [n.replace("\\", "/").strip() for n in names]
        seen, repeated = set(), []
        for name in names:
            if name in seen:
                repeated.append(name)
            seen.add(name)
        if repeated:
            raise _refused(path, f"'names' in the features file lists {len(repeated)} name(s) more than once, "
                                 f"e.g. {_examples(repeated)}")
        return names

    @staticmethod
    def _check_floats(array, field, ndim, path, mask=None):
        shape_text = "N x D" if ndim == 2 else "N x P x D"
        if array.ndim != ndim or array.dtype.kind not in "fiu":
            raise _refused(path, f"'{field}' in the features file must be a {ndim}-D array of numbers "
                                 f"({shape_text}), got shape {array.shape} of {array.dtype}")
        array = np.asarray(array, dtype=np.float32)
        bad = _bad_rows(array)
        if mask is not None and np.shape(mask) == (array.shape[0],) and np.asarray(mask).dtype == bool:
            bad = bad[np.asarray(mask)[bad]]  # rows without generated images are not read
        if len(bad):
            raise _refused(path, f"'{field}' in the features file has NaN or infinite values in {len(bad)} "
                                 f"row(s), e.g. rows {', '.join(str(int(i)) for i in bad[:3])}")
        return array

    @staticmethod
    def _check_mask(mask, n, path):
        if mask.shape != (n,) or mask.dtype != bool:
            raise _refused(path, f"'gen_mask' in the features file must be a (N,) bool array with N = {n}, got "
                                 f"shape {mask.shape} of {mask.dtype}")
        return mask

    @property
    def dim(self):
        return self.feats.shape[1]

    def rows_for(self, dataset):
        """Row of each query and gallery image of ``dataset`` in the file.

        An image is found by its path under the dataset root, by its path under its split's
        folder, or by its file name, in that order. Raises FeatureFileError saying how many images
        have a row, with examples of both sides, when some have none.

        Returns
        -------
        (query_rows, gallery_rows) : (Nq,), (Ng,) int arrays.
        """
        lookup = {name: i for i, name in enumerate(self.names)}
        root = Path(getattr(dataset, "root", "."))
        rows, missing, used = {}, [], {}
        for split in ("query", "gallery"):
            found = []
            for image in getattr(dataset, split):
                keys = []
                try:
                    relative = Path(image.path).relative_to(root).as_posix()
                    keys += [relative, relative.partition("/")[2]]
                except (TypeError, ValueError):
                    pass
                keys.append(image.name)
                row = next((lookup[k] for k in keys if k and k in lookup), None)
                if row is None:
                    missing.append(image.name)
                    continue
                if row in used and used[row] != (split, image.name):
                    raise _refused(
                        self.path,
                        f"'names' in the features file has the entry {self.names[row]!r}, which matches two images of "
                        f"{dataset.name} ({used[row][0]} and {split}); write the names with their folder, e.g. "
                        f"'query/NAME' and 'bounding_box_test/NAME'")
                used[row] = (split, image.name)
                found.append(row)
            rows[split] = np.asarray(found, dtype=np.int64)
        if missing:
            total = len(dataset.query) + len(dataset.gallery)
            unused = [name for i, name in enumerate(self.names) if i not in used]
            raise _refused(
                self.path,
                f"'names' in the features file matches {total - len(missing)} of the {total} query and gallery "
                f"images of {dataset.name}; missing e.g. {_examples(missing)}"
                + (f"; the file's names that match no image are e.g. {_examples(unused)}" if unused else "")
                + ". Names are the image file names (or their paths under the dataset folder)")
        return rows["query"], rows["gallery"]


def load_feature_file(path):
    """Read and check a features file; see :class:`FeatureFile`."""
    return FeatureFile(path)
