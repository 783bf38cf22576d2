"""pose2id: training-free person re-identification by feature centralization.

Implements "From Poses to Identity" (CVPR 2025): neighbour feature centralization (NFC),
identity-guided pedestrian generation (IPG) and its feature fusion, identity density (ID²),
Market-1501 evaluation and k-reciprocal re-ranking.

    >>> import pose2id as p2
    >>> centred = p2.nfc(feats, k1=2, k2=2)

The feature-space functions are imported lazily so that ``import pose2id.poses`` (or the app)
does not pay for modules it does not use. :class:`ArgumentError` is the error for a value that
cannot be used, with fields (argument, value, file, problem) a caller words for its own user.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "nfc": "pose2id.centralization",
    "nfc_neighbors": "pose2id.centralization",
    "ipg_fuse": "pose2id.centralization",
    "id2": "pose2id.metrics",
    "id2_per_identity": "pose2id.metrics",
    "pairwise_sqeuclidean": "pose2id.metrics",
    "evaluate": "pose2id.metrics",
    "EvalResult": "pose2id.metrics",
    "re_ranking": "pose2id.reranking",
}

__all__ = sorted(_EXPORTS) + ["ArgumentError", "__version__"]


class ArgumentError(ValueError):
    """A value given to pose2id that cannot be used, with the fields to word the problem.

    The library raises it with the name *it* knows the value by; a caller that knows it by another
    name (the CLI's option, an app's field) words the problem with :meth:`worded` instead of
    rewriting the message.

    Parameters
    ----------
    problem : str
        What is wrong and what was expected, without the value's name or its file:
        ``"'people' is empty"``. About an argument alone (no file, no label) it reads after the
        argument's name: ``"must be >= 1, got 0"``.
    argument : str, optional
        The library's name for the value: ``"spec"``, ``"k1"``, ``"pose"``.
    file : str or Path, optional
        The file (or folder) the problem is in, when there is one.
    value : object, optional
        The offending value.
    label : str, optional
        What the message names when there is no file, e.g. ``"JSON text"``.

    ``str(error)`` is ``"<file or label>: <problem>"``, or ``"<argument> <problem>"`` when
    neither is given (``"k1 must be >= 1, got 0"``), or the problem alone.
    """

    def __init__(self, problem, argument=None, file=None, value=None, label=None):
        self.problem = str(problem)
        self.argument = argument
        self.file = None if file is None else str(file)
        self.value = value
        self.label = label
        super().__init__(self.told())

    def told(self, file=None):
        """The message, with the file named ``file`` when given (the name its user knows it by)."""
        where = file or self.file or self.label
        if where:
            return f"{where}: {self.problem}"
        return f"{self.argument} {self.problem}" if self.argument else self.problem

    def worded(self, name, file=None):
        """The problem told under ``name`` (an option such as ``--poses``), the file kept (or
        named ``file``): ``"--poses a.json: 'people' is empty"``, ``"--k1 must be >= 1, got 0"``."""
        where = file or self.file
        if where and where not in name:
            return f"{name} {where}: {self.problem}"
        if where or self.label or not self.argument:
            return f"{name}: {self.problem}"
        return f"{name} {self.problem}"


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pose2id' has no attribute {name!r}")


def __dir__():
    return __all__
