"""The Feature space tab: identity density (ID²) and t-SNE of the features, before and after
centralization, as plotly figures."""

import html
from functools import lru_cache

import numpy as np

import pose2id as p2
from pose2id.demo.messages import status, warn


def _features(bench, method, k1, k2, eta):
    """Query + gallery features after ``method`` with their pids, distractors (pid <= 0) removed.

    Returns
    -------
    feats (N, D) float32, pids (N,), images (N,) ReIDImage object array (for hover text and thumbnails).
    """
    q, g = bench.features(method, k1, k2, eta)
    feats = np.concatenate([q, g])
    pids = np.concatenate([bench.q_pids, bench.g_pids])
    images = np.empty(len(pids), dtype=object)
    images[:] = list(bench.query) + list(bench.gallery)
    keep = pids > 0
    return feats[keep], pids[keep], images[keep]


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


def tsne_html(bench, after, k1, k2, eta, sample_size):
    """t-SNE of the same sample of identities before (Base) and after ``after``, side by side, as
    SVG coloured by identity. Hovering a point shows the image's thumbnail and name (the
    component's ``js_on_load``, :data:`TSNE_JS`) and rings the same image in the other panel."""
    import plotly.express as px

    from pose2id.demo.retrieve import thumbnail_uri

    before_f, pids, images = _features(bench, "Base", k1, k2, eta)
    after_f, _, _ = _features(bench, after, k1, k2, eta)
    idx = sample_indices(pids, sample_size)
    palette = px.colors.qualitative.Alphabet + px.colors.qualitative.Dark24  # 50 distinct colours
    colour = {pid: palette[n % len(palette)] for n, pid in enumerate(np.unique(pids[idx]))}
    panels = []
    for title, feats in (("Base", before_f[idx]), (after, after_f[idx])):
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        xy = _tsne((id(bench), title, feats.shape), feats.tobytes(), feats.shape)
        xy = (xy - xy.min(0)) / np.maximum(xy.max(0) - xy.min(0), 1e-9) * 380 + 10
        dots = "".join(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour[pids[i]]}" data-t="{k}"></circle>'
            for k, (i, (x, y)) in enumerate(zip(idx, xy))
        )
        panels.append(f'<figure class="p2-tsne-panel"><figcaption>{html.escape(title)}</figcaption>'
                      f'<svg viewBox="0 0 400 400" role="img" aria-label="t-SNE {html.escape(title)}">{dots}</svg></figure>')
    thumbs = "".join(
        f'<img data-i="{k}" alt="" src="{thumbnail_uri(str(images[i].path), 96)}" '
        f'data-label="{html.escape(f"id {images[i].pid}, cam {images[i].camid + 1}, {images[i].name}")}">'
        for k, i in enumerate(idx)
    )
    title = f"t-SNE of {len(idx)} features from {len(np.unique(pids[idx]))} identities (colour = identity; hover a point)"
    return (f'<div class="p2-tsne"><h4>{html.escape(title)}</h4><div class="p2-tsne-panels">{"".join(panels)}</div>'
            f'<div class="p2-tsne-tip" hidden><img alt="hovered image"><span></span></div>'
            f'<div class="p2-tsne-thumbs" hidden>{thumbs}</div></div>')


TSNE_JS = """
element.addEventListener('mouseover', (ev) => {
  const dot = ev.target.closest('circle[data-t]');
  if (!dot) return;
  const t = dot.dataset.t;
  const thumb = element.querySelector(`.p2-tsne-thumbs img[data-i="${t}"]`);
  const tip = element.querySelector('.p2-tsne-tip');
  if (!thumb || !tip) return;
  tip.querySelector('img').src = thumb.src;
  tip.querySelector('span').textContent = thumb.dataset.label;
  const box = element.getBoundingClientRect();
  tip.style.left = (ev.clientX - box.left + 14) + 'px';
  tip.style.top = (ev.clientY - box.top + 14) + 'px';
  tip.hidden = false;
  element.querySelectorAll(`circle[data-t="${t}"]`).forEach(c => c.classList.add('p2-on'));
});
element.addEventListener('mouseout', (ev) => {
  const dot = ev.target.closest('circle[data-t]');
  if (!dot) return;
  element.querySelector('.p2-tsne-tip').hidden = true;
  element.querySelectorAll('circle.p2-on').forEach(c => c.classList.remove('p2-on'));
});
"""

TSNE_CSS = """
.p2-tsne { position: relative; }
.p2-tsne h4 { margin: 4px 0 8px 0; font-size: 1.05em; }
.p2-tsne-panels { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.p2-tsne-panel { margin: 0; border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px; }
.p2-tsne-panel figcaption { text-align: center; font-weight: 600; }
.p2-tsne-panel svg { width: 100%; max-height: 62vh; aspect-ratio: 1; display: block; }
.p2-tsne-panel circle { stroke: #222; stroke-width: 0.6; cursor: pointer; }
.p2-tsne-panel circle.p2-on { stroke: #000; stroke-width: 3; r: 8; }
.p2-tsne-tip { position: absolute; z-index: 10; pointer-events: none; background: var(--background-fill-primary);
               border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 4px; display: flex;
               gap: 6px; align-items: center; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.25); font-size: 0.85em; }
.p2-tsne-tip[hidden] { display: none; }
.p2-tsne-tip img { height: 96px; }
"""


class FeatureSpace:
    """The Feature space tab's callbacks."""

    def __init__(self, galleries):
        self.galleries = galleries

    def plots(self, key, after, k1, k2, eta, sample_size):
        """(ID² figure, t-SNE HTML, status) for gallery ``key``."""
        import gradio as gr

        try:
            bench = self.galleries.benchmark(key)
            if after not in bench.methods:
                raise ValueError(f"{after} is not available for this gallery: {bench.ipg_note}")
            k1, k2, eta, sample_size = int(k1), int(k2), float(eta), int(sample_size)
            if not 20 <= sample_size <= 2000:
                raise ValueError(f"sample size must be between 20 and 2000, got {sample_size}")
            bars, before, later = id2_figure(bench, after, k1, k2, eta)
            tsne = tsne_html(bench, after, k1, k2, eta, sample_size)
        except (ValueError, OSError) as error:
            return gr.update(), gr.update(), warn(str(error))
        synthetic = " (synthetic data)" if bench.is_synthetic and "synthetic" not in bench.dataset_name.lower() else ""
        return bars, tsne, status(
            f"{bench.dataset_name}{synthetic}: global ID² {before:.4f} (Base) → {later:.4f} ({after}).", "ok")
