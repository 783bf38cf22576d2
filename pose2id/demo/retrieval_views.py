"""The Retrieve tab's views: the query picker, the four ranked lists as HTML (a benchmark query's
with right/wrong marks, an uploaded photo's without), and the metrics table. The lists and numbers
come from :mod:`pose2id.retrieval`; this module only lays them out.
"""

import base64
import html
import io
from functools import lru_cache

import gradio as gr
from PIL import Image

from pose2id import retrieval

METRIC_HEADERS = ["Method", "mAP %", "Rank-1 %", "Rank-5 %", "Rank-10 %", "ID² (lower = more central)"]
METRICS_LABEL = "Metrics over the whole query set"
RERANK_NOT_FOR_PHOTOS = (" Re-ranking is not applied to your photo: it re-ranks the whole query set together, "
                         "which your photo is not part of.")


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


def query_gallery(bench, limit=None):
    """(path, caption) items of the query set for the query picker."""
    items = [(str(im.path), f"#{i}") for i, im in enumerate(bench.query)]
    return items[:limit] if limit else items


def query_strip(bench):
    """The query picker's update for a newly opened gallery: its queries with #0 highlighted,
    the query ranked (the picker would otherwise keep the last clicked position highlighted)."""
    return gr.update(value=query_gallery(bench), selected_index=0)


def highlight_query(index=None):
    """The query picker's update that highlights query ``index``, or none (``None``: an uploaded
    photo is the query ranked). No highlight is index -1: Gradio's page ignores an update to
    ``None``, and -1 is no thumbnail's index."""
    return gr.update(selected_index=-1 if index is None else int(index))


def metrics_rows(bench, k1, k2, eta, rerank):
    """Rows of the metrics table (percentages, ID² to 4 decimals) for every available method:
    :func:`pose2id.retrieval.metrics_rows` rounded for display."""
    return [[row["method"], round(100 * row["mAP"], 2), round(100 * row["rank1"], 2), round(100 * row["rank5"], 2),
             round(100 * row["rank10"], 2), round(row["id2"], 4)]
            for row in retrieval.metrics_rows(bench, k1=k1, k2=k2, eta=eta, rerank=rerank)]


def metrics_frame(rows):
    """``rows`` (see :func:`metrics_rows`) as a table shown with the CLI's fixed decimals: 2 for
    the percentages, 4 for ID² (0.1030 stays 0.1030); the numbers themselves stay numbers."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=METRIC_HEADERS)
    return frame.style.format({name: "{:.2f}" for name in METRIC_HEADERS[1:5]} | {METRIC_HEADERS[5]: "{:.4f}"})


def metrics_table(rows, k1, k2, eta, rerank):
    """The metrics table's update: :func:`metrics_frame` of ``rows``, labelled with the
    parameters they were computed for."""
    ranking = "k-reciprocal re-ranking" if rerank else "no re-ranking"
    return gr.update(value=metrics_frame(rows), label=f"{METRICS_LABEL} (k1 {k1}, k2 {k2}, eta {eta:g}, {ranking})")


def ranked_list(bench, query_index, method, k1, k2, eta, rerank, top_k):
    """Top-k of one method for one query (:func:`pose2id.retrieval.ranked_list`).

    Returns
    -------
    list of (gallery index, distance, correct) of length <= top_k.
    """
    return [(m.index, m.distance, m.correct)
            for m in retrieval.ranked_list(bench, query_index, method, k1, k2, eta, rerank, top_k)]


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
    if bench.has_ipg and getattr(bench, "ipg_coverage_note", ""):  # some images have no generated ones
        missing = f'<p class="p2-note">+IPG: {html.escape(bench.ipg_coverage_note)}</p>'
    distance = "k-reciprocal re-ranking distance" if rerank else "squared Euclidean distance"
    return (
        f'<div class="p2-rankings"><div class="p2-query"><h4>Query</h4>'
        f'<figure class="p2-hit"><img src="{thumbnail_uri(str(query.path))}" alt="query">'
        f'<figcaption>id {query.pid}, cam {query.camid + 1}</figcaption></figure></div>'
        f'<div class="p2-rank-cols">{"".join(columns)}</div></div>'
        f'<p class="p2-note">Green = same identity, red = different. Numbers: rank and {distance}. {missing}</p>'
    )


def uploaded_query_html(bench, features, thumbnail, k1, k2, eta, top_k, note="", rerank=False):
    """Ranked lists for an uploaded photo (identity unknown, so no green/red), one per method of
    ``features`` (see :func:`uploaded_query_features`), each against the gallery features the
    benchmark's own column of that method uses.

    Parameters
    ----------
    features : dict method -> (D,) feature of the photo after the method.
    thumbnail : data URI of the photo.
    note : what to say about +IPG under the lists.
    rerank : whether re-ranking is ticked (it is not applied to an uploaded photo; the note says so).
    """
    columns = []
    for method, q in features.items():
        cells = "".join(
            f'<figure class="p2-hit" title="{html.escape(m.name)}">'
            f'<img src="{thumbnail_uri(str(bench.gallery[m.index].path))}" alt="rank {rank}">'
            f'<figcaption>{rank}. {m.distance:.3f}</figcaption></figure>'
            for rank, m in enumerate(retrieval.photo_ranked_list(bench, q, method, k1, k2, eta, top_k), start=1)
        )
        columns.append(f'<div class="p2-rank-col" data-method="{html.escape(method)}"><h4>{html.escape(method)}</h4>'
                       f'<div class="p2-hits-row">{cells}</div></div>')
    return (
        f'<div class="p2-rankings"><div class="p2-query"><h4>Your photo</h4><figure class="p2-hit">'
        f'<img src="{thumbnail}" alt="uploaded query"><figcaption>identity unknown</figcaption></figure></div>'
        f'<div class="p2-rank-cols">{"".join(columns)}</div></div>'
        f'<p class="p2-note">Your photo\'s identity is unknown, so matches are not marked right or wrong. '
        f'{html.escape(note)}{RERANK_NOT_FOR_PHOTOS if rerank else ""}</p>'
    )
