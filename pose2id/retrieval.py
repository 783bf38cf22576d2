"""The app's Retrieve tab as a library: a benchmark's metrics per method, one query's ranked list
per method, the same lists as JSON-able data, and an uploaded photo's features (with its
generated images' fusion for +IPG) ranked against the gallery.

Everything works on a prepared :class:`pose2id.experiments.Benchmark`::

    from pose2id.data import open_dataset
    from pose2id.experiments import prepare_benchmark
    from pose2id.retrieval import ranked_list, rankings

    bench = prepare_benchmark(open_dataset("synthped"), "handcrafted")
    ranked_list(bench, 0, "+NFC", k1=2, k2=2, eta=2.0, top_k=5)   # list of Match
    rankings(bench, 0, k1=2, k2=2, eta=2.0, top_k=5)              # the app's /retrieve JSON

Ranked lists follow the Market-1501 protocol: gallery images of the query's identity taken by the
query's camera are left out. Equal distances keep gallery order (a stable sort).
"""

from typing import NamedTuple

import numpy as np

from pose2id.experiments import METHODS

__all__ = ["Match", "metrics_rows", "ranked_list", "rankings", "photo_features", "photo_ranked_list"]


class Match(NamedTuple):
    """One entry of a ranked list.

    Attributes
    ----------
    index : the gallery image's index in ``bench.gallery``.
    name : its file name.
    pid : its identity.
    distance : its distance to the query (squared Euclidean, or re-ranking distance).
    correct : whether ``pid`` is the query's (always False for a photo of unknown identity).
    """

    index: int
    name: str
    pid: int
    distance: float
    correct: bool


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or not np.isfinite(value) or value != int(value) or value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


def _query_index(bench, query_index):
    if isinstance(query_index, bool) or not isinstance(query_index, (int, np.integer)) \
            or not 0 <= query_index < len(bench.query):
        raise ValueError(f"query_index must be a whole number between 0 and {len(bench.query) - 1}, "
                         f"got {query_index!r}")
    return int(query_index)


def _method(bench, method):
    if method not in bench.methods:
        raise ValueError(f"method must be one of {list(bench.methods)}, got {method!r}"
                         + (f" (+IPG needs generated images: {bench.ipg_note})" if method in METHODS else ""))
    return method


def metrics_rows(bench, k1=2, k2=2, eta=2.0, rerank=False):
    """The metrics over the whole query set, one row per available method.

    Parameters
    ----------
    bench : :class:`pose2id.experiments.Benchmark`.
    k1, k2 : NFC neighbours; eta : IPG fusion weight; rerank : k-reciprocal re-ranking (see
        :meth:`Benchmark.distances`).

    Returns
    -------
    list of dict {"method", "mAP", "rank1", "rank5", "rank10", "mINP", "id2"}: floats, the
    retrieval scores as fractions in [0, 1], in the paper's method order.
    """
    keys = ("method", "mAP", "rank1", "rank5", "rank10", "mINP", "id2")
    return [{key: row[key] for key in keys} for row in bench.table(k1=k1, k2=k2, eta=eta, rerank=rerank)]


def _top(dist, candidates, top_k):
    order = candidates[np.argsort(dist[candidates], kind="stable")[:top_k]]
    return order


def ranked_list(bench, query_index, method, k1=2, k2=2, eta=2.0, rerank=False, top_k=10):
    """The top-k gallery images of ``method`` for query ``query_index`` (Market protocol: the
    query identity's images from the query's own camera are not ranked).

    Parameters
    ----------
    bench : :class:`pose2id.experiments.Benchmark` with Nq queries and Ng gallery images.
    query_index : int in [0, Nq).
    method : one of ``bench.methods``.
    k1, k2, eta, rerank : as for :meth:`Benchmark.distances`.
    top_k : how many to return (at most the number of candidates).

    Returns
    -------
    list of :class:`Match`, sorted by distance (ascending), length <= top_k.
    """
    query_index, method, top_k = _query_index(bench, query_index), _method(bench, method), _positive_int(top_k, "top_k")
    kept = bench.kept_distances(method, k1, k2, eta, rerank=rerank)
    if kept is not None:  # the metrics computed them: the same numbers as theirs
        dist = kept[query_index]
    elif rerank:
        dist = bench.distances(method, k1, k2, eta, rerank=rerank)[query_index]
    else:
        # one row of the squared Euclidean distances: the full (Nq, Ng) matrix is only needed for the metrics
        q, g = bench.features(method, k1, k2, eta)
        dist = np.sum((g - q[query_index]) ** 2, axis=1)
    q_pid, q_cam = bench.q_pids[query_index], bench.q_camids[query_index]
    candidates = np.flatnonzero(~((bench.g_pids == q_pid) & (bench.g_camids == q_cam)))
    return [Match(int(i), bench.gallery[i].name, int(bench.g_pids[i]), float(dist[i]), bool(bench.g_pids[i] == q_pid))
            for i in _top(dist, candidates, top_k)]


def rankings(bench, query_index, k1=2, k2=2, eta=2.0, rerank=False, top_k=10):
    """Every available method's :func:`ranked_list` for one query, as JSON-able data.

    Returns
    -------
    dict: ``query`` ({"index", "name", "pid", "camera"}; camera counted from 1),
    ``parameters`` ({"k1", "k2", "eta", "rerank", "top_k"}) and ``methods``: method -> list of
    {"rank", "name", "pid", "distance", "correct"} (rank counted from 1).
    """
    query_index = _query_index(bench, query_index)
    query = bench.query[query_index]
    methods = {
        method: [{"rank": rank, "name": m.name, "pid": m.pid, "distance": m.distance, "correct": m.correct}
                 for rank, m in enumerate(ranked_list(bench, query_index, method, k1, k2, eta, rerank, top_k), start=1)]
        for method in bench.methods}
    return {"query": {"index": query_index, "name": query.name, "pid": int(query.pid), "camera": int(query.camid) + 1},
            "parameters": {"k1": k1, "k2": k2, "eta": eta, "rerank": rerank, "top_k": top_k},
            "methods": methods}


def photo_features(bench, feature, gen_feats=None, k1=2, k2=2, eta=2.0):
    """A photo's feature after each method, made as the benchmark makes a query's.

    Parameters
    ----------
    bench : the :class:`pose2id.experiments.Benchmark` the photo is ranked against.
    feature : (D,) raw feature of the photo, from the benchmark's extractor.
    gen_feats : (P, D) raw features of the photo's generated images (same extractor), or None:
        then only Base and +NFC are made.
    k1, k2 : NFC neighbours; eta : IPG fusion weight.

    Returns
    -------
    dict method -> (D,) float32, L2-normalized, in the benchmark's method order. Base =
    normalize(f); +IPG = :func:`pose2id.ipg_fuse`, normalize(f + eta * mean_p g_p); +NFC and
    +NFC+IPG = NFC on the query set after Base / +IPG with the photo's row added (NFC runs on the
    query set, never with the gallery), the photo's row taken.
    """
    import pose2id as p2

    raw = np.asarray(feature, dtype=np.float32)
    if raw.ndim != 1 or raw.shape[0] != bench.qf.shape[1]:
        raise ValueError(f"feature must have shape ({bench.qf.shape[1]},), got {raw.shape}")
    raw = raw[None]
    own = {"Base": raw[0] / max(float(np.linalg.norm(raw)), 1e-12)}
    if gen_feats is not None:
        if not bench.has_ipg:
            raise ValueError(f"gen_feats given, but +IPG needs generated images of the gallery too: {bench.ipg_note}")
        gen = np.asarray(gen_feats, dtype=np.float32)
        if gen.ndim != 2 or gen.shape[1] != raw.shape[1] or len(gen) == 0:
            raise ValueError(f"gen_feats must have shape (P, {raw.shape[1]}) with P >= 1, got {gen.shape}")
        own["+IPG"] = np.asarray(p2.ipg_fuse(raw, gen[None], eta=eta))[0]
    for plain, centralized in (("Base", "+NFC"), ("+IPG", "+NFC+IPG")):
        if plain in own:
            queries, _ = bench.features(plain, k1, k2, eta)
            own[centralized] = np.asarray(p2.nfc(np.concatenate([queries, own[plain][None]]), k1=k1, k2=k2))[-1]
    return {method: own[method] for method in METHODS if method in own}


def photo_ranked_list(bench, query_feature, method, k1=2, k2=2, eta=2.0, top_k=10):
    """The top-k gallery images for a photo's feature after ``method`` (see
    :func:`photo_features`), against the gallery features of that method. The photo's identity is
    unknown: every :attr:`Match.correct` is False, and no image is left out.

    Parameters
    ----------
    query_feature : (D,) the photo's feature after ``method``.

    Returns
    -------
    list of :class:`Match`, sorted by squared Euclidean distance, length <= top_k.
    """
    method, top_k = _method(bench, method), _positive_int(top_k, "top_k")
    _, g = bench.features(method, k1, k2, eta)
    q = np.asarray(query_feature, dtype=np.float32)
    if q.shape != (g.shape[1],):
        raise ValueError(f"query_feature must have shape ({g.shape[1]},), got {q.shape}")
    dist = np.sum((g - q) ** 2, axis=1)
    return [Match(int(i), bench.gallery[i].name, int(bench.g_pids[i]), float(dist[i]), False)
            for i in _top(dist, np.arange(len(g)), top_k)]
