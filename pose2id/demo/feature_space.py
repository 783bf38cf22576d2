"""The Feature space tab: identity density (ID²) and t-SNE of the features, before and after
centralization, as plotly figures."""

from functools import lru_cache

import numpy as np

import pose2id as p2
from pose2id.demo.messages import status, warn


def _features(bench, method, k1, k2, eta):
    """Query + gallery features after ``method`` with their pids, distractors (pid <= 0) removed.

    Returns
    -------
    feats (N, D) float32, pids (N,), names (N,) for hover text.
    """
    q, g = bench.features(method, k1, k2, eta)
    feats = np.concatenate([q, g])
    pids = np.concatenate([bench.q_pids, bench.g_pids])
    images = list(bench.query) + list(bench.gallery)
    keep = pids > 0
    names = np.array([f"id {im.pid}, cam {im.camid + 1}, {im.name}" for im in images])
    return feats[keep], pids[keep], names[keep]


def id2_figure(bench, after, k1, k2, eta):
    """Grouped bars of ID² per identity for Base and ``after`` (identities sorted by Base ID²),
    with the global ID² of both in the title."""
    import plotly.graph_objects as go

    before_f, pids, _ = _features(bench, "Base", k1, k2, eta)
    after_f, _, _ = _features(bench, after, k1, k2, eta)
    ids, before = p2.id2_per_identity(before_f, pids)
    _, later = p2.id2_per_identity(after_f, pids)
    order = np.argsort(-np.asarray(before))
    ids, before, later = np.asarray(ids)[order], np.asarray(before)[order], np.asarray(later)[order]
    g_before, g_after = float(np.mean(p2.id2(before_f, pids))), float(np.mean(p2.id2(after_f, pids)))
    labels = [str(i) for i in ids]
    figure = go.Figure([
        go.Bar(x=labels, y=before, name=f"Base (global ID² {g_before:.4f})", marker_color="#9aa5b1"),
        go.Bar(x=labels, y=later, name=f"{after} (global ID² {g_after:.4f})", marker_color="#2563eb"),
    ])
    figure.update_layout(
        title=f"Identity density per identity: {g_before:.4f} → {g_after:.4f} globally (lower = more centralized)",
        barmode="group", xaxis_title="identity (sorted by Base ID²)", yaxis_title="ID²",
        legend=dict(orientation="h", y=-0.25), margin=dict(l=50, r=20, t=60, b=40), height=420, font=dict(size=14),
        xaxis=dict(type="category", showticklabels=len(labels) <= 60),
    )
    return figure, g_before, g_after


def sample_indices(pids, sample_size, seed=0):
    """Indices of whole identities (random, fixed seed) adding up to about ``sample_size`` points,
    so every shown identity has all its images."""
    rng = np.random.default_rng(seed)
    unique = rng.permutation(np.unique(pids))
    chosen, total = [], 0
    counts = {pid: int(np.sum(pids == pid)) for pid in unique}
    for pid in unique:
        if total >= sample_size:
            break
        chosen.append(pid)
        total += counts[pid]
    return np.flatnonzero(np.isin(pids, chosen))


@lru_cache(maxsize=32)
def _tsne(key, feats_bytes, shape):
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    feats = np.frombuffer(feats_bytes, dtype=np.float32).reshape(shape)
    # PCA to 50 dimensions first, as usual for t-SNE; one thread is far faster on a busy machine
    if min(shape) > 50:
        feats = PCA(n_components=50, random_state=0).fit_transform(feats)
    perplexity = float(min(30, max(2, (shape[0] - 1) // 3)))
    return TSNE(n_components=2, init="pca", perplexity=perplexity, max_iter=500, random_state=0,
                n_jobs=1).fit_transform(feats)


def tsne_figure(bench, after, k1, k2, eta, sample_size):
    """t-SNE of the same sample of identities before (Base) and after ``after``, side by side,
    coloured by identity; hovering a point names its image."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    before_f, pids, names = _features(bench, "Base", k1, k2, eta)
    after_f, _, _ = _features(bench, after, k1, k2, eta)
    idx = sample_indices(pids, sample_size)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Base", after), horizontal_spacing=0.06)
    import plotly.express as px

    palette = px.colors.qualitative.Alphabet + px.colors.qualitative.Dark24  # 50 distinct colours
    for col, feats in ((1, before_f[idx]), (2, after_f[idx])):
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        xy = _tsne((id(bench), col, feats.shape), feats.tobytes(), feats.shape)
        for n, pid in enumerate(np.unique(pids[idx])):
            mask = pids[idx] == pid
            figure.add_trace(go.Scatter(
                x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=f"id {pid}", legendgroup=str(pid),
                showlegend=col == 1, marker=dict(size=7, color=palette[n % len(palette)], line=dict(width=0.5, color="#222")),
                text=names[idx][mask], hovertemplate="%{text}<extra></extra>",
            ), row=1, col=col)
    figure.update_xaxes(showticklabels=False)
    figure.update_yaxes(showticklabels=False)
    figure.update_layout(height=460, margin=dict(l=20, r=20, t=50, b=20), showlegend=False, font=dict(size=14),
                         title=f"t-SNE of {len(idx)} features from {len(np.unique(pids[idx]))} identities (colour = identity)")
    return figure


class FeatureSpace:
    """The Feature space tab's callbacks."""

    def __init__(self, galleries):
        self.galleries = galleries

    def plots(self, key, after, k1, k2, eta, sample_size):
        """(ID² figure, t-SNE figure, status) for gallery ``key``."""
        import gradio as gr

        try:
            bench = self.galleries.benchmark(key)
            if after not in bench.methods:
                raise ValueError(f"{after} is not available for this gallery: {bench.ipg_note}")
            k1, k2, eta, sample_size = int(k1), int(k2), float(eta), int(sample_size)
            if not 20 <= sample_size <= 2000:
                raise ValueError(f"sample size must be between 20 and 2000, got {sample_size}")
            bars, before, later = id2_figure(bench, after, k1, k2, eta)
            tsne = tsne_figure(bench, after, k1, k2, eta, sample_size)
        except (ValueError, OSError) as error:
            return gr.update(), gr.update(), warn(str(error))
        synthetic = " (synthetic data)" if bench.is_synthetic and "synthetic" not in bench.dataset_name.lower() else ""
        return bars, tsne, status(
            f"{bench.dataset_name}{synthetic}: global ID² {before:.4f} (Base) → {later:.4f} ({after}).", "ok")
