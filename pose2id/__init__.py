"""pose2id: training-free person re-identification by feature centralization.

Implements "From Poses to Identity" (CVPR 2025): neighbour feature centralization (NFC),
identity-guided pedestrian generation (IPG) and its feature fusion, identity density (ID²),
Market-1501 evaluation and k-reciprocal re-ranking.

    >>> import pose2id as p2
    >>> centred = p2.nfc(feats, k1=2, k2=2)

The feature-space functions are imported lazily so that ``import pose2id.poses`` (or the app)
does not pay for modules it does not use.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "nfc": "pose2id.centralization",
    "ipg_fuse": "pose2id.centralization",
    "id2": "pose2id.metrics",
    "id2_per_identity": "pose2id.metrics",
    "pairwise_sqeuclidean": "pose2id.metrics",
    "evaluate": "pose2id.metrics",
    "EvalResult": "pose2id.metrics",
    "re_ranking": "pose2id.reranking",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pose2id' has no attribute {name!r}")


def __dir__():
    return __all__
