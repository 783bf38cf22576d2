"""Input validation shared by the feature-space functions.

Every helper raises ``ValueError`` whose message names the offending argument and says what was
expected, e.g. ``"pids has 10 entries but feats has 12 rows"``. numpy arrays and torch tensors are
both accepted; the helpers never copy a torch tensor off its device.
"""

import numbers
import sys

import numpy as np


def is_tensor(x):
    # A tensor can only exist once torch is imported; not importing it for numpy input keeps
    # the numpy path light (torch adds seconds and hundreds of MB to a process).
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _dtype_problem(kind, dtype):
    """Why ``dtype`` (numpy ``kind`` letter) is not a real number type, or None if it is."""
    if kind in "iuf":
        return None
    if kind == "c":
        return f"real numbers, got complex dtype {dtype}"
    if kind == "b":
        return f"numbers, got boolean dtype {dtype}"
    return f"numbers, got dtype {dtype}"


def as_features(x, name, ndim=2, allow_empty=False, allow_inf=False, keep_float64=False):
    """Validate a float feature array: ``ndim`` dimensions, real numbers, all finite
    (``allow_inf``: no NaN, infinities allowed).

    Returns a float32 numpy array (float64 stays float64 with ``keep_float64``), or a floating
    torch tensor (float32 unless it was float64) on its own device.
    """
    torch = sys.modules.get("torch")
    if is_tensor(x):
        if x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"{name} must hold real numbers, got torch dtype {x.dtype}")
        if not x.is_floating_point():
            x = x.float()
        elif x.dtype not in (torch.float32, torch.float64):
            x = x.float()
    else:
        try:
            x = np.asarray(x)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array of numbers: {exc}") from None
        problem = _dtype_problem(x.dtype.kind, x.dtype)
        if problem:
            raise ValueError(f"{name} must hold {problem}")
        if not (keep_float64 and x.dtype == np.float64):
            x = x.astype(np.float32, copy=False)
    if x.ndim != ndim:
        shape = "(N, D)" if ndim == 2 else "(N, P, D)" if ndim == 3 else f"{ndim}-D"
        raise ValueError(f"{name} must be a {ndim}-D array {shape}, got shape {tuple(x.shape)}")
    size = x.numel() if is_tensor(x) else x.size
    if not allow_empty and size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); expected at least one row")
    if allow_inf:
        bad = bool(torch.isnan(x).any()) if is_tensor(x) else bool(np.isnan(x).any())
        if bad:
            raise ValueError(f"{name} contains NaN values; expected numbers")
    else:
        finite = bool(torch.isfinite(x).all()) if is_tensor(x) else bool(np.isfinite(x).all())
        if not finite:
            raise ValueError(f"{name} contains NaN or infinite values; expected finite numbers")
    return x


def as_feature_pair(a, b, name_a, name_b):
    """Validate two (N, D) feature sets that are compared with each other: same kind, same D."""
    a = as_features(a, name_a)
    b = as_features(b, name_b)
    if is_tensor(a) != is_tensor(b):
        raise ValueError(f"{name_a} and {name_b} must both be numpy arrays or both torch tensors")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_b} has feature dimension {b.shape[1]} but {name_a} has {a.shape[1]}")
    return a, b


def as_labels(x, name, n=None, expected=None):
    """Validate 1-D integer labels (person or camera ids); returns an int64 numpy array.

    If ``n`` is given, the labels must have exactly ``n`` entries; ``expected`` says why, e.g.
    ``"feats has 12 rows"``.
    """
    if is_tensor(x):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer ids, got shape {x.shape}")
    if x.dtype.kind == "f" and x.size and np.all(np.isfinite(x)) and np.all(x == np.round(x)):
        x = x.astype(np.int64)
    if x.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer ids, got dtype {x.dtype}")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"{name} has {x.shape[0]} entries but {expected}")
    return x.astype(np.int64, copy=False)


def check_int(value, name, low, high=None, high_name=None):
    """``value`` must be an integer with ``low <= value`` (and ``value <= high`` if given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high} ({high_name}), got {value}")
    return value


def check_real(value, name, low=None):
    """``value`` must be a finite real number (``>= low`` if given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return float(value)
