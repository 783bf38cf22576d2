"""The Retrieve tab: one query, four ranked lists (Base, +NFC, +IPG, +NFC+IPG) and the metrics
over the whole query set.

Benchmarks (features of a gallery) are prepared once per gallery and kept; every slider change
then only re-runs NFC / fusion / distances, which :class:`pose2id.experiments.Benchmark` caches
per parameter set.
"""

import base64
import hashlib
import html
import io
import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from pose2id.demo.messages import status, warn

SYNTHPED = "synthped"
EXTRACTOR = "handcrafted"
METRIC_HEADERS = ["Method", "mAP %", "Rank-1 %", "Rank-5 %", "Rank-10 %", "ID² (lower = more central)"]


@lru_cache(maxsize=4096)
def thumbnail_uri(path, height=128):
    """A small JPEG data URI of the image at ``path`` (cached: the gallery is shown many times)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.height != height:
            image = image.resize((max(1, round(image.width * height / image.height)), height), Image.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


class Galleries:
    """The galleries the app can rank: SynthPed, the ``--data`` folder, uploaded zips.

    Parameters
    ----------
    data : optional Market-style folder or zip given at launch.
    extractor : feature extractor spec (training-free handcrafted features by default).
    """

    def __init__(self, data=None, extractor=EXTRACTOR):
        self.data = data
        self.extractor = extractor
        self._benchmarks = {}
        self._locks = {}
        self._lock = threading.Lock()

    def choices(self):
        """(label, key) pairs for the gallery selector."""
        items = [("SynthPed (synthetic, built in)", SYNTHPED)]
        if self.data:
            items.append((f"Folder: {Path(self.data).name}", f"data:{self.data}"))
        return items

    def benchmark(self, key, progress=None):
        """The prepared :class:`Benchmark` of gallery ``key`` (built once, thread-safe)."""
        from pose2id.experiments import prepare_benchmark

        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._benchmarks:
                spec = key.partition(":")[2] if key.startswith(("data:", "zip:")) else key
                self._benchmarks[key] = prepare_benchmark(spec, self.extractor, progress=progress)
            return self._benchmarks[key]

    def add_zip(self, path):
        """Key of an uploaded Market-style zip (extracted safely, features prepared)."""
        digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]
        for existing in self._benchmarks:
            if existing.startswith("zip:") and existing.endswith(f"#{digest}"):
                return existing
        key = f"zip:{path}"
        self.benchmark(key)
        # remember by content so the same archive uploaded again is not prepared twice
        with self._lock:
            self._benchmarks[f"{key}#{digest}"] = self._benchmarks.pop(key)
        return f"{key}#{digest}"


def query_gallery(bench, limit=None):
    """(path, caption) items of the query set for the query picker."""
    items = [(str(im.path), f"#{i}") for i, im in enumerate(bench.query)]
    return items[:limit] if limit else items


def metrics_rows(bench, k1, k2, eta, rerank):
    """Rows of the metrics table (percentages, ID² to 4 decimals) for every available method."""
    rows = []
    for row in bench.table(k1=k1, k2=k2, eta=eta, rerank=rerank):
        rows.append([row["method"], round(100 * row["mAP"], 2), round(100 * row["rank1"], 2),
                     round(100 * row["rank5"], 2), round(100 * row["rank10"], 2), round(row["id2"], 4)])
    return rows


def ranked_list(bench, query_index, method, k1, k2, eta, rerank, top_k):
    """Top-k of one method for one query, Market protocol (same identity in the same camera
    is not counted, so it is not shown).

    Returns
    -------
    list of (gallery index, distance, correct) of length <= top_k.
    """
    if rerank:
        dist = bench.distances(method, k1, k2, eta, rerank=True)[query_index]
    else:
        # one row of the squared Euclidean distances: the full matrix is only needed for the metrics
        q, g = bench.features(method, k1, k2, eta)
        dist = np.sum((g - q[query_index]) ** 2, axis=1)
    q_pid, q_cam = bench.q_pids[query_index], bench.q_camids[query_index]
    keep = ~((bench.g_pids == q_pid) & (bench.g_camids == q_cam))
    candidates = np.flatnonzero(keep)
    order = candidates[np.argsort(dist[candidates], kind="stable")[:top_k]]
    return [(int(g), float(dist[g]), bool(bench.g_pids[g] == q_pid)) for g in order]


def rankings_html(bench, query_index, k1, k2, eta, rerank, top_k):
    """The four ranked lists side by side, as HTML with inline thumbnails."""
    query = bench.query[query_index]
    columns = []
    for method in bench.methods:
        items = ranked_list(bench, query_index, method, k1, k2, eta, rerank, top_k)
        hits = sum(correct for _, _, correct in items)
        cells = "".join(
            f'<figure class="p2-hit {"p2-ok" if correct else "p2-bad"}" title="{html.escape(bench.gallery[g].name)}">'
            f'<img src="{thumbnail_uri(str(bench.gallery[g].path))}" alt="rank {rank}">'
            f'<figcaption>{rank}. {d:.3f}</figcaption></figure>'
            for rank, (g, d, correct) in enumerate(items, start=1)
        )
        columns.append(
            f'<div class="p2-rank-col" data-method="{html.escape(method)}"><h4>{html.escape(method)} '
            f'<span class="p2-hits">{hits}/{len(items)} correct</span></h4><div class="p2-hits-row">{cells}</div></div>'
        )
    missing = "" if bench.has_ipg else f'<p class="p2-note">+IPG unavailable: {html.escape(bench.ipg_note)}</p>'
    distance = "k-reciprocal re-ranking distance" if rerank else "squared Euclidean distance"
    return (
        f'<div class="p2-rankings"><div class="p2-query"><h4>Query</h4>'
        f'<figure class="p2-hit"><img src="{thumbnail_uri(str(query.path))}" alt="query">'
        f'<figcaption>id {query.pid}, cam {query.camid + 1}</figcaption></figure></div>'
        f'<div class="p2-rank-cols">{"".join(columns)}</div></div>'
        f'<p class="p2-note">Green = same identity, red = different. Numbers: rank and {distance}. {missing}</p>'
    )


def uploaded_query_html(bench, feature, thumbnail, k1, k2, top_k):
    """Ranked lists for an uploaded photo (identity unknown, so no green/red): Base and +NFC,
    with the photo centralized among the query set. The +IPG methods need generated images of
    the photo, which an upload does not have.

    Parameters
    ----------
    feature : (D,) raw feature of the photo, from the benchmark's extractor.
    thumbnail : data URI of the photo.
    """
    import pose2id as p2

    query = feature[None].astype(np.float32)
    query = query / max(float(np.linalg.norm(query)), 1e-12)
    columns = []
    for method in ("Base", "+NFC"):
        _, g = bench.features(method, k1, k2)
        if method == "+NFC":
            raw = bench.qf / np.maximum(np.linalg.norm(bench.qf, axis=1, keepdims=True), 1e-12)
            q = np.asarray(p2.nfc(np.concatenate([raw, query]), k1=k1, k2=k2))[-1]
        else:
            q = query[0]
        dist = np.sum((g - q) ** 2, axis=1)
        order = np.argsort(dist, kind="stable")[:top_k]
        cells = "".join(
            f'<figure class="p2-hit" title="{html.escape(bench.gallery[i].name)}">'
            f'<img src="{thumbnail_uri(str(bench.gallery[i].path))}" alt="rank {rank}">'
            f'<figcaption>{rank}. {dist[i]:.3f}</figcaption></figure>'
            for rank, i in enumerate(order, start=1)
        )
        columns.append(f'<div class="p2-rank-col" data-method="{method}"><h4>{method}</h4>'
                       f'<div class="p2-hits-row">{cells}</div></div>')
    return (
        f'<div class="p2-rankings"><div class="p2-query"><h4>Your photo</h4><figure class="p2-hit">'
        f'<img src="{thumbnail}" alt="uploaded query"><figcaption>identity unknown</figcaption></figure></div>'
        f'<div class="p2-rank-cols">{"".join(columns)}</div></div>'
        f'<p class="p2-note">Your photo\'s identity is unknown, so matches are not marked right or wrong. '
        f'+IPG needs generated images of the photo (Generate tab); re-ranking applies to the query set only.</p>'
    )


class Retrieve:
    """The Retrieve tab's callbacks."""

    def __init__(self, galleries):
        self.galleries = galleries

    def label(self, bench):
        synthetic = " — synthetic images, not real people" if bench.is_synthetic else ""
        return (f"{bench.dataset_name}{synthetic}: {len(bench.query)} queries, {len(bench.gallery)} gallery images, "
                f"{bench.extractor_name} features.")

    def open_gallery(self, key, k1, k2, eta, rerank, top_k, progress=None):
        """(gallery key, query items, rankings html, metrics rows, status) for gallery ``key``,
        showing its first query."""
        try:
            bench = self.galleries.benchmark(key, progress=progress)
        except (ValueError, OSError) as error:
            return key, [], "", [], warn(f"Cannot open this gallery: {error}")
        html_text, rows, message = self.update(key, 0, k1, k2, eta, rerank, top_k)
        return key, query_gallery(bench), html_text, rows, message

    def upload_zip(self, path, k1, k2, eta, rerank, top_k):
        """Like :meth:`open_gallery` for an uploaded zip; a bad zip leaves the current view."""
        import gradio as gr

        keep = (gr.update(),) * 4
        if path is None:
            return *keep, status("Upload a .zip of a Market-1501 style folder.", "info")
        name = Path(path).name
        try:
            if not str(path).lower().endswith(".zip"):
                raise ValueError(f"{name} is not a .zip file; zip a folder of Market-style images (PPPP_cC...jpg)")
            key = self.galleries.add_zip(path)
        except (ValueError, OSError) as error:
            reason = str(error).removeprefix("zip_path: ")
            return *keep, warn(f"Cannot use {name}: {reason}. The current gallery stays.")
        return self.open_gallery(key, k1, k2, eta, rerank, top_k)

    def upload_query(self, key, photo, k1, k2, top_k):
        """(rankings html, status) for an uploaded query photo against gallery ``key``."""
        import gradio as gr

        from pose2id.demo.inputs import InputError, open_photo
        from pose2id.features import get_extractor

        if photo is None:
            return gr.update(), status("Upload a photo of a person to search the gallery for.", "info")
        try:
            image = open_photo(photo)
            bench = self.galleries.benchmark(key)
            feature = get_extractor(self.galleries.extractor)([image])[0]
            buffer = io.BytesIO()
            image.resize((max(1, round(image.width * 128 / image.height)), 128)).save(buffer, format="JPEG")
            thumbnail = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
            html_text = uploaded_query_html(bench, feature, thumbnail, int(k1), int(k2), int(top_k))
        except (InputError, ValueError, OSError) as error:
            return gr.update(), warn(f"Query photo: {error}")
        return html_text, status(f"{self.label(bench)} Ranked your photo (Base and +NFC).", "ok")

    def update(self, key, query_index, k1, k2, eta, rerank, top_k):
        """(rankings html, metrics rows, status) after a query click or a slider change."""
        html_text, message = self.rankings(key, query_index, k1, k2, eta, rerank, top_k)
        rows, metrics_message = self.metrics(key, k1, k2, eta, rerank)
        return html_text, rows, metrics_message if "p2-error" in metrics_message else message

    def rankings(self, key, query_index, k1, k2, eta, rerank, top_k):
        """(rankings html, status) for one query: the fast part of an update, shown first."""
        import gradio as gr

        start = time.perf_counter()
        try:
            bench = self.galleries.benchmark(key)
            query_index = int(query_index or 0)
            if not 0 <= query_index < len(bench.query):
                raise ValueError(f"query_index must be between 0 and {len(bench.query) - 1}, got {query_index}")
            html_text = rankings_html(bench, query_index, int(k1), int(k2), float(eta), bool(rerank), int(top_k))
        except (ValueError, OSError) as error:
            return gr.update(), warn(str(error))
        elapsed = time.perf_counter() - start
        return html_text, status(f"{self.label(bench)} Query #{query_index}; ranked in {elapsed:.2f} s.", "ok")

    def metrics(self, key, k1, k2, eta, rerank):
        """(metrics rows over the whole query set, status)."""
        import gradio as gr

        start = time.perf_counter()
        try:
            bench = self.galleries.benchmark(key)
            rows = metrics_rows(bench, int(k1), int(k2), float(eta), bool(rerank))
        except (ValueError, OSError) as error:
            return gr.update(), warn(str(error))
        elapsed = time.perf_counter() - start
        return rows, status(f"{self.label(bench)} Metrics over all {len(bench.query)} queries updated in {elapsed:.2f} s.", "ok")
