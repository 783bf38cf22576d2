"""The Feature space tab: identity density (ID²) of the features before and after centralization
(plotly bars), and one t-SNE map of both in which the points move from Base to after."""

import html
from functools import lru_cache

import numpy as np

import pose2id as p2
from pose2id._threads import limited_threads
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


@lru_cache(maxsize=16)
def _tsne(feats_bytes, shape):
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    # t-SNE amplifies rounding differences (in float32 the same features gave another map on 1
    # and 2 BLAS threads), so float64 and a fixed thread count, for a map that does not change
    feats = np.frombuffer(feats_bytes, dtype=np.float32).reshape(shape).astype(np.float64)
    # One thread for BLAS and for t-SNE's OpenMP gradient (n_jobs sets only the neighbour search):
    # on the busy 2-core machine threads that wait for each other cost far more than they bring
    # (2 x 250 points: PCA 1.2-2.7 s on two BLAS threads, 0.03 s on one; t-SNE 19-22 s on two
    # OpenMP threads, about 1 s on one).
    with limited_threads(1):
        # PCA to 50 dimensions first, as usual for t-SNE
        if min(shape) > 50:
            feats = PCA(n_components=50, random_state=0).fit_transform(feats)
        perplexity = float(min(30, max(2, (shape[0] - 1) // 3)))
        xy = TSNE(n_components=2, init="pca", perplexity=perplexity, max_iter=500, random_state=0,
                  n_jobs=1).fit_transform(feats)
    xy.flags.writeable = False  # cached and shared between calls
    return xy


def joint_tsne(before, after):
    """One t-SNE map of the same N images' features before and after centralization.

    The 2N rows are embedded together, so ``xy_before[i]`` and ``xy_after[i]`` lie in the same
    frame and the move from one to the other means something (two separate t-SNE runs would
    not be comparable). PCA to 50 dimensions first, then scikit-learn's t-SNE (perplexity 30 or
    less for small N, random_state 0). Deterministic; cached by the features' bytes.

    Parameters
    ----------
    before, after : (N, D) float arrays (used as float32), row i of both the same image.

    Returns
    -------
    xy_before, xy_after : (N, 2) float arrays, t-SNE coordinates.
    """
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape or before.ndim != 2:
        raise ValueError(f"before and after must be (N, D) arrays of one shape, got {before.shape} and {after.shape}")
    feats = np.ascontiguousarray(np.concatenate([before, after]), dtype=np.float32)
    xy = _tsne(feats.tobytes(), feats.shape)
    return xy[:len(before)], xy[len(before):]


def fit_to_box(points, size=400.0, margin=10.0):
    """``points`` (M, 2) scaled by one factor (so distances keep their proportions) and
    centred to fit in a ``size`` x ``size`` box with ``margin`` on every side."""
    points = np.asarray(points, dtype=np.float64)
    low, high = points.min(0), points.max(0)
    scale = (size - 2 * margin) / max(float(np.max(high - low)), 1e-9)
    return (points - (low + high) / 2) * scale + size / 2


def centroid_distance(points, pids):
    """Mean over points of the Euclidean distance from each point to its identity's centroid.

    Parameters
    ----------
    points : (N, D) float array, e.g. (N, 2) positions in a map.
    pids : (N,) identity labels.
    """
    points, pids = np.asarray(points, dtype=np.float64), np.asarray(pids)
    if points.ndim != 2 or len(pids) != len(points):
        raise ValueError(f"pids has {len(pids)} entries but points has shape {points.shape}; expected (N, D) and N pids")
    ids, inverse = np.unique(pids, return_inverse=True)
    centres = np.zeros((len(ids), points.shape[1]))
    np.add.at(centres, inverse, points)
    centres /= np.bincount(inverse)[:, None]
    return float(np.mean(np.linalg.norm(points - centres[inverse], axis=1)))


def tsne_html(bench, after, k1, k2, eta, sample_size):
    """One t-SNE map of a sample of whole identities in which every point can be shown at its
    Base feature, at its ``after`` feature, or in between (a slider and a Play button), as SVG
    coloured by identity, with the mean distance to the identity centre in the map at Base and
    after. Hovering a point shows the image's thumbnail and name and rings its identity's
    other points (the component's ``js_on_load``, :data:`TSNE_JS`)."""
    import plotly.express as px

    from pose2id.demo.retrieve import thumbnail_uri

    before_f, pids, images = _features(bench, "Base", k1, k2, eta)
    after_f, _, _ = _features(bench, after, k1, k2, eta)
    idx = sample_indices(pids, sample_size)
    pids = pids[idx]
    xy0, xy1 = joint_tsne(before_f[idx], after_f[idx])
    # rounded as written into the page, so the numbers below are those of the drawn points
    xy = np.round(fit_to_box(np.concatenate([xy0, xy1])), 2)
    xy0, xy1 = xy[:len(idx)], xy[len(idx):]
    d0, d1 = centroid_distance(xy0, pids), centroid_distance(xy1, pids)
    palette = px.colors.qualitative.Alphabet + px.colors.qualitative.Dark24  # 50 distinct colours
    colour = {pid: palette[n % len(palette)] for n, pid in enumerate(np.unique(pids))}
    dots = "".join(
        f'<circle cx="{x0:.2f}" cy="{y0:.2f}" r="4.5" fill="{colour[pid]}" data-t="{k}" data-pid="{pid}" '
        f'data-x0="{x0:.2f}" data-y0="{y0:.2f}" data-x1="{x1:.2f}" data-y1="{y1:.2f}"></circle>'
        for k, (pid, (x0, y0), (x1, y1)) in enumerate(zip(pids, xy0, xy1))
    )
    thumbs = "".join(
        f'<img data-i="{k}" alt="" src="{thumbnail_uri(str(images[i].path), 96)}" '
        f'data-label="{html.escape(f"id {images[i].pid}, cam {images[i].camid + 1}, {images[i].name}")}">'
        for k, i in enumerate(idx)
    )
    name = html.escape(after)
    title = (f"t-SNE of {len(idx)} features from {len(np.unique(pids))} identities, Base and {after} in one map "
             f"(colour = identity; hover a point)")
    return (
        f'<div class="p2-tsne"><h4>{html.escape(title)}</h4><div class="p2-tsne-body">'
        f'<figure class="p2-tsne-panel"><svg viewBox="0 0 400 400" role="img" '
        f'aria-label="t-SNE of Base and {name} features in one map">{dots}</svg></figure>'
        f'<div class="p2-tsne-side">'
        f'<div class="p2-tsne-controls"><button type="button" class="p2-tsne-play">▶ Play</button>'
        f'<label class="p2-tsne-range"><span>Base</span><input type="range" min="0" max="100" step="1" value="0" '
        f'aria-label="Base to {name}"><span>{name}</span></label></div>'
        f'<p class="p2-tsne-spread" data-d0="{d0:.1f}" data-d1="{d1:.1f}">Mean distance to identity centre in this '
        f'map: <b>{d0:.1f}</b> (Base) → <b>{d1:.1f}</b> ({name})</p>'
        f'<p class="p2-tsne-at">At the slider\'s position: <b class="p2-tsne-now">{d0:.1f}</b></p>'
        f'<p class="p2-tsne-note">Each dot is one image. Base and {name} features are embedded by one t-SNE, '
        f'so a dot\'s move is its feature\'s move towards (or away from) its identity. Distances are in units '
        f'of the 400-wide map; t-SNE keeps neighbourhoods rather than distances, so the ID² bars above measure '
        f'the spread in feature space.</p></div></div>'
        f'<div class="p2-tsne-tip" hidden><img alt="hovered image"><span></span></div>'
        f'<div class="p2-tsne-thumbs" hidden>{thumbs}</div></div>'
    )


TSNE_JS = """
// The HTML is replaced on every update, so everything is found inside `element` at event time.
let playing = null;

const show = (root, t) => {  // t in [0, 1]: 0 = Base positions, 1 = after positions
  const groups = new Map();
  root.querySelectorAll('circle[data-t]').forEach(c => {
    const d = c.dataset;
    const x = (1 - t) * d.x0 + t * d.x1, y = (1 - t) * d.y0 + t * d.y1;
    c.setAttribute('cx', x.toFixed(2));
    c.setAttribute('cy', y.toFixed(2));
    if (!groups.has(d.pid)) groups.set(d.pid, []);
    groups.get(d.pid).push([x, y]);
  });
  let sum = 0, count = 0;
  groups.forEach(points => {
    const cx = points.reduce((s, p) => s + p[0], 0) / points.length;
    const cy = points.reduce((s, p) => s + p[1], 0) / points.length;
    points.forEach(p => { sum += Math.hypot(p[0] - cx, p[1] - cy); count += 1; });
  });
  const now = root.querySelector('.p2-tsne-now');
  if (now && count) now.textContent = (sum / count).toFixed(1);
};

element.addEventListener('input', (ev) => {
  const range = ev.target.closest('.p2-tsne-range input');
  if (!range) return;
  if (playing) cancelAnimationFrame(playing);
  playing = null;
  show(range.closest('.p2-tsne'), range.value / 100);
});

element.addEventListener('click', (ev) => {
  if (!ev.target.closest('.p2-tsne-play')) return;
  const root = ev.target.closest('.p2-tsne');
  const range = root.querySelector('.p2-tsne-range input');
  if (playing) cancelAnimationFrame(playing);
  const start = performance.now(), duration = 1500;
  const frame = (now) => {
    if (!root.isConnected) { playing = null; return; }  // replaced by a new map meanwhile
    const u = Math.min(1, (now - start) / duration);
    const t = u < 0.5 ? 2 * u * u : 1 - 2 * (1 - u) * (1 - u);  // ease in and out
    range.value = Math.round(100 * t);
    show(root, t);
    playing = u < 1 ? requestAnimationFrame(frame) : null;
  };
  playing = requestAnimationFrame(frame);
});

element.addEventListener('mouseover', (ev) => {
  const dot = ev.target.closest('circle[data-t]');
  if (!dot) return;
  const thumb = element.querySelector(`.p2-tsne-thumbs img[data-i="${dot.dataset.t}"]`);
  const tip = element.querySelector('.p2-tsne-tip');
  if (!thumb || !tip) return;
  tip.querySelector('img').src = thumb.src;
  tip.querySelector('span').textContent = thumb.dataset.label;
  const box = element.getBoundingClientRect();
  tip.style.left = (ev.clientX - box.left + 14) + 'px';
  tip.style.top = (ev.clientY - box.top + 14) + 'px';
  tip.hidden = false;
  element.querySelectorAll(`circle[data-pid="${dot.dataset.pid}"]`).forEach(c => c.classList.add('p2-mate'));
  dot.classList.add('p2-on');
});

element.addEventListener('mouseout', (ev) => {
  const dot = ev.target.closest('circle[data-t]');
  if (!dot) return;
  element.querySelector('.p2-tsne-tip').hidden = true;
  element.querySelectorAll('circle.p2-on, circle.p2-mate').forEach(c => c.classList.remove('p2-on', 'p2-mate'));
});
"""

TSNE_CSS = """
.p2-tsne { position: relative; }
.p2-tsne h4 { margin: 4px 0 8px 0; font-size: 1.05em; }
.p2-tsne-body { display: flex; flex-wrap: wrap; gap: 16px 24px; align-items: flex-start; }
.p2-tsne-panel { margin: 0; flex: 0 1 min(100%, 70vh); border: 1px solid var(--border-color-primary);
                 border-radius: 8px; padding: 6px; }
.p2-tsne-panel svg { width: 100%; aspect-ratio: 1; display: block; }
.p2-tsne-panel circle { stroke: #222; stroke-width: 0.6; cursor: pointer; }
.p2-tsne-panel circle.p2-mate { stroke: #000; stroke-width: 1.8; }
.p2-tsne-panel circle.p2-on { stroke: #000; stroke-width: 3; r: 8; }
.p2-tsne-side { flex: 1 1 280px; max-width: 520px; display: flex; flex-direction: column; gap: 12px; }
.p2-tsne-controls { display: flex; align-items: center; gap: 12px; }
.p2-tsne-play { flex: none; padding: 6px 14px; border-radius: 6px; font-weight: 600; cursor: pointer;
                border: 1px solid var(--button-primary-border-color, #2563eb);
                background: var(--button-primary-background-fill, #2563eb); color: var(--button-primary-text-color, #fff); }
.p2-tsne-range { flex: 1; display: flex; align-items: center; gap: 8px; font-weight: 600; white-space: nowrap; }
.p2-tsne-range input { flex: 1; min-width: 80px; accent-color: #2563eb; }
.p2-tsne-spread { margin: 0; font-size: 1.05em; }
.p2-tsne-at { margin: 0; font-size: 1.05em; }
.p2-tsne-now { font-size: 1.4em; font-variant-numeric: tabular-nums; }
.p2-tsne-note { margin: 0; font-size: 0.9em; color: var(--body-text-color-subdued); }
.p2-tsne-tip { position: absolute; z-index: 10; pointer-events: none; background: var(--background-fill-primary);
               border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 4px; display: flex;
               gap: 6px; align-items: center; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.25); font-size: 0.85em; }
.p2-tsne-tip[hidden] { display: none; }
.p2-tsne-tip img { height: 96px; }
"""


OPENING = ("The gallery is still opening (the first visit builds SynthPed, about 30 s): the plots appear here "
           "when it is ready.")


class FeatureSpace:
    """The Feature space tab's callbacks."""

    def __init__(self, galleries):
        self.galleries = galleries

    @staticmethod
    def _plots(bench, after, k1, k2, eta, sample_size):
        """(ID² figure, t-SNE HTML, status text); raises ValueError on bad input."""
        if after not in bench.methods:
            raise ValueError(f"{after} is not available for this gallery: {bench.ipg_note}")
        k1, k2, eta, sample_size = int(k1), int(k2), float(eta), int(sample_size)
        if not 20 <= sample_size <= 2000:
            raise ValueError(f"sample size must be between 20 and 2000, got {sample_size}")
        bars, before, later = id2_figure(bench, after, k1, k2, eta)
        tsne = tsne_html(bench, after, k1, k2, eta, sample_size)
        pids = np.concatenate([bench.q_pids, bench.g_pids])
        pids = pids[pids > 0]
        sample = pids[sample_indices(pids, sample_size)]  # the points tsne_html draws
        synthetic = " (synthetic data)" if bench.is_synthetic and "synthetic" not in bench.dataset_name.lower() else ""
        used = ", ".join(([f"k1 {k1}", f"k2 {k2}"] if "NFC" in after else []) + ([f"eta {eta:g}"] if "IPG" in after else []))
        idle = (" eta 0 gives the generated images no weight, so +IPG leaves every feature where it was."
                if "IPG" in after and eta == 0 else "")
        return bars, tsne, (
            f"{bench.dataset_name}{synthetic}: global ID² {before:.4f} (Base) → {later:.4f} ({after}; {used}).{idle} "
            f"t-SNE of {len(sample)} points: {len(np.unique(sample))} whole identities, for about {sample_size} "
            "asked.")

    def plots(self, key, after, k1, k2, eta, sample_size):
        """(ID² figure, t-SNE HTML, status) for gallery ``key``: the /feature_space API endpoint.
        The t-SNE sample is whole identities, about ``sample_size`` points (the status says how
        many)."""
        import gradio as gr

        try:
            bars, tsne, text = self._plots(self.galleries.benchmark(key), after, k1, k2, eta, sample_size)
        except (ValueError, OSError) as error:
            return gr.update(), gr.update(), warn(str(error))
        return bars, tsne, status(text, "ok")

    def view(self, key, after, k1, k2, eta, sample_size, wanted=None):
        """(After selector, ID² figure, t-SNE HTML, status) for the tab, on every change of its
        controls. The selector offers the methods gallery ``key`` has; ``wanted`` is the user's
        own last choice of After (``after``, the one shown, when not given) and is shown whenever
        the gallery has it, so a gallery without +IPG does not make the choice forgotten. When it
        has not (+IPG needs generated images), the best one it has is shown (+NFC+IPG, else
        +NFC) and the status says why."""
        import gradio as gr

        after = wanted or after
        if not key:  # the page's first gallery is still opening: the app redraws when it has opened
            return gr.update(), gr.update(), gr.update(), status(OPENING, "info")
        try:
            bench = self.galleries.benchmark(key)
            available = [method for method in bench.methods if method != "Base"]
            chosen = after if after in available else available[-1]
            bars, tsne, text = self._plots(bench, chosen, k1, k2, eta, sample_size)
        except (ValueError, OSError) as error:
            return gr.update(), gr.update(), gr.update(), warn(str(error))
        kind = "ok"
        if chosen != after:
            kind = "warning"
            text = f"Showing {chosen} instead of {after}: {bench.ipg_note}. {text}"
        elif not bench.has_ipg:
            text += f" +IPG and +NFC+IPG are not offered: {bench.ipg_note}."
        return gr.update(choices=available, value=chosen), bars, tsne, status(text, kind)

    def view_if_open(self, tab_open, *args):
        """:meth:`view` when the tab is open (``tab_open``), else nothing changes: a gallery that
        finishes opening redraws an open tab, and costs nothing while another tab is shown."""
        import gradio as gr

        return self.view(*args) if tab_open else (gr.skip(),) * 4
