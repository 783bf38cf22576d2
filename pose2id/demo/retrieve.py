"""The Retrieve tab: one query, four ranked lists (Base, +NFC, +IPG, +NFC+IPG) and the metrics
over the whole query set. A photo of the user's own is a query too; it gets the +IPG lists when
the Generate tab has generated images of that same photo.

Benchmarks (features of a gallery) are prepared once per gallery and kept; every slider change
then only re-runs NFC / fusion / distances, which :class:`pose2id.experiments.Benchmark` caches
per parameter set.
"""

import base64
import io
import os
import threading
import time
from pathlib import Path

import gradio as gr

from pose2id import retrieval
from pose2id.demo.galleries import DATA, EXTRACTOR, SYNTHPED, SYNTHPED_LABEL, Galleries  # noqa: F401  (re-exported)
from pose2id.demo.retrieval_views import (  # noqa: F401  (re-exported)
    METRIC_HEADERS, METRICS_LABEL, RERANK_NOT_FOR_PHOTOS, highlight_query, metrics_frame, metrics_rows, metrics_table,
    query_gallery, query_strip, ranked_list, rankings_html, thumbnail_uri, uploaded_query_html)
from pose2id.demo.inputs import number
from pose2id.demo.messages import TOAST_SECONDS, status, warn

BUILDING_SYNTHPED = ("Drawing SynthPed once: its original images first (Base and +NFC rank then), its generated images "
                     "(+IPG) after; later visits are instant.")


def _visible(path, source):
    """How a visitor is shown the server's ``path``: nothing when it is ``source`` (the upload, or
    the gallery's folder, which the app's sentence names already), relative to the source's name
    when it is inside it (``cams.zip/query``), else by its file name alone."""
    path = Path(path)
    if source is not None:
        source = Path(source)
        if path == source:
            return None
        if path.is_relative_to(source):
            return f"{source.name}/{path.relative_to(source).as_posix()}"
    return path.name


def public_message(error, source=None):
    """``error`` as a visitor of the app should read it, worded from its fields: without server
    paths and without a final period (the app adds its own sentence).

    ``source`` is what the app's sentence names (an upload's path, the gallery's folder). An
    error with fields (:class:`pose2id.ArgumentError`, :class:`pose2id.data.DatasetError`) is its
    problem, after the file it is about as the library shows it (``shown_as``: the zip's name
    for the folder it was extracted to), or as :func:`_visible` shows it; nothing when that is
    ``source`` itself. An OSError about a file is that file's name and the system's reason,
    not its text (which holds the path). Anything else is its message.
    """
    from pose2id import ArgumentError

    if isinstance(error, ArgumentError):
        shown = getattr(error, "shown_as", None)
        if error.file is None:
            text = error.told()
        else:
            where = _visible(error.file, source) if shown is None else shown
            if source is not None and where == Path(source).name:
                where = None
            text = f"{where}: {error.problem}" if where else error.problem
    elif isinstance(error, OSError) and error.filename is not None:
        where = _visible(os.fsdecode(error.filename), source)
        reason = error.strerror or type(error).__name__
        text = f"{where}: {reason}" if where else reason
    else:
        text = str(error)
    return text.strip().rstrip(".")


def rankings_data(bench, query_index, k1, k2, eta, rerank, top_k):
    """The ranked lists of :func:`rankings_html` as plain data, for API clients: see
    :func:`pose2id.retrieval.rankings`."""
    return retrieval.rankings(bench, query_index, k1, k2, eta, rerank, top_k)


IPG_HINT = ("For +IPG, generate images of this photo in the Generate tab (IPG needs the official weights and a "
            "CUDA GPU; for a SynthPed identity the SynthPed oracle runs on a CPU), then press 'Search the gallery "
            "with this person' there.")


def failed_note(reason):
    """One short sentence on a failed generation of the photo: ``reason`` is the Generate tab's
    own short one (:attr:`pose2id.demo.generate.Generations.reason`; its status line has the rest)."""
    reason = reason or "its status line says why"
    return f"No +IPG: the Generate tab could not generate images of this photo ({reason})."


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
        return None, failed_note(generations.reason)
    if same:
        return None, f"The Generate tab's last generation of this photo made no images. {IPG_HINT}"
    if finished is not None:
        return None, f"The Generate tab's images are of a different photo. {IPG_HINT}"
    return None, f"No images of this photo have been generated. {IPG_HINT}"


def uploaded_query_features(bench, feature, gen_feats, k1, k2, eta):
    """An uploaded photo's feature after each method: :func:`pose2id.retrieval.photo_features`."""
    return retrieval.photo_features(bench, feature, gen_feats, k1, k2, eta)


class Retrieve:
    """The Retrieve tab's callbacks."""

    def __init__(self, galleries):
        self.galleries = galleries
        self._latest = {}  # page session -> number of its latest gallery request
        self._latest_lock = threading.Lock()

    def _ticket(self, request):
        """A number for this gallery request of ``request``'s page: a later request of the same
        page (a zip uploaded while SynthPed is still being built) makes it :meth:`_stale`."""
        session = getattr(request, "session_hash", None)
        if session is None:
            return None
        with self._latest_lock:
            number = self._latest[session] = self._latest.get(session, 0) + 1
        return session, number

    def _stale(self, ticket):
        return ticket is not None and self._latest.get(ticket[0]) != ticket[1]

    def _newest(self, ticket, outputs):
        """``outputs``, or nothing changed when a later gallery request of the page has come: the
        page shows the gallery the user asked for last, whichever finishes first."""
        return (gr.skip(),) * len(outputs) if self._stale(ticket) else outputs

    def label(self, bench, key=None):
        """"<gallery>: N queries, M gallery images, <extractor> features." and, for gallery
        ``key``, the images its reader skipped as unreadable."""
        synthetic = " — synthetic images, not real people" if bench.is_synthetic else ""
        text = (f"{bench.dataset_name}{synthetic}: {len(bench.query)} queries, {len(bench.gallery)} gallery images, "
                f"{bench.extractor_name} features.")
        skipped = self.galleries.skipped(key)
        if skipped:
            from pose2id.data.market1501 import describe_skipped

            text += f" {len(skipped)} unreadable image(s) skipped: {describe_skipped(skipped)}."
        return text

    def _progress(self, key, name, progress):
        """A ``progress(stage, done, total)`` for :meth:`Galleries.benchmark` that shows why the
        view is waiting: building SynthPed (the first visit), or preparing gallery ``name``."""
        intro = BUILDING_SYNTHPED if key == SYNTHPED else f"Preparing {name} once (reading its images and features)."

        def report(stage, done, total):
            if done < total:  # work being done, not a cache hit
                progress(done / max(total, 1), desc=f"{intro} {stage.capitalize()}: {done:,} of {total:,}")

        return report

    def open_gallery(self, key, current=None, progress=gr.Progress(), request: gr.Request = None):
        """(gallery key, gallery selector, query items, query index, photo shown, status) for
        gallery ``key``: its queries, query 0 selected, an uploaded photo's rankings no longer the
        ones shown. The rankings and metrics come from :meth:`refresh`, which the app runs when the
        gallery key changes. While the gallery is prepared (SynthPed on a fresh server: its
        originals, then its generated images in the background), ``progress`` says what is happening. A gallery that cannot be opened leaves the
        ``current`` one, selected again. Of a page's gallery requests, the last one asked for is
        shown, whichever finishes first."""
        ticket = self._ticket(request)
        return self._newest(ticket, self._open_gallery(key, current, progress))

    def _open_gallery(self, key, current, progress):
        name = dict((k, label) for label, k in self.galleries.choices(uploaded=key)).get(key, key)
        try:
            if not self.galleries.is_ready(key):
                progress(0, desc=f"Opening {name}…")
            bench = self.galleries.benchmark(key, progress=self._progress(key, name, progress), partial=True)
        except (ValueError, OSError) as error:
            source = self.galleries.data if key == DATA else None  # the folder the gallery's label names
            message = warn(f"Cannot open {name}: {public_message(error, source)}."
                           + (" The current gallery stays." if current else ""))
            keep = gr.update(value=current) if current else gr.update()
            return gr.update(), keep, gr.update(), gr.update(), gr.update(), message
        return (key, gr.update(), query_strip(bench), 0, False,
                status(f"{self.label(bench, key)} Opened; ranking query #0…", "ok"))

    def upload_zip(self, path, current=None, progress=gr.Progress(), request: gr.Request = None):
        """Like :meth:`open_gallery` for an uploaded Market-style zip, which becomes a choice of
        the gallery selector (labelled by its file name) and is selected. A bad zip leaves the
        current view and says what is wrong with it (without server paths)."""
        return self._upload(path, current, progress, request)[:-1]

    def upload_zip_in_box(self, path, current=None, progress=gr.Progress(), request: gr.Request = None):
        """:meth:`upload_zip`'s outputs, then the upload box's value: emptied when the zip was
        refused, so that a zip not in use is not shown as if it were."""
        *outputs, refused = self._upload(path, current, progress, request)
        return (*outputs, None if refused is True else gr.update())

    def _upload(self, path, current, progress, request):
        """:meth:`_upload_zip`'s outputs, then True if the zip was refused."""
        ticket = self._ticket(request)
        outputs, refused = self._upload_zip(path, current, progress, getattr(request, "session_hash", None))
        return (*self._newest(ticket, outputs), refused)

    def session_ended(self, request: gr.Request = None):
        """The page closed (Gradio's ``unload``): the galleries only it uploaded are removed."""
        session = getattr(request, "session_hash", None)
        if session is not None:
            self.galleries.release(session)
            with self._latest_lock:
                self._latest.pop(session, None)

    def _upload_zip(self, path, current, progress, session=None):
        """(the outputs of :meth:`upload_zip`, True if the zip was refused)."""
        keep = (gr.update(),) * 5
        if path is None:
            return (*keep, status("Upload a .zip of a Market-1501 style folder.", "info")), False
        name = Path(path).name
        try:
            if not name.lower().endswith(".zip"):
                raise ValueError(f"{name} is not a .zip file; zip a folder of Market-style images (PPPP_cC...jpg)")
            progress(0, desc=f"Preparing {name}…")
            key = self.galleries.add_zip(path, progress=self._progress(None, name, progress), session=session)
        except (ValueError, OSError) as error:
            return (*keep, warn(f"Cannot use {name}: {public_message(error, path)}. The current gallery stays.")), True
        selector = gr.update(choices=self.galleries.choices(uploaded=key), value=key)
        bench = self.galleries.benchmark(key)
        if self.galleries.skipped(key):
            gr.Warning(f"{name}: {len(self.galleries.skipped(key))} unreadable image(s) skipped; the status line lists them.",
                       duration=TOAST_SECONDS)
        if key == current:  # the same archive again: the view stays as it is
            return (gr.update(), selector, gr.update(), gr.update(), gr.update(), status(self.label(bench, key), "ok")), False
        return (key, selector, query_strip(bench), 0, False,
                status(f"{self.label(bench, key)} Ranking query #0…", "ok")), False

    def close_zip(self, current=None, progress=gr.Progress(), request: gr.Request = None):
        """The uploaded zip removed: its choice leaves the gallery selector and, if it was the
        gallery shown, SynthPed is opened again (outputs as :meth:`open_gallery`)."""
        ticket = self._ticket(request)
        builtin = self.galleries.choices()
        if current is not None and current.startswith("zip:"):
            *opened, message = self._open_gallery(SYNTHPED, None, progress)
            opened[1] = gr.update(choices=builtin, value=SYNTHPED)
            return self._newest(ticket, (*opened, message))
        return gr.update(), gr.update(choices=builtin), gr.update(), gr.update(), gr.update(), gr.update()

    def _query_view(self, key, query_index, k1, k2, eta, rerank, top_k):
        """(rankings html, status text) of query ``query_index``; raises ValueError on bad input."""
        start = time.perf_counter()
        bench = self.galleries.benchmark(key, partial=True)  # SynthPed's originals first: +IPG follows
        query_index = int(query_index or 0)
        if not 0 <= query_index < len(bench.query):
            raise ValueError(f"query_index must be between 0 and {len(bench.query) - 1}, got {query_index}")
        html_text = rankings_html(bench, query_index, int(k1), int(k2), float(eta), bool(rerank), int(top_k))
        elapsed = time.perf_counter() - start
        return html_text, f"{self.label(bench, key)} Query #{query_index}; ranked in {elapsed:.2f} s."

    def _photo_view(self, key, photo, generations, k1, k2, eta, top_k, rerank=False):
        """(rankings html, status text) of an uploaded photo; see :meth:`upload_query`. Raises
        :class:`~pose2id.demo.inputs.InputError` or ValueError on bad input."""
        from pose2id.demo.inputs import open_photo, photo_digest
        from pose2id.features import get_extractor

        k1, k2, eta, top_k = int(k1), int(k2), float(eta), int(top_k)
        image = open_photo(photo)
        bench = self.galleries.benchmark(key, partial=True)
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
        html_text = uploaded_query_html(bench, features, thumbnail, k1, k2, eta, top_k, note, rerank)
        if gen_feats is not None:
            text = (f"Ranked your photo with Base, +NFC, +IPG and +NFC+IPG: +IPG from {count} of your photo "
                    f"({generated.generator}; {', '.join(generated.poses)}), eta {eta:g}.")
        else:
            text = f"Ranked your photo with Base and +NFC. {note}"
        if rerank:
            text += RERANK_NOT_FOR_PHOTOS
        return html_text, f"{self.label(bench, key)} {text}"

    def rank_photo(self, key, photo, generations, k1, k2, eta, top_k, label="Query photo"):
        """(rankings html, status) for an uploaded query photo against gallery ``key``; the
        rankings are None when the photo could not be ranked (the status says why).

        The photo gets the +IPG columns when the session's ``generations`` (the Generate tab's
        :class:`~pose2id.demo.generate.Generations`) hold images generated of this same photo,
        matched by content hash; otherwise Base and +NFC, and a note on how to get +IPG. ``label``
        names the photo in an error message (the Generate tab's search says "Reference photo").
        """
        from pose2id.demo.inputs import InputError

        if photo is None:
            return None, status("Upload a photo of a person to search the gallery for.", "info")
        try:
            html_text, text = self._photo_view(key, photo, generations, k1, k2, eta, top_k)
        except (InputError, ValueError, OSError) as error:
            return None, warn(f"{label}: {error}")
        return html_text, status(text, "ok")

    def upload_query(self, key, photo, generations, k1, k2, eta, top_k, label="Query photo"):
        """(rankings html, status, shown, query picker, view asked) for the page: :meth:`rank_photo`,
        with ``shown`` True, the picker highlighting no query and a new ``view asked`` token (the
        page then re-ranks the photo as the sliders say) once the photo's rankings are shown; when
        it could not be ranked, only the status changes."""
        html_text, message = self.rank_photo(key, photo, generations, k1, k2, eta, top_k, label)
        if html_text is None:
            return gr.update(), message, gr.update(), gr.update(), gr.update()
        return html_text, message, True, highlight_query(None), time.monotonic_ns()

    def search_person(self, key, photo, generations, k1, k2, eta, top_k):
        """The Generate tab's "Search the gallery with this person": its reference photo becomes
        the Retrieve tab's query photo, ranked as :meth:`rank_photo` ranks it.

        Returns
        -------
        (query photo, tabs, rankings html, Retrieve status, shown, query picker, Generate status,
        view asked) as :meth:`upload_query`; on a missing or unusable photo only the Generate status
        changes and the Retrieve tab stays as it is.
        """
        keep = (gr.update(),) * 6
        if photo is None:
            return *keep, warn("Upload a reference photo or pick an example first, then search the gallery with it."), gr.update()
        html_text, message = self.rank_photo(key, photo, generations, k1, k2, eta, top_k, label="Reference photo")
        if html_text is None:
            return *keep, message, gr.update()
        return (photo, gr.Tabs(selected="retrieve"), html_text, message, True, highlight_query(None), gr.update(),
                time.monotonic_ns())

    def refresh(self, key, query_index, photo, shown, generations, k1, k2, eta, rerank, top_k):
        """The view after a slider change or a newly opened gallery, in two steps: yields
        (rankings html, metrics table, status) first with the rankings (the uploaded photo's while
        they are the ones shown, else query ``query_index``'s), then with the metrics over the
        whole query set for the same parameters (:func:`metrics_table`).

        One event makes both, so the app runs them one after another for a page (the rankings and
        table of the latest sliders last): the table can never be an earlier event's, arriving
        after a later one's. Before any gallery is open (``key`` empty), nothing changes.
        """
        from pose2id.demo.inputs import InputError

        if not key:
            yield gr.update(), gr.update(), gr.update()
            return
        try:
            if shown and photo is not None:
                html_text, text = self._photo_view(key, photo, generations, k1, k2, eta, top_k, rerank)
            else:
                html_text, text = self._query_view(key, query_index, k1, k2, eta, rerank, top_k)
        except (InputError, ValueError, OSError) as error:
            yield gr.update(), gr.update(), warn(public_message(error))
            return
        yield html_text, gr.update(), status(text, "ok")
        try:
            table, count, elapsed = self._metrics(key, k1, k2, eta, rerank)
        except (ValueError, OSError) as error:
            yield gr.update(), gr.update(), warn(public_message(error))
            return
        yield gr.update(), table, status(f"{text} Metrics over all {count} queries updated in {elapsed:.2f} s.", "ok")

    def _metrics(self, key, k1, k2, eta, rerank):
        """(metrics table update, number of queries, seconds taken)."""
        start = time.perf_counter()
        bench = self.galleries.benchmark(key, partial=True)
        k1, k2, eta, rerank = int(k1), int(k2), float(eta), bool(rerank)
        table = metrics_table(metrics_rows(bench, k1, k2, eta, rerank), k1, k2, eta, rerank)
        return table, len(bench.query), time.perf_counter() - start

    def update(self, key, query_index, k1, k2, eta, rerank, top_k):
        """(rankings html, metrics table, status, rankings as JSON) in one call: the /retrieve API
        endpoint. Its clients get the table's headers and data (numbers as numbers) and
        :func:`rankings_data`; a bad input raises ``gr.Error`` with the app's message, which
        gradio_client raises in turn."""
        try:
            key, index = self._api_key(key), number(query_index, "query_index", whole=True)
            k1, k2, top_k = (number(value, name, whole=True) for value, name in ((k1, "k1"), (k2, "k2"), (top_k, "top_k")))
            self.galleries.benchmark(key)  # an API client gets the whole gallery (+IPG): wait for it
            # the metrics first: the rankings then read their rows of the distances they computed
            table, count, elapsed = self._metrics(key, k1, k2, eta, rerank)
            html_text, text = self._query_view(key, index, k1, k2, eta, rerank, top_k)
            data = rankings_data(self.galleries.benchmark(key), index, k1, k2, float(eta), bool(rerank), top_k)
        except (ValueError, OSError) as error:
            raise gr.Error(public_message(error), duration=TOAST_SECONDS) from None
        used = (f"Parameters: k1 {k1}, k2 {k2}, eta {float(eta):g}, top-k {top_k}, "
                f"{'k-reciprocal re-ranking' if rerank else 'no re-ranking'}.")
        return (html_text, table["value"],
                status(f"{text} Metrics over all {count} queries in {elapsed:.2f} s. {used}", "ok"), data)

    def _api_key(self, key):
        """A gallery key an API client gave, or ValueError listing the ones it may give."""
        keys = [k for _, k in self.galleries.choices(uploaded=key)]
        if key not in keys:
            raise ValueError(f"gallery {key!r} is not one of {keys}")
        return key

    def rankings(self, key, query_index, k1, k2, eta, rerank, top_k):
        """(rankings html, status) for one query (a click in the query strip)."""
        try:
            html_text, text = self._query_view(key, query_index, k1, k2, eta, rerank, top_k)
        except (ValueError, OSError) as error:
            return gr.update(), warn(str(error))
        return html_text, status(text, "ok")
