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
from pathlib import Path

import numpy as np

__all__ = ["FeatureFile", "FeatureFileError", "load_feature_file"]

FIELDS = ("names", "feats", "gen_feats", "gen_mask")


class FeatureFileError(ValueError):
    """A features file that cannot be used with the dataset; the message names the file and the field."""


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
    """

    def __init__(self, path):
        self.path = Path(path).expanduser()
        where = str(self.path)
        if not self.path.is_file():
            raise FeatureFileError(f"features file {where} does not exist")
        try:
            archive = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as error:
            raise FeatureFileError(f"features file {where} is not a .npz archive of arrays ({error}); write it "
                                   "with np.savez(FILE, names=..., feats=...)") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise FeatureFileError(f"features file {where} holds a single array, not a .npz archive; write it "
                                   "with np.savez(FILE, names=..., feats=...)")
        with archive:
            present = set(archive.files)
            for field in ("names", "feats"):
                if field not in present:
                    raise FeatureFileError(f"features file {where} has no '{field}' array (it has: "
                                           f"{', '.join(sorted(present)) or 'nothing'}); it needs names (N image "
                                           "names) and feats (N x D), optionally gen_feats (N x P x D)")

            def read(field):
                try:
                    return archive[field]
                except ValueError:  # object arrays need pickle, which is never loaded
                    raise FeatureFileError(
                        f"features file {where}: '{field}' is an array of Python objects; save it as plain "
                        f"strings or numbers (e.g. np.asarray(names, dtype=str))") from None

            names = read("names")
            feats = read("feats")
            gen_feats = read("gen_feats") if "gen_feats" in present else None
            gen_mask = read("gen_mask") if "gen_mask" in present else None
        self.names = self._check_names(names, where)
        self.feats = self._check_floats(feats, "feats", 2, where)
        n, d = self.feats.shape
        if n != len(self.names):
            raise FeatureFileError(f"features file {where}: 'feats' has {n} rows but 'names' has {len(self.names)} "
                                   "names; they need one row per name")
        self.gen_feats = None
        self.gen_mask = None
        if gen_feats is not None:
            self.gen_feats = self._check_floats(gen_feats, "gen_feats", 3, where, mask=gen_mask)
            if self.gen_feats.shape[0] != n:
                raise FeatureFileError(f"features file {where}: 'gen_feats' has {self.gen_feats.shape[0]} rows but "
                                       f"'names' has {n} names; it needs one (P x D) block per name")
            if self.gen_feats.shape[2] != d:
                raise FeatureFileError(f"features file {where}: 'gen_feats' has features of dimension "
                                       f"{self.gen_feats.shape[2]} but 'feats' has {d}; both must come from the "
                                       "same model")
            if self.gen_feats.shape[1] < 1:
                raise FeatureFileError(f"features file {where}: 'gen_feats' has shape {self.gen_feats.shape}: no "
                                       "generated image per name (P = 0); leave it out instead")
            self.gen_mask = np.ones(n, dtype=bool) if gen_mask is None else self._check_mask(gen_mask, n, where)
        elif gen_mask is not None:
            raise FeatureFileError(f"features file {where}: 'gen_mask' is given without 'gen_feats'")
        digest = hashlib.sha1(self.path.read_bytes()).hexdigest()[:10]
        self.name = f"npz:{self.path.name}:{digest}"

    @staticmethod
    def _check_names(names, where):
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise FeatureFileError(f"features file {where}: 'names' must be a 1-D array of strings (image names), "
                                   f"got shape {names.shape} of {names.dtype}")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
        names = [n.replace("\\", "/").strip() for n in names]
        seen, repeated = set(), []
        for name in names:
            if name in seen:
                repeated.append(name)
            seen.add(name)
        if repeated:
            raise FeatureFileError(f"features file {where}: 'names' lists {len(repeated)} name(s) more than once, "
                                   f"e.g. {_examples(repeated)}")
        return names

    @staticmethod
    def _check_floats(array, field, ndim, where, mask=None):
        shape_text = "N x D" if ndim == 2 else "N x P x D"
        if array.ndim != ndim or array.dtype.kind not in "fiu":
            raise FeatureFileError(f"features file {where}: '{field}' must be a {ndim}-D array of numbers "
                                   f"({shape_text}), got shape {array.shape} of {array.dtype}")
        array = np.asarray(array, dtype=np.float32)
        bad = _bad_rows(array)
        if mask is not None and np.shape(mask) == (array.shape[0],) and np.asarray(mask).dtype == bool:
            bad = bad[np.asarray(mask)[bad]]  # rows without generated images are not read
        if len(bad):
            raise FeatureFileError(f"features file {where}: '{field}' has NaN or infinite values in {len(bad)} "
                                   f"row(s), e.g. rows {', '.join(str(int(i)) for i in bad[:3])}")
        return array

    @staticmethod
    def _check_mask(mask, n, where):
        if mask.shape != (n,) or mask.dtype != bool:
            raise FeatureFileError(f"features file {where}: 'gen_mask' must be a (N,) bool array with N = {n}, got "
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
                    raise FeatureFileError(
                        f"features file {self.path}: 'names' entry {self.names[row]!r} matches two images of "
                        f"{dataset.name} ({used[row][0]} and {split}); write the names with their folder, e.g. "
                        f"'query/NAME' and 'bounding_box_test/NAME'")
                used[row] = (split, image.name)
                found.append(row)
            rows[split] = np.asarray(found, dtype=np.int64)
        if missing:
            total = len(dataset.query) + len(dataset.gallery)
            unused = [name for i, name in enumerate(self.names) if i not in used]
            raise FeatureFileError(
                f"features file {self.path}: 'names' matches {total - len(missing)} of the {total} query and gallery "
                f"images of {dataset.name}; missing e.g. {_examples(missing)}"
                + (f"; the file's names that match no image are e.g. {_examples(unused)}" if unused else "")
                + ". Names are the image file names (or their paths under the dataset folder)")
        return rows["query"], rows["gallery"]


def load_feature_file(path):
    """Read and check a features file; see :class:`FeatureFile`."""
    return FeatureFile(path)
