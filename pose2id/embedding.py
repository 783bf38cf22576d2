"""A fixed 2-D map of features, and other features placed into it.

:func:`embed` runs t-SNE once on a set of *reference* features (the Base features of a sample of
images). :meth:`FixedMap.place` puts further features into that map without moving the
reference points: each new feature gets t-SNE affinities to the reference features (a Gaussian
whose width is set by the map's perplexity, over its nearest reference features) and is put
where the t-SNE objective (the Kullback-Leibler divergence between those affinities and the
Student-t similarities in the map) is lowest, the reference points held still. This is the
out-of-sample placement of openTSNE's ``transform``, written here in NumPy (one 2-D problem per
new point, so a point's place depends only on its own feature and the reference map).

:meth:`FixedMap.moved` gives, for features *after* some method (centralization, fusion) of the
same images, positions in the map: a point is drawn at its reference position plus the move of
its placement, ``xy[i] + place(after[i]) - place(reference[i])``. A point moves only because its
feature moved; one whose feature did not change stays where it is.

t-SNE keeps neighbourhoods, not distances: what a point's move shows is whose neighbourhood its
feature has moved into. Distances between features (for example the identity density, ID²) are
measured in feature space, not in the map.

    >>> fixed = embed(base)                 # (N, D) -> map of N points, fixed
    >>> xy_after = fixed.moved(after)       # (N, D) -> (N, 2) in the same map
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pose2id._threads import limited_threads

PCA_DIMENSIONS = 50
PLACE_ITERATIONS = 200


def _check_features(feats, name, dim=None):
    feats = np.asarray(feats)
    if feats.ndim != 2 or not np.issubdtype(feats.dtype, np.number):
        raise ValueError(f"{name} must be an (N, D) array of numbers, got shape {feats.shape}")
    if dim is not None and feats.shape[1] != dim:
        raise ValueError(f"{name} has feature dimension {feats.shape[1]} but the map's reference features have {dim}")
    if not np.isfinite(feats).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return feats


def perplexity_for(n):
    """The perplexity used for ``n`` reference points: 30, or less for small ``n``."""
    return float(min(30, max(2, (n - 1) // 3)))


@dataclass(frozen=True, eq=False)
class FixedMap:
    """A t-SNE map of reference features that further features are placed into.

    Attributes
    ----------
    reference : (N, D) float64, the reference features as given.
    xy : (N, 2) float64, their t-SNE positions (read-only).
    mean, components : PCA of the reference features, ``(D,)`` and ``(d, D)`` with d <= 50, or
        None when D <= 50 (the features are used as they are).
    projected : (N, d) float64, the reference features in the space affinities are measured in.
    perplexity : float.
    """

    reference: np.ndarray
    xy: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    projected: np.ndarray
    perplexity: float

    def _project(self, feats):
        feats = np.asarray(feats, dtype=np.float64)
        if self.components is None:
            return feats
        # row by row (no matrix product), so equal rows give equal results wherever they are
        return np.einsum("nd,kd->nk", feats - self.mean, self.components, optimize=False)

    def affinities(self, feats):
        """t-SNE affinities of each row of ``feats`` to the reference points.

        Parameters
        ----------
        feats : (M, D) float array.

        Returns
        -------
        (M, N) float64, rows summing to 1: a Gaussian over the ``3 * perplexity`` nearest
        reference features (squared Euclidean distance after the map's PCA), its width set so
        the row's perplexity is the map's; zero for the other reference points.
        """
        feats = _check_features(feats, "feats", self.reference.shape[1])
        points = self._project(feats)
        d2 = ((points[:, None, :] - self.projected[None, :, :]) ** 2).sum(-1)
        n = len(self.projected)
        k = int(min(n, max(1, round(3 * self.perplexity))))
        order = np.argsort(d2, axis=1, kind="stable")[:, :k]
        near = np.take_along_axis(d2, order, axis=1)
        near = near - near[:, :1]  # the nearest at 0: the same weights, no underflow
        target = np.log(self.perplexity)
        low, high = np.zeros(len(near)), np.full(len(near), np.inf)
        beta = np.ones(len(near)) / max(float(np.median(near[:, -1])), 1e-12)
        for _ in range(100):  # bisection on the precision of each row's Gaussian
            w = np.exp(-near * beta[:, None])
            total = w.sum(1)
            p = w / total[:, None]
            entropy = np.log(total) + beta * (near * p).sum(1)
            too_flat = entropy > target  # too wide: raise the precision
            low = np.where(too_flat, beta, low)
            high = np.where(too_flat, high, beta)
            beta = np.where(np.isinf(high), beta * 2, (low + high) / 2)
        p = np.exp(-near * beta[:, None])
        p /= p.sum(1, keepdims=True)
        out = np.zeros((len(points), n))
        np.put_along_axis(out, order, p, axis=1)
        return out

    def place(self, feats):
        """Positions in the map of the features ``feats``, the reference points held still.

        Each row starts at the affinity-weighted mean of the reference positions and follows
        the gradient of its own t-SNE objective, ``sum_j p_j log(p_j / q_j)`` with
        ``q_j ∝ 1 / (1 + |y - xy_j|^2)``, for a fixed number of steps (deterministic).

        Parameters
        ----------
        feats : (M, D) float array.

        Returns
        -------
        (M, 2) float64.
        """
        p = self.affinities(feats)
        y = p @ self.xy if len(p) else np.zeros((0, 2))
        # x and y coordinates apart: (M, N) arrays reduced along their rows, not (M, N, 2) ones
        ref_x, ref_y = self.xy[None, :, 0], self.xy[None, :, 1]
        x, y = np.array(y[:, :1]), np.array(y[:, 1:])
        velocity_x, velocity_y = np.zeros_like(x), np.zeros_like(y)
        for step in range(PLACE_ITERATIONS):
            dx, dy = x - ref_x, y - ref_y
            w = 1.0 / (1.0 + (dx * dx + dy * dy))
            q = w / w.sum(1, keepdims=True)
            pull = (p - q) * w
            momentum = 0.5 if step < 50 else 0.8
            velocity_x = momentum * velocity_x - 2.0 * (pull * dx).sum(1, keepdims=True)
            velocity_y = momentum * velocity_y - 2.0 * (pull * dy).sum(1, keepdims=True)
            x, y = x + velocity_x, y + velocity_y
        return np.concatenate([x, y], axis=1)

    def moved(self, feats):
        """Positions of the reference images' features after a method, ``feats[i]`` being
        the new feature of reference point ``i``.

        Point ``i`` is drawn at ``xy[i] + place(feats[i]) - place(reference[i])``: it moves by
        as much as the placement of its feature moves, and not at all where ``feats[i]``
        equals ``reference[i]``.

        Parameters
        ----------
        feats : (N, D) float array, same N and D as the reference features.

        Returns
        -------
        (N, 2) float64.
        """
        feats = _check_features(feats, "feats", self.reference.shape[1])
        if len(feats) != len(self.reference):
            raise ValueError(f"feats has {len(feats)} rows but the map has {len(self.reference)} reference points; "
                             "row i must be the new feature of reference point i")
        feats = feats.astype(np.float64)
        changed = np.flatnonzero(~np.all(feats == self.reference, axis=1))
        out = np.array(self.xy)
        if len(changed):
            out[changed] += self.place(feats[changed]) - self.placed_reference()[changed]
        return out

    def placed_reference(self):
        """:meth:`place` of the reference features themselves, (N, 2) float64: where the map's own
        placement puts each reference point (what :meth:`moved` measures a move from). Computed
        once per map and kept: every method, k1, k2 and eta shown in one map share it."""
        placed = self.__dict__.get("_placed_reference")
        if placed is None:
            placed = self.place(self.reference)
            placed.flags.writeable = False
            object.__setattr__(self, "_placed_reference", placed)  # a cache, not a field of the frozen map
        return placed


@lru_cache(maxsize=16)
def _embed(feats_bytes, shape, seed):
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    feats = np.frombuffer(feats_bytes, dtype=np.float64).reshape(shape)
    # One thread for BLAS and for t-SNE's OpenMP gradient: deterministic, and on a busy 2-core
    # machine threads that wait for each other cost more than they bring.
    with limited_threads(1):
        mean = components = None
        projected = feats
        if min(shape) > PCA_DIMENSIONS:
            pca = PCA(n_components=PCA_DIMENSIONS, svd_solver="full").fit(feats)
            mean, components = pca.mean_.copy(), pca.components_.copy()
            projected = np.einsum("nd,kd->nk", feats - mean, components, optimize=False)
        perplexity = perplexity_for(shape[0])
        xy = TSNE(n_components=2, init="pca", perplexity=perplexity, max_iter=500, random_state=seed,
                  n_jobs=1).fit_transform(projected).astype(np.float64)
    reference = np.array(feats)
    for array in (reference, xy, projected) + tuple(a for a in (mean, components) if a is not None):
        array.flags.writeable = False  # cached and shared between calls
    return FixedMap(reference, xy, mean, components, projected, perplexity)


def embed(feats, seed=0):
    """The t-SNE map of the reference features ``feats``, fixed once made.

    PCA to 50 dimensions first (when D > 50), then scikit-learn's t-SNE (perplexity 30 or less
    for small N, PCA initialization, 500 iterations, ``random_state=seed``), in float64 on one
    thread. Deterministic, and cached by the features' bytes: the same features give the same
    map object.

    Parameters
    ----------
    feats : (N, D) float array, N >= 4.
    seed : int, t-SNE's random state.

    Returns
    -------
    FixedMap.
    """
    feats = _check_features(feats, "feats")
    if len(feats) < 4:
        raise ValueError(f"feats needs at least 4 rows for a t-SNE map, got {len(feats)}")
    feats = np.ascontiguousarray(feats, dtype=np.float64)
    return _embed(feats.tobytes(), feats.shape, int(seed))
