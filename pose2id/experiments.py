"""The paper's retrieval experiments on one dataset and one feature extractor.

    >>> from pose2id.experiments import prepare_benchmark
    >>> bench = prepare_benchmark("synthped", "handcrafted")
    >>> bench.table()           # rows Base, +NFC, +IPG, +NFC+IPG, like Table 2 of the paper

The command line (``python -m pose2id eval`` / ``sweep``) is registered from here.

Methods (ALGORITHMS.md): Base = L2-normalized features; +NFC = neighbour feature
centralization on the query set and on the gallery set separately; +IPG = fusion of each
image's feature with the mean feature of its generated images, ``normalize(f + eta * mean(g))``;
+NFC+IPG = fusion first, then NFC on the fused features. Distances are squared Euclidean
(or k-reciprocal re-ranking); evaluation is the Market-1501 protocol.

Images without generated images (the published ``query_gen/`` and ``bounding_box_test_gen/``
hold them for the real identities only) keep their own feature, as in the authors' evaluation:
their reader repeats the original image in place of the P generated ones, and
``normalize(f + eta * mean(f, ..., f)) = normalize(f)``.
"""

import json
import sys
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np

import pose2id as p2
from pose2id._options import check_device, device, in_option_terms, non_negative_float, positive_int
from pose2id.lru import ByteLRU

METHODS = ("Base", "+NFC", "+IPG", "+NFC+IPG")
RERANK_K1, RERANK_K2, RERANK_LAMBDA = 20, 6, 0.3
# Neighbours NFC searches per feature set at least: the app's k1 / k2 sliders end at 10.
NFC_NEIGHBOURS = 10
CAMERA_IDS = ("auto", "on", "off")
ID2_CAPTION = (
    "ID²: mean identity density (squared distance of each normalized feature to its identity centre) "
    "over the query and gallery features after the method, distractors excluded; lower = more centralized."
)


@dataclass
class Benchmark:
    """Features of one dataset's query and gallery, and the four methods on them.

    Attributes
    ----------
    query, gallery : lists of ReIDImage (Nq and Ng).
    qf, gf : (Nq, D), (Ng, D) float32 raw features.
    q_gen, g_gen : (Nq, P, D), (Ng, P, D) float32 features of the generated (IPG) images, or None.
    q_pids, g_pids, q_camids, g_camids : int arrays.
    dataset_name, extractor_name, is_synthetic : for display.
    ipg_note : why +IPG is unavailable ("" when it is available).
    ipg_coverage : {"query": {"with_generated": n, "total": N}, "gallery": {...}}: how many images
        have generated images; the others keep their own feature under +IPG.
    ipg_has : {"query": (Nq,) bool, "gallery": (Ng,) bool}: which images have generated images
        (None: all of them when there are generated features, else none); ``ipg_missing`` names
        the images of real identities (pid > 0) among those without.
    uses_camera_ids : whether the extractor took each original image's camera (TransReID's SIE).
    """

    query: list
    gallery: list
    qf: np.ndarray
    gf: np.ndarray
    q_gen: np.ndarray = None
    g_gen: np.ndarray = None
    dataset_name: str = ""
    extractor_name: str = ""
    is_synthetic: bool = False
    ipg_note: str = ""
    ipg_coverage: dict = None
    uses_camera_ids: bool = False
    timings: dict = field(default_factory=dict)
    ipg_has: dict = None
    # results per parameter set, the most recently used kept within a bound in bytes
    _cache: ByteLRU = field(default_factory=ByteLRU, repr=False)

    def __post_init__(self):
        self.q_pids = np.array([im.pid for im in self.query], dtype=np.int64)
        self.g_pids = np.array([im.pid for im in self.gallery], dtype=np.int64)
        self.q_camids = np.array([im.camid for im in self.query], dtype=np.int64)
        self.g_camids = np.array([im.camid for im in self.gallery], dtype=np.int64)
        if self.qf.shape[0] != len(self.query) or self.gf.shape[0] != len(self.gallery):
            raise ValueError(
                f"qf/gf have {self.qf.shape[0]}/{self.gf.shape[0]} rows but there are "
                f"{len(self.query)}/{len(self.gallery)} query/gallery images"
            )
        if (self.q_gen is None) != (self.g_gen is None):
            raise ValueError("q_gen and g_gen must both be given or both be None")
        if self.ipg_coverage is None:
            self.ipg_coverage = {
                split: {"with_generated": len(images) if self.has_ipg else 0, "total": len(images)}
                for split, images in (("query", self.query), ("gallery", self.gallery))}

    def share_cache(self, cache):
        """Keep this benchmark's results in ``cache`` (a :class:`pose2id.lru.ByteLRU`, or a scope
        of one) from now on, so that one bound in bytes holds for several benchmarks: a server
        gives all its galleries one. Results held so far are dropped."""
        self._cache.clear()
        self._cache = cache.scope() if isinstance(cache, ByteLRU) else cache

    def drop_results(self):
        """Forget the results held for each parameter set (they are recomputed when asked for)."""
        self._cache.clear()

    @property
    def has_ipg(self):
        return self.q_gen is not None

    @property
    def ipg_coverage_note(self):
        """``"generated images for 3 of 3 query and 6 of 8 gallery images; the other 2 keep their
        own feature"`` when +IPG runs with some images lacking them, else ""."""
        if not self.has_ipg:
            return ""
        q, g = self.ipg_coverage["query"], self.ipg_coverage["gallery"]
        without = q["total"] - q["with_generated"] + g["total"] - g["with_generated"]
        if not without:
            return ""
        head = (f"generated images for {q['with_generated']} of {q['total']} query and {g['with_generated']} of "
                f"{g['total']} gallery images; the other {without} keep their own feature under +IPG")
        missing = self.ipg_missing
        real = len(missing["query"]) + len(missing["gallery"])
        if not real:
            return head + " (as in the authors' evaluation, where distractors have no generated images)"
        examples = [f"{split} {name}" for split in ("query", "gallery") for name in missing[split]]
        shown = ", ".join(examples[:3]) + (f" and {real - 3} more" if real > 3 else "")
        distractors = without - real
        if self.extractor_name.startswith("npz:"):  # features computed elsewhere: their file lacks them
            remedy = "add their gen_feats rows to the features file"
        else:
            remedy = "add the missing poseK/ files (python -m pose2id generate --dataset writes only what is missing)"
        return (head + f": {distractors} distractor(s) (pid 0), which the published sets leave out, and {real} "
                f"image(s) of real identities whose generated images are missing or lack a pose ({shown}). "
                f"The generated set is incomplete: {remedy}, or these images are not centralized by IPG")

    @property
    def ipg_missing(self):
        """{"query": [names], "gallery": [names]}: the images of real identities (pid > 0) without
        generated images while +IPG runs (the published sets leave out only the distractors, so
        these tell an incomplete generated set); empty lists without +IPG."""
        missing = {"query": [], "gallery": []}
        if not self.has_ipg or self.ipg_has is None:
            return missing
        for split, images in (("query", self.query), ("gallery", self.gallery)):
            missing[split] = [im.name for im, has in zip(images, self.ipg_has[split]) if not has and im.pid > 0]
        return missing

    @property
    def methods(self):
        """The methods this benchmark can run (the +IPG ones need generated images)."""
        return METHODS if self.has_ipg else METHODS[:2]

    def _check(self, method, k1, k2, eta):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if "IPG" in method and not self.has_ipg:
            raise ValueError(f"method {method!r} needs generated images: {self.ipg_note}")
        for name, k in (("k1", k1), ("k2", k2)):
            # UI sliders hand over 2.0 for 2: accept whole numbers of any numeric type
            if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or k != int(k) or k < 1:
                raise ValueError(f"{name} must be a positive integer, got {k!r}")
        if not np.isfinite(eta) or eta < 0:
            raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")

    @staticmethod
    def _rerank(rerank):
        """``rerank`` as None (off) or the (k1, k2, lambda) of k-reciprocal re-ranking: True means
        Zhong et al.'s (20, 6, 0.3)."""
        if rerank is None or rerank is False:
            return None
        if rerank is True:
            return (RERANK_K1, RERANK_K2, RERANK_LAMBDA)
        try:
            k1, k2, lam = rerank
        except (TypeError, ValueError):
            raise ValueError(f"rerank must be True, False or (k1, k2, lambda), got {rerank!r}") from None
        for name, k in (("rerank k1", k1), ("rerank k2", k2)):
            if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or k != int(k) or k < 1:
                raise ValueError(f"{name} must be a positive integer, got {k!r}")
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) or not 0 <= lam <= 1:
            raise ValueError(f"rerank lambda must be a number in [0, 1], got {lam!r}")
        return (int(k1), int(k2), float(lam))

    @staticmethod
    def _key(method, k1, k2, eta):
        # Parameters a method ignores must not split the cache.
        return (method, int(k1) if "NFC" in method else 0, int(k2) if "NFC" in method else 0,
                float(eta) if "IPG" in method else 0.0)

    def features(self, method="Base", k1=2, k2=2, eta=2.0):
        """Query and gallery features after ``method``.

        Returns
        -------
        (qf', gf') : (Nq, D), (Ng, D) float32, rows L2-normalized.
        """
        self._check(method, k1, k2, eta)
        k1, k2, eta = int(k1), int(k2), float(eta)
        if "NFC" in method:
            # Not kept: with the neighbours kept (the search is nearly all of NFC's cost), these
            # take milliseconds, and kept they would fill the result cache (4 MB per parameter
            # set for SynthPed, against under 1 MB for its distances).
            # Query and gallery separately: joint NFC would leak query information into the gallery.
            plain = method.replace("+NFC", "") or "Base"
            q, g = self.features(plain, k1, k2, eta)
            q_nbr, g_nbr = self._neighbours(plain, eta, max(k1, k2))
            return (np.asarray(p2.nfc(q, k1=k1, k2=k2, neighbors=q_nbr), dtype=np.float32),
                    np.asarray(p2.nfc(g, k1=k1, k2=k2, neighbors=g_nbr), dtype=np.float32))
        key = ("features",) + self._key(method, k1, k2, eta)
        if key not in self._cache:
            if "IPG" in method:
                q, g = p2.ipg_fuse(self.qf, self.q_gen, eta=eta), p2.ipg_fuse(self.gf, self.g_gen, eta=eta)
            else:
                q, g = _normalize(self.qf), _normalize(self.gf)
            self._cache[key] = (np.asarray(q, dtype=np.float32), np.asarray(g, dtype=np.float32))
        return self._cache[key]

    def _neighbours(self, method, eta, k):
        """The nearest neighbours NFC needs of the query and of the gallery features after
        ``method`` ("Base" or "+IPG"): searched once for at least :data:`NFC_NEIGHBOURS` of them
        (the search is nearly all of NFC's cost), so that every k1, k2 up to that reuses it
        with the same result; searched again only for a larger k."""
        key = ("neighbours",) + self._key(method, 0, 0, eta)
        found = self._cache.get(key)
        if found is None or any(nbr.shape[1] < min(k, len(nbr) - 1) for nbr in found):
            q, g = self.features(method, eta=eta)
            # a side too small for k gets what it has; nfc then says k is too large for it
            found = tuple(p2.nfc_neighbors(x, min(max(k, NFC_NEIGHBOURS), len(x) - 1)) if len(x) > 1 else
                          np.zeros((len(x), 0), dtype=np.int64) for x in (q, g))
            self._cache[key] = found
        return found

    def distances(self, method="Base", k1=2, k2=2, eta=2.0, rerank=False):
        """(Nq, Ng) float32 query-gallery distances after ``method``: squared Euclidean, or
        k-reciprocal re-ranking when ``rerank`` is True (k1=20, k2=6, lambda=0.3) or a
        ``(k1, k2, lambda)`` tuple (TransReID's own evaluation uses (50, 15, 0.3)). A dataset
        smaller than k1 + 1 images gets k1 capped at N - 1 and k2 at k1."""
        self._check(method, k1, k2, eta)
        rerank = self._rerank(rerank)
        key = ("distances", rerank) + self._key(method, k1, k2, eta)
        if key not in self._cache:
            q, g = self.features(method, k1, k2, eta)
            self._keep_id2(method, k1, k2, eta, (q, g))  # the metrics table asks next: NFC is not kept
            if rerank is not None:
                # datasets of at most k1 images get k1 capped at N - 1, and k2 at that k1
                n = len(q) + len(g)
                k1_rr = min(rerank[0], n - 1)
                k2_rr = min(rerank[1], k1_rr if k1_rr < rerank[0] else n)
                dist = p2.re_ranking(q, g, k1=k1_rr, k2=k2_rr, lambda_value=rerank[2])
            else:
                dist = p2.pairwise_sqeuclidean(q, g)
            self._cache[key] = np.asarray(dist, dtype=np.float32)
        return self._cache[key]

    def kept_distances(self, method="Base", k1=2, k2=2, eta=2.0, rerank=False):
        """:meth:`distances` if they are kept from an earlier call, else None (nothing computed)."""
        self._check(method, k1, k2, eta)
        return self._cache.get(("distances", self._rerank(rerank)) + self._key(method, k1, k2, eta))

    def evaluate(self, method="Base", k1=2, k2=2, eta=2.0, rerank=False):
        """``p2.EvalResult`` (mAP, CMC, mINP) of ``method`` under the Market-1501 protocol."""
        self._check(method, k1, k2, eta)
        rerank = self._rerank(rerank)
        key = ("evaluate", rerank) + self._key(method, k1, k2, eta)
        if key not in self._cache:
            dist = self.distances(method, k1, k2, eta, rerank)
            self._cache[key] = p2.evaluate(dist, self.q_pids, self.g_pids, self.q_camids, self.g_camids)
        return self._cache[key]

    def id2_samples(self, method="Base", k1=2, k2=2, eta=2.0):
        """(pids, density): the identity density (:func:`pose2id.id2`) of every query and gallery
        image after ``method``, distractors (pid <= 0) excluded, query images first. Computed
        once per parameter set: :meth:`id2` and :meth:`id2_per_identity` read it."""
        self._check(method, k1, k2, eta)
        return self._keep_id2(method, k1, k2, eta)

    def _keep_id2(self, method, k1, k2, eta, features=None):
        """:meth:`id2_samples`, kept, computed (unless already kept) from ``features``, the
        (q, g) features after ``method`` when the caller has them, else from :meth:`features`."""
        key = ("id2",) + self._key(method, k1, k2, eta)
        found = self._cache.get(key)
        if found is None:
            q, g = self.features(method, k1, k2, eta) if features is None else features
            pids = np.concatenate([self.q_pids, self.g_pids])
            keep = pids > 0
            density = np.asarray(p2.id2(np.concatenate([q, g])[keep], pids[keep]))
            found = (pids[keep], density)
            for array in found:
                array.flags.writeable = False  # kept and shared between callers
            self._cache[key] = found
        return found

    def id2(self, method="Base", k1=2, k2=2, eta=2.0):
        """Global ID² of query + gallery features after ``method`` (distractors, pid <= 0, excluded)."""
        return float(np.mean(self.id2_samples(method, k1, k2, eta)[1]))

    def id2_per_identity(self, method="Base", k1=2, k2=2, eta=2.0):
        """(identities, mean ID² of each), identities sorted, as :func:`pose2id.id2_per_identity`
        of query + gallery features after ``method`` (distractors excluded)."""
        pids, density = self.id2_samples(method, k1, k2, eta)
        unique, group = np.unique(pids, return_inverse=True)
        sums = np.bincount(group, weights=density.astype(np.float64))
        return unique, (sums / np.bincount(group)).astype(np.float32)

    def row(self, method, k1=2, k2=2, eta=2.0, rerank=False):
        """One table row: {"method", "mAP", "mAP_tie_range", "rank1", "rank5", "rank10", "mINP",
        "id2"} (fractions; ``mAP_tie_range`` is [worst, best] over orders of equal distances)."""
        result = self.evaluate(method, k1, k2, eta, rerank)
        cmc = np.asarray(result.cmc)
        return {
            "method": method,
            "mAP": float(result.mAP),
            "mAP_tie_range": [float(v) for v in result.mAP_tie_range],
            "rank1": float(cmc[0]),
            "rank5": float(cmc[min(4, len(cmc) - 1)]),
            "rank10": float(cmc[min(9, len(cmc) - 1)]),
            "mINP": float(result.mINP),
            "id2": self.id2(method, k1, k2, eta),
        }

    def table(self, k1=2, k2=2, eta=2.0, rerank=False):
        """Rows for every available method (see :meth:`row`), in the paper's order."""
        return [self.row(m, k1, k2, eta, rerank) for m in self.methods]


def _normalize(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class _Progress:
    """Turns the stages of :func:`prepare_benchmark` into one ``progress(done, total)`` stream."""

    def __init__(self, callback, total):
        self.callback, self.total, self.offset = callback, total, 0

    def stage(self, size):
        offset = self.offset
        self.offset += size
        if self.callback is None:
            return None
        return lambda done, _total: self.callback(offset + done, self.total)


def _call_extract(extract, extractor, paths, cache_dir, progress, camids):
    """``extract`` with camera ids only where the extractor uses them (an extractor, or an
    ``extract``, without camera support is called as before)."""
    if camids is not None and getattr(extractor, "uses_camera_ids", False):
        return extract(extractor, paths, cache_dir=cache_dir, progress=progress, camids=list(camids))
    return extract(extractor, paths, cache_dir=cache_dir, progress=progress)


def _get_extractor(spec, device="cpu", camera_ids="auto"):
    """:func:`pose2id.features.get_extractor`, passing ``camera_ids`` where it is supported."""
    import inspect

    from pose2id.features import get_extractor

    if camera_ids not in CAMERA_IDS:
        raise ValueError(f"camera_ids must be one of {CAMERA_IDS}, got {camera_ids!r}")
    if "camera_ids" in inspect.signature(get_extractor).parameters:
        return get_extractor(spec, device=device, camera_ids=camera_ids)
    if camera_ids == "on":
        raise ValueError(f"camera_ids 'on': the extractor {spec!r} cannot use camera ids")
    return get_extractor(spec, device=device)


def _with_own_features(feats, gen_feats, has_gen):
    """(N, P, D) generated features where the rows without generated images (``has_gen`` False)
    repeat the image's own feature: ``ipg_fuse`` then gives them ``normalize(f)``, their Base feature."""
    gen = np.array(gen_feats, dtype=np.float32, copy=True)
    gen[~has_gen] = np.asarray(feats, dtype=np.float32)[~has_gen, None, :]
    return gen


def _npz_benchmark(dataset, features):
    """qf, gf, q_gen, g_gen, ipg_note, coverage, has (which images have generated features, None
    without +IPG) from a :class:`pose2id.features.npz.FeatureFile`."""
    q_rows, g_rows = features.rows_for(dataset)
    qf, gf = features.feats[q_rows], features.feats[g_rows]
    q_gen = g_gen = None
    coverage = {split: {"with_generated": 0, "total": len(rows)} for split, rows in (("query", q_rows),
                                                                                     ("gallery", g_rows))}
    if features.gen_feats is None:
        ipg_note = f"the features file {features.path.name} has no gen_feats (features of the generated images)"
    elif not features.gen_mask[q_rows].any() and not features.gen_mask[g_rows].any():
        ipg_note = f"gen_mask in the features file {features.path.name} is False for every query and gallery image"
    else:
        ipg_note = ""
        q_has, g_has = features.gen_mask[q_rows], features.gen_mask[g_rows]
        q_gen = _with_own_features(qf, features.gen_feats[q_rows], q_has)
        g_gen = _with_own_features(gf, features.gen_feats[g_rows], g_has)
        coverage["query"]["with_generated"], coverage["gallery"]["with_generated"] = int(q_has.sum()), int(g_has.sum())
        has = {"query": np.asarray(q_has, dtype=bool), "gallery": np.asarray(g_has, dtype=bool)}
    return qf, gf, q_gen, g_gen, ipg_note, coverage, has if q_gen is not None else None


def prepare_benchmark(dataset, extractor, progress=None, cache_dir=None, device="cpu", camera_ids="auto"):
    """Extract (or load cached) features for a dataset's query and gallery and their IPG images.

    Parameters
    ----------
    dataset : a dataset of :mod:`pose2id.data` (Market-1501 style, MSMT17, SynthPed) or a spec for
        :func:`pose2id.data.open_dataset` ("synthped", "market1501:PATH", "msmt17:PATH", a folder or .zip).
    extractor : an extractor, a spec for :func:`pose2id.features.get_extractor`, or
        "npz:FILE" / a :class:`pose2id.features.npz.FeatureFile` (features computed elsewhere).
    progress : optional ``progress(done, total)`` over all images to describe.
    cache_dir : feature cache folder (default ``$POSE2ID_CACHE/features``).
    device, camera_ids : for an extractor given as a spec ("auto", "on" or "off": whether a
        TransReID checkpoint's camera embedding is used). An extractor with ``uses_camera_ids``
        gets each original image's 0-based camera; generated images get none.

    Returns
    -------
    Benchmark. Images without generated images keep their own feature under +IPG
    (``ipg_coverage`` counts them); ``q_gen``/``g_gen`` are None (and ``ipg_note`` says why)
    only when no query or gallery image has generated images.
    """
    from pose2id.data import open_dataset
    from pose2id.features.npz import FeatureFile

    timings = {}
    start = time.perf_counter()
    if isinstance(dataset, (str, Path)):
        dataset = open_dataset(dataset)
    if isinstance(extractor, str) and extractor.startswith("npz:"):
        extractor = FeatureFile(extractor[len("npz:"):])
    elif isinstance(extractor, str):
        extractor = _get_extractor(extractor, device=device, camera_ids=camera_ids)
    timings["dataset_s"] = time.perf_counter() - start

    start = time.perf_counter()
    if isinstance(extractor, FeatureFile):
        qf, gf, q_gen, g_gen, ipg_note, coverage, has = _npz_benchmark(dataset, extractor)
        if progress is not None:
            total = len(dataset.query) + len(dataset.gallery)
            progress(total, total)
    else:
        qf, gf, q_gen, g_gen, ipg_note, coverage, has = _extracted(dataset, extractor, progress, cache_dir)
    timings["features_s"] = time.perf_counter() - start
    return Benchmark(
        query=list(dataset.query),
        gallery=list(dataset.gallery),
        qf=qf,
        gf=gf,
        q_gen=q_gen,
        g_gen=g_gen,
        dataset_name=dataset.name,
        extractor_name=extractor.name,
        is_synthetic=dataset.is_synthetic,
        ipg_note=ipg_note,
        ipg_coverage=coverage,
        ipg_has=has,
        uses_camera_ids=bool(getattr(extractor, "uses_camera_ids", False)),
        timings=timings,
    )


def _no_generated_note(dataset):
    """Why +IPG is unavailable, naming the generated-image folders this dataset would read."""
    if getattr(dataset, "is_synthetic", False) and getattr(dataset, "has_generated", True) is False:
        return ("no generated images: SynthPed was opened without its generated sets "
                "(open_dataset('synthped') draws them)")
    test_dir = getattr(dataset, "test_dir", None)  # MSMT17: one test folder for query and gallery
    if test_dir is not None:
        folders = [test_dir.name]
    else:
        split_dirs = getattr(dataset, "_split_dirs", {})
        folders = list(dict.fromkeys(d.name for d in split_dirs.values() if d != getattr(dataset, "root", None)))
    if not folders:
        return "no generated images in this dataset (its images are not in split folders, so it has no *_gen folders)"
    listed = " and ".join(f"{name}_gen/" for name in folders)
    return f"no generated images ({listed} {'folders' if len(folders) > 1 else 'folder'} with pose1..poseP) in this dataset"


def _pose_count_problem(dataset, gen_paths):
    """Why the generated sets of ``dataset``'s splits (``gen_paths``: split -> {name: P paths})
    cannot be used together: how many poses each one's folder has, and what to do."""
    told = []
    for split, found in gen_paths.items():
        counts = sorted({len(paths) for paths in found.values()})
        if counts:
            folder = next(iter(found.values()))[0].parent.parent  # <split>_gen/, above poseK/ or the image's folder
            shown = dataset.show_path(folder) if hasattr(dataset, "show_path") else str(folder)
            told.append(f"{shown}/ has {' or '.join(map(str, counts))} per image ({split})")
    return (f"the generated images of {dataset.name} have different numbers of poses: {'; '.join(told)}. Every "
            f"image needs the same number P: complete the set with fewer (a poseK/ folder missing, e.g. a "
            f"download that stopped early) or leave out the extra poses")


def _extracted(dataset, extractor, progress, cache_dir):
    """qf, gf, q_gen, g_gen, ipg_note, coverage, has computed by ``extractor`` (see :func:`prepare_benchmark`)."""
    from pose2id.data import DatasetError
    from pose2id.features import extract

    gen_paths = {"query": dataset.generated("query"), "gallery": dataset.generated("gallery")}
    splits = {"query": list(dataset.query), "gallery": list(dataset.gallery)}
    has = {split: np.array([im.name in gen_paths[split] for im in images], dtype=bool)
           for split, images in splits.items()}
    coverage = {split: {"with_generated": int(has[split].sum()), "total": len(images)}
                for split, images in splits.items()}
    use_ipg = bool(has["query"].any() or has["gallery"].any())
    ipg_note = "" if use_ipg else _no_generated_note(dataset)
    poses = 0
    if use_ipg:
        counts = {len(paths) for split in splits for paths in gen_paths[split].values()}
        if len(counts) > 1:
            raise ValueError(_pose_count_problem(dataset, gen_paths))
        poses = counts.pop()

    sizes = [len(splits["query"]), len(splits["gallery"]),
             int(has["query"].sum()) * poses, int(has["gallery"].sum()) * poses]
    tracker = _Progress(progress, sum(sizes))
    feats = {}
    for split, size in zip(splits, sizes[:2]):
        images = splits[split]
        feats[split] = _call_extract(extract, extractor, [im.path for im in images], cache_dir, tracker.stage(size),
                                     [im.camid for im in images])
    gens = {"query": None, "gallery": None}
    if use_ipg:
        for split, size in zip(splits, sizes[2:]):
            images = [im for im, ok in zip(splits[split], has[split]) if ok]
            paths = [p for im in images for p in gen_paths[split][im.name]]
            # generated images are taken without a camera embedding (their camera is no camera's)
            try:
                found = _call_extract(extract, extractor, paths, cache_dir, tracker.stage(size), None)
            except DatasetError as error:
                if error.file is None:
                    raise
                # generate --dataset skips files that exist, so a broken one must go before it is redrawn
                raise DatasetError(f"{error.problem}: a generated image; delete it and run python -m pose2id "
                                   f"generate --dataset again, which draws only the missing files",
                                   file=error.file, shown_as=error.shown_as) from None
            gen = np.zeros((len(splits[split]), poses, feats[split].shape[1]), dtype=np.float32)
            if images:
                gen[has[split]] = found.reshape(len(images), poses, -1)
            gens[split] = _with_own_features(feats[split], gen, has[split])
    return (feats["query"], feats["gallery"], gens["query"], gens["gallery"], ipg_note, coverage,
            has if use_ipg else None)


def format_table(rows, title=""):
    """Markdown table of :meth:`Benchmark.table` rows (percentages, ID² to 4 decimals).

    A row whose mAP depends, at the shown precision, on the order of exactly equal distances
    (common after NFC) is starred, with its range under the table.
    """
    lines = [title, ""] if title else []
    lines += ["| Method | mAP | Rank-1 | Rank-5 | Rank-10 | ID² |", "|---|---:|---:|---:|---:|---:|"]
    notes = []
    for r in rows:
        lo, hi = (100 * v for v in r.get("mAP_tie_range", (r["mAP"], r["mAP"])))
        star = f"{lo:.2f}" != f"{hi:.2f}"
        if star:
            notes.append(f"{r['method']} {lo:.2f}–{hi:.2f}")
        lines.append(
            f"| {r['method']} | {100 * r['mAP']:.2f}{'*' if star else ''} | {100 * r['rank1']:.2f} | "
            f"{100 * r['rank5']:.2f} | {100 * r['rank10']:.2f} | {r['id2']:.4f} |"
        )
    if notes:
        lines += ["", "\\* equal distances, ordered by gallery index here; in any other order the mAP "
                  "lies in: " + ", ".join(notes)]
    return "\n".join(lines)


def _describe(bench, args):
    synthetic = " — synthetic data" if bench.is_synthetic and "synthetic" not in bench.dataset_name else ""
    return (
        f"{bench.dataset_name}{synthetic} · features {bench.extractor_name} · {len(bench.query)} query / "
        f"{len(bench.gallery)} gallery · k1={args.k1} k2={args.k2} eta={args.eta}"
        + (" · k-reciprocal re-ranking (k1={} k2={} lambda={:g})".format(*args.rerank_params)
           if args.rerank_params else "")
    )


def _stderr_progress(label):
    """``progress(done, total)`` printing to stderr: one updating line on a terminal, else every 25%."""
    tty = sys.stderr.isatty()
    step = 10 if tty else 25
    state = {"last": -step}

    def report(done, total):
        percent = 100 * done // max(total, 1)
        if percent - state["last"] >= step or done == total:
            state["last"] = percent
            start, end = ("\r", "\n" if done == total else "") if tty else ("", "\n")
            print(f"{start}{label}: {done}/{total} images", end=end, file=sys.stderr, flush=True)

    return report


def _check_neighbourhoods(args, dataset):
    """--k1 / --k2 that the dataset is too small for, refused before its features are computed
    (NFC looks for a feature's neighbours among the other features of its own set). A sweep of a
    method without NFC does not use them."""
    if "NFC" not in getattr(args, "method", "NFC"):
        return
    rows = min(len(dataset.query), len(dataset.gallery))
    for name in ("k1", "k2"):
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if value is not None and value > rows - 1:
                raise ValueError(
                    f"--{name} {value} is too large for {dataset.name}: at most {rows - 1} (it has {len(dataset.query)} "
                    f"queries and {len(dataset.gallery)} gallery images, and NFC looks for a feature's neighbours "
                    "among the other features of its own set)")


def _rerank_from_args(args):
    """``Benchmark``'s ``rerank``: False, or (k1, k2, lambda) from --rerank and --rerank-k1/-k2/-lambda."""
    given = [f"--rerank-{name}" for name in ("k1", "k2", "lambda") if getattr(args, f"rerank_{name}", None) is not None]
    if not args.rerank:
        if given:
            raise ValueError(f"{' and '.join(given)} set(s) re-ranking parameters: add --rerank to re-rank")
        return False
    k1 = RERANK_K1 if args.rerank_k1 is None else args.rerank_k1
    k2 = RERANK_K2 if args.rerank_k2 is None else args.rerank_k2
    lam = RERANK_LAMBDA if args.rerank_lambda is None else args.rerank_lambda
    return (k1, k2, lam)


def _prepare_from_args(args):
    from pose2id.data import open_dataset
    from pose2id.features.npz import FeatureFile

    # cheap checks first: preparing a benchmark can take minutes
    check_device(args.device)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise ValueError(f"--json {args.json}: the folder {Path(args.json).resolve().parent} does not exist")
    args.rerank_params = _rerank_from_args(args)
    camera_ids = getattr(args, "camera_ids", "auto")
    npz = args.features.startswith("npz:")
    if npz and camera_ids == "on":
        raise ValueError("--camera-ids on: features from a file (--features npz:FILE) are computed already; "
                         "leave --camera-ids out")
    start = time.perf_counter()
    try:
        dataset = open_dataset(args.dataset, progress=_stderr_progress("generating SynthPed"))
    except ValueError as error:
        raise ValueError(in_option_terms(error, "--dataset", ("spec", "zip_path", "root"))) from None
    try:
        if npz:
            extractor = FeatureFile(args.features[len("npz:"):])
            extractor.rows_for(dataset)  # names that do not match the dataset: said before anything else
        else:
            extractor = _get_extractor(args.features, device=args.device, camera_ids=camera_ids)
    except ValueError as error:
        if str(error).startswith("camera_ids"):
            raise ValueError(f"--camera-ids {camera_ids} with --features {args.features}: {error}") from None
        raise ValueError(in_option_terms(error, "--features", ("spec", "path"))) from None
    _check_neighbourhoods(args, dataset)
    bench = prepare_benchmark(dataset, extractor, progress=_stderr_progress("features"))
    bench.timings["total_prepare_s"] = time.perf_counter() - start
    if bench.ipg_note:
        print(f"note: +IPG rows skipped: {bench.ipg_note}", file=sys.stderr)
    elif bench.ipg_coverage_note:
        print(f"note: {bench.ipg_coverage_note}", file=sys.stderr)
    return bench


def _rerank_json(args):
    if not args.rerank_params:
        return {}
    return dict(zip(("rerank_k1", "rerank_k2", "rerank_lambda"), args.rerank_params))


def run_eval(args):
    """``python -m pose2id eval``: print Table 2 rows and optionally write them to JSON."""
    start = time.perf_counter()
    bench = _prepare_from_args(args)
    rows = bench.table(k1=args.k1, k2=args.k2, eta=args.eta, rerank=args.rerank_params)
    elapsed = time.perf_counter() - start
    print(format_table(rows, _describe(bench, args)))
    print(f"\n{ID2_CAPTION}")
    print(f"({elapsed:.1f} s)")
    if args.json:
        payload = {
            "dataset": bench.dataset_name,
            "synthetic": bench.is_synthetic,
            "features": bench.extractor_name,
            "num_query": len(bench.query),
            "num_gallery": len(bench.gallery),
            "params": {"k1": args.k1, "k2": args.k2, "eta": args.eta, "rerank": args.rerank,
                       **_rerank_json(args)},
            "camera_ids": bench.uses_camera_ids,
            "ipg_note": bench.ipg_note,
            "ipg_coverage": bench.ipg_coverage,
            "ipg_missing": {split: len(names) for split, names in bench.ipg_missing.items()},
            "rows": rows,
            "seconds": round(elapsed, 2),
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


def run_sweep(args):
    """``python -m pose2id sweep``: one method over a grid of k1, k2, eta."""
    bench = _prepare_from_args(args)
    if args.method not in bench.methods:
        print(f"error: method {args.method} is not available: {bench.ipg_note}", file=sys.stderr)
        return 2
    etas = args.eta if "IPG" in args.method else [args.eta[0]]
    k1s, k2s = (args.k1, args.k2) if "NFC" in args.method else ([args.k1[0]], [args.k2[0]])
    results = []
    print(f"{bench.dataset_name} · features {bench.extractor_name} · method {args.method}"
          + (" · re-ranking (k1={} k2={} lambda={:g})".format(*args.rerank_params) if args.rerank_params else ""))
    print("| k1 | k2 | eta | mAP | Rank-1 | ID² |\n|---:|---:|---:|---:|---:|---:|")
    for k1, k2, eta in product(k1s, k2s, etas):
        row = bench.row(args.method, k1, k2, eta, args.rerank_params)
        row.update(k1=k1, k2=k2, eta=eta)
        results.append(row)
        shown_k = (k1, k2) if "NFC" in args.method else ("-", "-")
        shown_eta = f"{eta:g}" if "IPG" in args.method else "-"
        print(f"| {shown_k[0]} | {shown_k[1]} | {shown_eta} | {100 * row['mAP']:.2f} | {100 * row['rank1']:.2f} | "
              f"{row['id2']:.4f} |")
    best = max(results, key=lambda r: r["mAP"])
    where = " ".join(([f"k1={best['k1']}", f"k2={best['k2']}"] if "NFC" in args.method else [])
                     + ([f"eta={best['eta']:g}"] if "IPG" in args.method else []))
    if where:
        print(f"\nbest mAP {100 * best['mAP']:.2f} at {where}")
    else:
        print(f"\nBase has no k1, k2 or eta to sweep: mAP {100 * best['mAP']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"dataset": bench.dataset_name, "features": bench.extractor_name,
                                               "method": args.method, "rerank": args.rerank, **_rerank_json(args),
                                               "camera_ids": bench.uses_camera_ids, "ipg_note": bench.ipg_note,
                                               "ipg_coverage": bench.ipg_coverage, "rows": results}, indent=2))
    return 0


def _unit_float(name):
    """argparse type for a number in [0, 1]."""
    import argparse
    import math

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not (math.isfinite(value) and 0 <= value <= 1):
            raise argparse.ArgumentTypeError(f"{name} must be a number from 0 to 1, got {text}")
        return value

    return parse


def _common_arguments(parser):
    parser.add_argument("--dataset", default="synthped",
                        help="'synthped' (built-in synthetic benchmark); a folder or .zip with Market-1501 style "
                             "names (Market-1501, DukeMTMC-reID, CUHK03-NP) or MSMT17's list_query.txt / "
                             "list_gallery.txt layout, recognised from what it holds; or one named: "
                             "'market1501:PATH', 'dukemtmc:PATH', 'cuhk03-np:PATH' (its detected/ images), "
                             "'cuhk03-np-labeled:PATH', 'msmt17:PATH' (default: synthped)")
    parser.add_argument("--features", default="handcrafted",
                        help="'handcrafted' (no weights), 'transreid:CKPT' (e.g. Pose2ID's transformer_20.pth), "
                             "'transreid-global:CKPT', 'vit' (google/vit-base-patch16-224), 'vit:PATH' (a local "
                             "folder or another Hub id of a ViT), or 'npz:FILE': features of any model, a .npz with "
                             "names (N image names), feats (N x D) and optionally gen_feats (N x P x D) "
                             "(default: handcrafted)")
    parser.add_argument("--camera-ids", choices=CAMERA_IDS, default="auto",
                        help="TransReID's camera (SIE) embedding, from the cC of each name: auto = when the "
                             "checkpoint has one, on = require it, off = never; generated images get none "
                             "(default auto)")
    parser.add_argument("--device", type=device, default="cpu",
                        help="torch device for network features: cpu, cuda, cuda:N or mps (default cpu)")
    parser.add_argument("--rerank", action="store_true",
                        help=f"k-reciprocal re-ranking (k1={RERANK_K1}, k2={RERANK_K2}, lambda={RERANK_LAMBDA} "
                             "unless set below)")
    parser.add_argument("--rerank-k1", type=positive_int("rerank-k1"), metavar="K1",
                        help=f"re-ranking k1 (default {RERANK_K1}; TransReID's own evaluation uses 50)")
    parser.add_argument("--rerank-k2", type=positive_int("rerank-k2"), metavar="K2",
                        help=f"re-ranking k2 (default {RERANK_K2}; TransReID's own evaluation uses 15)")
    parser.add_argument("--rerank-lambda", type=_unit_float("rerank-lambda"), metavar="LAMBDA",
                        help=f"re-ranking weight of the original distance, 0 to 1 (default {RERANK_LAMBDA}; "
                             "TransReID's also 0.3)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows to this JSON file")


def register(subparsers):
    """Add the ``eval`` and ``sweep`` sub-commands."""
    ev = subparsers.add_parser(
        "eval",
        help="Table 2 of the paper: Base / +NFC / +IPG / +NFC+IPG on a dataset",
        description="Retrieval with and without feature centralization (mAP, Rank-k, ID²). The +IPG rows use the "
                    "dataset's generated images (the *_gen folders; SynthPed's come from its oracle generator).",
    )
    _common_arguments(ev)
    ev.add_argument("--k1", type=positive_int("k1"), default=2, help="NFC k1 (default 2)")
    ev.add_argument("--k2", type=positive_int("k2"), default=2, help="NFC k2 (default 2)")
    ev.add_argument("--eta", type=non_negative_float("eta"), default=2.0, help="IPG fusion weight (default 2.0)")
    ev.set_defaults(func=run_eval)

    sw = subparsers.add_parser("sweep", help="one method over a grid of NFC k1/k2 and IPG eta",
                               description="Evaluate one method for every combination of the given k1, k2, eta.")
    _common_arguments(sw)
    sw.add_argument("--method", default="+NFC+IPG", choices=METHODS, help="method to sweep (default +NFC+IPG)")
    sw.add_argument("--k1", type=positive_int("k1"), nargs="+", default=[1, 2, 3], help="k1 values (default 1 2 3)")
    sw.add_argument("--k2", type=positive_int("k2"), nargs="+", default=[1, 2, 3], help="k2 values (default 1 2 3)")
    sw.add_argument("--eta", type=non_negative_float("eta"), nargs="+", default=[0.5, 1.0, 2.0, 4.0],
                    help="eta values (default 0.5 1 2 4)")
    sw.set_defaults(func=run_sweep)
