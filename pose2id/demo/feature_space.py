"""The Feature space tab: identity density (ID²) of the features before and after centralization
(plotly bars), and a t-SNE map made from the Base features alone into which the features after
the method are placed (:mod:`pose2id.embedding`), so the points move from Base to after and the
Base map stays the same whatever method and parameters are shown."""

import hashlib
import html
from pathlib import Path

import numpy as np

from pose2id.demo.messages import TOAST_SECONDS, status, warn


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

    ids, before = bench.id2_per_identity("Base", k1, k2, eta)
    _, later = bench.id2_per_identity(after, k1, k2, eta)
    order = np.argsort(-before, kind="stable")  # equal densities in identity order
    ids, before, later = ids[order], before[order], later[order]
    g_before, g_after = bench.id2("Base", k1, k2, eta), bench.id2(after, k1, k2, eta)
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


def fixed_tsne(before, after):
    """Base features in a t-SNE map made from them alone, and the ``after`` features placed into it.

    The map is :func:`pose2id.embedding.embed` of ``before`` (made once per sample and cached:
    the same Base features always give the same map, whatever method, k1, k2 or eta is shown);
    ``after`` is placed into it with :meth:`pose2id.embedding.FixedMap.moved`, so a point moves
    only because its feature moved.

    Parameters
    ----------
    before, after : (N, D) float arrays, row i of both the same image.

    Returns
    -------
    xy_before, xy_after : (N, 2) float arrays in the map's coordinates.
    """
    from pose2id.embedding import embed

    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape or before.ndim != 2:
        raise ValueError(f"before and after must be (N, D) arrays of one shape, got {before.shape} and {after.shape}")
    fixed = embed(before)
    return np.array(fixed.xy), fixed.moved(after)


def box_transform(points, size=400.0, margin=10.0):
    """``(scale, offset)`` that map ``points`` (M, 2) into a ``size`` x ``size`` box with
    ``margin`` on every side, one factor for both axes (distances keep their proportions):
    ``points * scale + offset``."""
    points = np.asarray(points, dtype=np.float64)
    low, high = points.min(0), points.max(0)
    scale = (size - 2 * margin) / max(float(np.max(high - low)), 1e-9)
    return scale, size / 2 - (low + high) / 2 * scale


def fit_to_box(points, size=400.0, margin=10.0):
    """``points`` (M, 2) scaled by one factor (so distances keep their proportions) and
    centred to fit in a ``size`` x ``size`` box with ``margin`` on every side."""
    scale, offset = box_transform(points, size, margin)
    return np.asarray(points, dtype=np.float64) * scale + offset


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

    from pose2id.demo.retrieval_views import thumbnail_uri

    before_f, pids, images = _features(bench, "Base", k1, k2, eta)
    after_f, _, _ = _features(bench, after, k1, k2, eta)
    idx = sample_indices(pids, sample_size)
    pids = pids[idx]
    xy0, xy1 = fixed_tsne(before_f[idx], after_f[idx])
    # the box is fitted to the Base map, so the Base dots are drawn alike whatever After is; after
    # dots stay inside it (a point placed past the edge is drawn on it). Rounded as written into
    # the page, so the numbers below are those of the drawn points.
    scale, offset = box_transform(xy0, margin=24.0)
    xy0 = np.round(xy0 * scale + offset, 2)
    xy1 = np.round(np.clip(xy1 * scale + offset, 2.0, 398.0), 2)
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
    title = (f"t-SNE map of the Base features of {len(idx)} images from {len(np.unique(pids))} identities, "
             f"{after} placed into it (colour = identity; hover a point)")
    # changes with every map drawn: the page's script shows a new one at the slider's position
    token = hashlib.sha1(dots.encode()).hexdigest()[:12]
    return (
        f'<div class="p2-tsne" data-map="{token}"><h4>{html.escape(title)}</h4><div class="p2-tsne-body">'
        f'<figure class="p2-tsne-panel"><svg viewBox="0 0 400 400" role="img" '
        f'aria-label="t-SNE map of Base features with {name} placed into it">{dots}</svg></figure>'
        f'<div class="p2-tsne-side">'
        f'<div class="p2-tsne-controls"><button type="button" class="p2-tsne-play">▶ Play</button>'
        f'<label class="p2-tsne-range"><span>Base</span><input type="range" min="0" max="100" step="1" value="0" '
        f'aria-label="Base to {name}"><span>{name}</span></label></div>'
        f'<p class="p2-tsne-spread" data-d0="{d0:.1f}" data-d1="{d1:.1f}">Mean distance to identity centre in this '
        f'map: <b>{d0:.1f}</b> (Base) → <b>{d1:.1f}</b> ({name})</p>'
        f'<p class="p2-tsne-at">At the slider\'s position: <b class="p2-tsne-now">{d0:.1f}</b></p>'
        f'<p class="p2-tsne-note">Each dot is one image. The map is made once from the Base features alone '
        f'and does not change with After, k1, k2 or eta; each {name} feature is placed into it by the t-SNE '
        f'objective with the Base dots held still, so a dot moves only because its feature moved, and one whose '
        f'feature did not change stays put. Movement is measured in the map (units of the 400-wide map); '
        f't-SNE keeps neighbourhoods rather than distances, so the spread itself is measured in feature space '
        f'by the ID² bars above.</p></div></div>'
        f'<div class="p2-tsne-tip" hidden><img alt="hovered image"><span></span></div>'
        f'<div class="p2-tsne-thumbs" hidden>{thumbs}</div></div>'
    )


_STATIC = Path(__file__).resolve().parent / "static"
# the map's behaviour in the page (slider, Play, hover) and its look, read once at start-up
TSNE_JS = (_STATIC / "tsne.js").read_text(encoding="utf-8")
TSNE_CSS = (_STATIC / "tsne.css").read_text(encoding="utf-8")


OPENING = ("The gallery is still opening (a fresh server draws SynthPed for its first visit): the plots appear "
           "here when it is ready.")


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
        many). A bad input (an unknown gallery or After, a parameter that is not a number, a
        gallery that cannot be opened) raises ``gr.Error`` with the app's message and no server
        path, as /retrieve does, which gradio_client raises in turn."""
        import gradio as gr

        from pose2id.demo.inputs import number
        from pose2id.demo.retrieve import public_message

        try:
            keys = [k for _, k in self.galleries.choices(uploaded=key)]
            if key not in keys:  # before any work: a made-up key must not cost the server anything
                raise ValueError(f"gallery {key!r} is not one of {keys}")
            k1, k2, sample_size = (number(value, name, whole=True)
                                   for value, name in ((k1, "k1"), (k2, "k2"), (sample_size, "sample_size")))
            eta = number(eta, "eta")
            bench = self.galleries.benchmark(key)
            if after not in bench.methods:
                note = "" if bench.has_ipg else f" (+IPG and +NFC+IPG are not offered: {bench.ipg_note})"
                raise ValueError(f"after must be one of {list(bench.methods)}{note}, got {after!r}")
            bars, tsne, text = self._plots(bench, after, k1, k2, eta, sample_size)
        except (ValueError, OSError) as error:
            raise gr.Error(public_message(error), duration=TOAST_SECONDS) from None
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
            bench = self.galleries.benchmark(key, partial=True)  # SynthPed's originals first: +IPG follows
            available = [method for method in bench.methods if method != "Base"]
            chosen = after if after in available else available[-1]
            bars, tsne, text = self._plots(bench, chosen, k1, k2, eta, sample_size)
        except (ValueError, OSError) as error:
            from pose2id.demo.retrieve import DATA, public_message

            source = self.galleries.data if key == DATA else None  # the folder the gallery's label names
            return gr.update(), gr.update(), gr.update(), warn(public_message(error, source))
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
