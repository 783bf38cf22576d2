"""The Retrieve tab: one query, four ranked lists (Base, +NFC, +IPG, +NFC+IPG) and the metrics
over the whole query set. A photo of the user's own is a query too; it gets the +IPG lists when
the Generate tab has generated images of that same photo.

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
from pose2id.experiments import METHODS

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


IPG_HINT = ("For +IPG, generate images of this photo in the Generate tab (IPG needs the official weights and a "
            "CUDA GPU; for a SynthPed identity the SynthPed oracle runs on a CPU), then press 'Search the gallery "
            "with this person' there.")


def photo_generated_images(digest, generations):
    """The Generate tab's images of the photo with content hash ``digest``, or why there are none.

    Parameters
    ----------
    digest : :func:`pose2id.demo.inputs.photo_digest` of the uploaded photo.
    generations : the session's :class:`pose2id.demo.generate.Generations` (anything else
        counts as "nothing generated").

    Returns
    -------
    (GeneratedImages or None, note): the note says why there are none ("" when there are).
    """
    from pose2id.demo.generate import Generations

    if not isinstance(generations, Generations):
        generations = Generations()
    finished = generations.finished
    same = finished is not None and finished.photo_digest == digest
    if same and len(finished.images) > 0:
        return finished, ""
    if generations.running == digest:
        return None, ("The Generate tab is still generating images of this photo: search again when it has finished "
                      "to add +IPG.")
    if generations.failed == digest:
        reason = str(generations.error).strip().rstrip(".")
        return None, f"The Generate tab could not generate images of this photo: {reason}. {IPG_HINT}"
    if same:
        return None, f"The Generate tab's last generation of this photo made no images. {IPG_HINT}"
    if finished is not None:
        return None, f"The Generate tab's images are of a different photo. {IPG_HINT}"
    return None, f"No images of this photo have been generated. {IPG_HINT}"


def uploaded_query_features(bench, feature, gen_feats, k1, k2, eta):
    """An uploaded photo's feature after each method, made as the benchmark makes a query's.

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

    raw = np.asarray(feature, dtype=np.float32)[None]
    own = {"Base": raw[0] / max(float(np.linalg.norm(raw)), 1e-12)}
    if gen_feats is not None:
        gen = np.asarray(gen_feats, dtype=np.float32)[None]
        own["+IPG"] = np.asarray(p2.ipg_fuse(raw, gen, eta=eta))[0]
    for plain, centralized in (("Base", "+NFC"), ("+IPG", "+NFC+IPG")):
        if plain in own:
            queries, _ = bench.features(plain, k1, k2, eta)
            own[centralized] = np.asarray(p2.nfc(np.concatenate([queries, own[plain][None]]), k1=k1, k2=k2))[-1]
    return {method: own[method] for method in METHODS if method in own}


def uploaded_query_html(bench, features, thumbnail, k1, k2, eta, top_k, note=""):
    """Ranked lists for an uploaded photo (identity unknown, so no green/red), one per method of
    ``features`` (see :func:`uploaded_query_features`), each against the gallery features the
    benchmark's own column of that method uses.

    Parameters
    ----------
    features : dict method -> (D,) feature of the photo after the method.
    thumbnail : data URI of the photo.
    note : what to say about +IPG under the lists.
    """
    columns = []
    for method, q in features.items():
        _, g = bench.features(method, k1, k2, eta)
        dist = np.sum((g - q) ** 2, axis=1)
        order = np.argsort(dist, kind="stable")[:top_k]
        cells = "".join(
            f'<figure class="p2-hit" title="{html.escape(bench.gallery[i].name)}">'
            f'<img src="{thumbnail_uri(str(bench.gallery[i].path))}" alt="rank {rank}">'
            f'<figcaption>{rank}. {dist[i]:.3f}</figcaption></figure>'
            for rank, i in enumerate(order, start=1)
        )
        columns.append(f'<div class="p2-rank-col" data-method="{html.escape(method)}"><h4>{html.escape(method)}</h4>'
                       f'<div class="p2-hits-row">{cells}</div></div>')
    return (
        f'<div class="p2-rankings"><div class="p2-query"><h4>Your photo</h4><figure class="p2-hit">'
        f'<img src="{thumbnail}" alt="uploaded query"><figcaption>identity unknown</figcaption></figure></div>'
        f'<div class="p2-rank-cols">{"".join(columns)}</div></div>'
        f'<p class="p2-note">Your photo\'s identity is unknown, so matches are not marked right or wrong. '
        f'{html.escape(note)} Re-ranking applies to the query set only.</p>'
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
        """(gallery key, query items, rankings html, metrics rows, status, photo shown) for gallery
        ``key``, showing its first query (so an uploaded photo's rankings are no longer shown:
        photo shown is False)."""
        try:
            bench = self.galleries.benchmark(key, progress=progress)
        except (ValueError, OSError) as error:
            return key, [], "", [], warn(f"Cannot open this gallery: {error}"), False
        html_text, rows, message = self.update(key, 0, k1, k2, eta, rerank, top_k)
        return key, query_gallery(bench), html_text, rows, message, False

    def upload_zip(self, path, k1, k2, eta, rerank, top_k):
        """Like :meth:`open_gallery` for an uploaded zip; a bad zip leaves the current view."""
        import gradio as gr

        keep = (gr.update(),) * 4
        if path is None:
            return *keep, status("Upload a .zip of a Market-1501 style folder.", "info"), gr.update()
        name = Path(path).name
        try:
            if not str(path).lower().endswith(".zip"):
                raise ValueError(f"{name} is not a .zip file; zip a folder of Market-style images (PPPP_cC...jpg)")
            key = self.galleries.add_zip(path)
        except (ValueError, OSError) as error:
            reason = str(error).removeprefix("zip_path: ")
            return *keep, warn(f"Cannot use {name}: {reason}. The current gallery stays."), gr.update()
        return self.open_gallery(key, k1, k2, eta, rerank, top_k)

    def upload_query(self, key, photo, generations, k1, k2, eta, top_k):
        """(rankings html, status, shown) for an uploaded query photo against gallery ``key``.

        The photo gets the +IPG columns when the session's ``generations`` (the Generate tab's
        :class:`~pose2id.demo.generate.Generations`) hold images generated of this same photo,
        matched by content hash; otherwise Base and +NFC, and a note on how to get +IPG. ``shown``
        is True once the photo's rankings are shown (``gr.update()`` when it could not be used),
        so the sliders know to re-rank the photo.
        """
        import gradio as gr

        from pose2id.demo.inputs import InputError, open_photo, photo_digest
        from pose2id.features import get_extractor

        if photo is None:
            return gr.update(), status("Upload a photo of a person to search the gallery for.", "info"), gr.update()
        try:
            k1, k2, eta, top_k = int(k1), int(k2), float(eta), int(top_k)
            image = open_photo(photo)
            bench = self.galleries.benchmark(key)
            extractor = get_extractor(self.galleries.extractor)
            generated, note = photo_generated_images(photo_digest(image), generations)
            gen_feats = None
            if generated is not None:
                count = f"{len(generated.images)} generated image{'s' if len(generated.images) != 1 else ''}"
            if generated is not None and not bench.has_ipg:
                note = (f"The {count} of your photo {'are' if len(generated.images) != 1 else 'is'} ready, but +IPG "
                        f"needs generated images of the gallery too: {bench.ipg_note}.")
            elif generated is not None:
                gen_feats = extractor(list(generated.images))
                note = f"+IPG: your photo's feature fused with the features of {count} of it, eta {eta:g}."
            elif not bench.has_ipg:
                note = f"+IPG needs generated images of the gallery too: {bench.ipg_note}."
            features = uploaded_query_features(bench, extractor([image])[0], gen_feats, k1, k2, eta)
            buffer = io.BytesIO()
            image.resize((max(1, round(image.width * 128 / image.height)), 128)).save(buffer, format="JPEG")
            thumbnail = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
            html_text = uploaded_query_html(bench, features, thumbnail, k1, k2, eta, top_k, note)
        except (InputError, ValueError, OSError) as error:
            return gr.update(), warn(f"Query photo: {error}"), gr.update()
        if gen_feats is not None:
            text = (f"Ranked your photo with Base, +NFC, +IPG and +NFC+IPG: +IPG from {count} of your photo "
                    f"({generated.generator}; {', '.join(generated.poses)}), eta {eta:g}.")
        else:
            text = f"Ranked your photo with Base and +NFC. {note}"
        return html_text, status(f"{self.label(bench)} {text}", "ok"), True

    def search_person(self, key, photo, generations, k1, k2, eta, top_k):
        """The Generate tab's "Search the gallery with this person": its reference photo becomes
        the Retrieve tab's query photo, ranked as :meth:`upload_query` ranks it.

        Returns
        -------
        (query photo, tabs, rankings html, Retrieve status, shown, Generate status); on a missing
        or unusable photo only the Generate status changes and the Retrieve tab stays as it is.
        """
        import gradio as gr

        keep = (gr.update(),) * 5
        if photo is None:
            return *keep, warn("Upload a reference photo or pick an example first, then search the gallery with it.")
        html_text, message, shown = self.upload_query(key, photo, generations, k1, k2, eta, top_k)
        if shown is not True:
            return *keep, message
        return photo, gr.Tabs(selected="retrieve"), html_text, message, True, gr.update()

    def refresh(self, key, query_index, photo, shown, generations, k1, k2, eta, rerank, top_k):
        """(rankings html, status) after a slider change: the uploaded photo again when its
        rankings are the ones shown, else query ``query_index`` of the gallery."""
        if shown and photo is not None:
            html_text, message, _ = self.upload_query(key, photo, generations, k1, k2, eta, top_k)
            return html_text, message
        return self.rankings(key, query_index, k1, k2, eta, rerank, top_k)

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
