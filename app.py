"""The Pose2ID demo: generate a person in new poses, retrieve with feature centralization, and
watch the feature space. Run ``python app.py`` and open http://127.0.0.1:7860.

Everything the events call lives in :mod:`pose2id.demo`; this file builds the layout and wires it.
"""

import argparse
import os
import signal
import threading
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio reads GRADIO_SERVER_PORT with int() while it is imported, so a value that is no number
# would stop the import with a bare ValueError. Such a value is set aside here, before that
# import, and parse_args refuses it with a message naming the variable (unless --port is given).
_PORT_SET_ASIDE = {}
try:
    int(os.environ.get("GRADIO_SERVER_PORT", "0").strip() or "0")
except ValueError:
    _PORT_SET_ASIDE["GRADIO_SERVER_PORT"] = os.environ.pop("GRADIO_SERVER_PORT")
from pose2id.demo.ipg_runner import SWITCH_OFF, SWITCH_ON, on_zero_gpu  # noqa: E402  (imports neither torch nor gradio)

if on_zero_gpu():  # the same test as the app's hosting(): SPACES_ZERO_GPU=0 is no ZeroGPU
    import spaces  # noqa: F401  (ZeroGPU: imported before torch, as its documentation asks)

import gradio as gr

from pose2id.demo import editor
from pose2id.demo.about import ABOUT
from pose2id.demo.components import (ClampedSlider, GeneratorRadio, LenientNumber, PhotoInput, SeedNumber,
                                     StrictCheckbox)
from pose2id.demo.messages import status
from pose2id.demo.feature_space import TSNE_CSS, TSNE_JS, FeatureSpace
from pose2id.demo.generate import IPG, MAX_SEED, ORACLE, RANDOM_SEED, Generate, GenerateConfig, Generations, pose_previews
from pose2id.demo.galleries import SYNTHPED, Galleries
from pose2id.demo.retrieval_views import METRIC_HEADERS, highlight_query
from pose2id.demo.retrieve import Retrieve
from pose2id.demo.theme import CSS, HEAD, theme

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "examples")
PRIVATE = dict(api_visibility="undocumented")
# Rankings, metrics and plots (page events and their API endpoints) share one pool of workers, one
# per core (the queue's default limit), taken first come first served: per-event pools put more
# threads than cores on the CPU, and the busiest endpoint's queue waited while the others skipped it.
CPU_WORK = dict(concurrency_id="cpu")


def build_demo(data=None, ckpt_dir=None, test_pipeline=False, allow_cpu=False, galleries=None):
    """The Blocks of the app (not launched); ``galleries`` defaults to ``Galleries(data=data)``."""
    generate = Generate(GenerateConfig(ckpt_dir=ckpt_dir, test_pipeline=test_pipeline, allow_cpu=allow_cpu))
    galleries = galleries or Galleries(data=data)
    retrieve, space = Retrieve(galleries), FeatureSpace(galleries)
    examples = sorted(os.path.join(EXAMPLES_DIR, f) for f in os.listdir(EXAMPLES_DIR) if f.endswith(".jpg"))

    with gr.Blocks(title="Pose2ID demo") as demo:
        gr.HTML('<div class="p2-header"><h1>Pose2ID</h1><p>Training-free person re-identification by feature '
                'centralization — identity-guided generation (IPG), neighbour feature centralization (NFC) and '
                'identity density (ID²), CVPR 2025.</p></div>', js_on_load=None)
        # what the Generate tab made in this session, for the +IPG of the same photo in the Retrieve tab
        generations = gr.State(Generations())
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # phones: every tab visible, no "⋯" menu
            # ------------------------------------------------------------------ Generate
            with gr.Tab("Generate", id="generate") as generate_tab:
                # where IPG cannot run, a SynthPed identity is chosen from the start (the oracle draws it)
                start_photo, start_pid, start_status = generate.start_state()
                good_photo = gr.State(start_photo)
                # a hidden Number, not a State, so API clients can name the SynthPed identity too
                # (lenient: a word from an API client is refused in the app's words, naming the pid)
                synth_pid = LenientNumber(start_pid, visible=False, precision=0, label="SynthPed pid")
                # one screen (1366 x 768): photo | poses and Generate | status, forming preview, results;
                # the settings fold away and the skeleton editor sits below
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=240):
                        photo = PhotoInput(start_photo, label="Reference photo", type="filepath",
                                           sources=["upload", "clipboard"], height=260, elem_id="photo")
                        identity = gr.Dropdown(generate.identity_choices(), value=start_pid, label="SynthPed identity (synthetic; for the oracle)",
                                               elem_id="identity")
                        example_gallery = gr.Gallery(value=generate.examples(examples), columns=5, height=400,
                                                     allow_preview=False, elem_id="examples", object_fit="contain",
                                                     label="Examples (click one): photos, then SynthPed people (synthetic drawings, #pid)")
                    with gr.Column(scale=4, min_width=300):
                        gr.Image(pose_previews(), label="The 8 standard poses", show_label=False, height=120,
                                 interactive=False, buttons=[], elem_id="pose-strip")
                        pose_names = gr.CheckboxGroup([str(i) for i in range(1, 9)], value=["1", "3", "5", "7"],
                                                      label="Poses to generate", elem_id="pose-names")
                        note = generate.ipg_note()
                        generator = GeneratorRadio(
                            generate.generator_choices(),
                            value=ORACLE if note else IPG, label="Generator", elem_id="generator")
                        if note:
                            gr.HTML(status(note, "warning"), js_on_load=None)
                        generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                        stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button")
                        generate_api = gr.Button("Generate (API)", visible=False)  # /generate for API clients
                        with gr.Accordion("Settings: steps, guidance, seed, eta", open=False):
                            steps = ClampedSlider(1, 50, value=20, step=1, label="Steps", elem_id="steps")
                            guidance = ClampedSlider(1.0, 10.0, value=3.5, step=0.5, label="Guidance scale", elem_id="guidance")
                            with gr.Row():
                                # no minimum/maximum: Gradio would refuse -1 before the tab can say anything
                                seed = SeedNumber(42, label="Seed", precision=0, elem_id="seed",
                                                 info=f"0 to {MAX_SEED}; {RANDOM_SEED} = random")
                                randomize = StrictCheckbox(False, label="Randomize seed", elem_id="randomize")
                            eta = ClampedSlider(0.0, 5.0, value=2.0, step=0.1, label="eta (IPG fusion weight)", elem_id="gen-eta")
                        search_button = gr.Button("Search the gallery with this person", elem_id="search-person")
                        archive = gr.File(label="Download all (zip)", interactive=False, elem_id="archive")
                    with gr.Column(scale=5, min_width=360):
                        generate_status = gr.HTML(start_status, label="Status", elem_id="generate-status", js_on_load=None)
                        preview = gr.Image(label="Forming (one preview per pose)", height=180, interactive=False,
                                           elem_id="preview")
                        results = gr.Gallery(label="Pose | generated", columns=4, height=250, object_fit="contain",
                                             elem_id="results")
                with gr.Row(equal_height=False):
                    with gr.Column():
                        with gr.Accordion("Skeleton editor (the pose drawn here is one more pose)", open=True):
                            with gr.Row(equal_height=False):
                                with gr.Column(scale=3, min_width=300):
                                    pose_editor = editor.skeleton_editor(elem_id="pose-editor")
                                with gr.Column(scale=2, min_width=200):
                                    # strict: an API client's "false" is refused, not taken as ticked
                                    use_editor = StrictCheckbox(True, label="Include the editor pose", elem_id="use-editor")
                                    with gr.Row():
                                        reset_name = gr.Dropdown([str(i) for i in range(1, 9)], value="1",
                                                                 label="Standard pose", min_width=80, scale=1)
                                        reset_button = gr.Button("Reset", scale=1, elem_id="reset-pose")
                                    mirror_button = gr.Button("Mirror", elem_id="mirror-pose")
                                    photo_pose_button = gr.Button("Pose from the photo", elem_id="photo-pose")
                                    import_button = gr.UploadButton("Import OpenPose JSON", file_types=[".json"],
                                                                    elem_id="import-pose")
                                    export_button = gr.Button("Export OpenPose JSON", elem_id="export-pose")
                                    export_file = gr.File(label="pose.json", visible=False, interactive=False, elem_id="export-file")
                                    editor_status = gr.HTML(elem_id="editor-status", js_on_load=None)

            # ------------------------------------------------------------------ Retrieve
            with gr.Tab("Retrieve", id="retrieve") as retrieve_tab:
                gallery_key = gr.State(None)  # None until the page has opened a gallery; each change re-ranks
                query_index = gr.State(0)
                photo_shown = gr.State(False)  # the rankings shown are the uploaded photo's, not a query's
                # set (to a new number) whenever another query or photo is to be ranked: the rankings event
                # below then runs again after one already running, so its last status is the shown query's
                view_asked = gr.State(0)
                # SynthPed's first rankings come from its originals alone; while its generated images are
                # made in the background this timer looks each second, and once they are ready the page
                # ranks again (+IPG appears) and redraws the feature space (ipg_arrived changes)
                ipg_timer = gr.Timer(1.0, active=False)
                ipg_arrived = gr.State(0)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=260):
                        gallery_choice = gr.Radio(galleries.choices(), value=SYNTHPED, label="Gallery", elem_id="gallery-choice")
                        upload = gr.File(label="…or upload a Market-style .zip", file_types=[".zip"], height=130,
                                         elem_id="gallery-zip")
                        query_photo = PhotoInput(label="…or search with your own photo", type="filepath",
                                                 sources=["upload", "clipboard"], height=170, elem_id="query-photo")
                    with gr.Column(scale=2, min_width=420):
                        with gr.Row():
                            k1 = ClampedSlider(1, 10, value=2, step=1, label="k1 (NFC neighbours)", elem_id="k1")
                            k2 = ClampedSlider(1, 10, value=2, step=1, label="k2 (mutual neighbours)", elem_id="k2")
                        with gr.Row():
                            r_eta = ClampedSlider(0.0, 5.0, value=2.0, step=0.1, label="eta (IPG fusion weight)", elem_id="eta")
                            top_k = ClampedSlider(3, 15, value=8, step=1, label="top-k shown", elem_id="top-k")
                            rerank = StrictCheckbox(False, label="k-reciprocal re-ranking", elem_id="rerank")
                retrieve_status = gr.HTML(label="Status", elem_id="retrieve-status", js_on_load=None)
                queries = gr.Gallery(label="Queries (click one)", columns=16, height=220, allow_preview=False,
                                     object_fit="contain", elem_id="queries")
                rankings = gr.HTML(label="Rankings", elem_id="rankings", js_on_load=None)
                metrics = gr.Dataframe(headers=METRIC_HEADERS, label="Metrics over the whole query set",
                                       interactive=False, elem_id="metrics")
                # /retrieve for API clients: a gallery by name and a query index instead of the UI's clicks
                retrieve_api = gr.Button("Update", visible=False)
                rankings_json = gr.JSON(visible=False, label="Rankings (JSON)")  # /retrieve's lists as data
                api_query = LenientNumber(0, visible=False, precision=0, label="query index")

            # ------------------------------------------------------------------ Feature space
            with gr.Tab("Feature space", id="feature-space") as space_tab:
                with gr.Row():
                    after = gr.Dropdown(["+NFC", "+IPG", "+NFC+IPG"], value="+NFC+IPG", label="After", elem_id="after")
                    after_wanted = gr.State("+NFC+IPG")  # the user's own last choice, shown again where it exists
                    space_open = gr.State(False)  # is this tab the one shown? (a new gallery redraws it then)
                    sample_size = ClampedSlider(50, 800, value=250, step=10, elem_id="sample-size",
                                               label="t-SNE sample: about this many points (whole identities)")
                    space_api = gr.Button("Compute", visible=False)
                gr.Markdown("Uses the gallery and k1 / k2 / eta chosen on the Retrieve tab; the plots follow every change.")
                space_status = gr.HTML(label="Status", elem_id="space-status", js_on_load=None)
                id2_plot = gr.Plot(label="ID² per identity", elem_id="id2-plot")
                tsne_plot = gr.HTML(label="t-SNE", elem_id="tsne-plot", js_on_load=TSNE_JS, css_template=TSNE_CSS)

            with gr.Tab("About", id="about") as about_tab:
                gr.Markdown(ABOUT)

        # ---------------------------------------------------------------- Generate events
        def good(picked):  # a photo picked, or none: the last good photo; an update (a refused pick): unchanged
            return gr.skip() if isinstance(picked, dict) else picked

        def pick_example(evt: gr.SelectData):
            picked, pid, dropdown, message = generate.pick_example(examples, evt.index)
            return picked, good(picked), pid, dropdown, message

        def pick_identity(pid):
            picked, pid, message = generate.pick_identity(pid)
            return picked, good(picked), pid, message

        # good_photo: the last photo that could be used, put back when a file that cannot is dropped on the box
        example_gallery.select(pick_example, None, [photo, good_photo, synth_pid, identity, generate_status], **PRIVATE)
        # another photo is not the SynthPed identity's: the identity is cleared with it, and the status
        # follows the photo (what can be done with it, or why it cannot be used)
        gr.on([photo.upload, photo.clear], generate.photo_uploaded, [photo, good_photo],
              [photo, good_photo, synth_pid, identity, generate_status], **PRIVATE)
        identity.input(pick_identity, identity, [photo, good_photo, synth_pid, generate_status], **PRIVATE)
        generator.input(generate.generator_changed, [generator, photo, synth_pid], generate_status, **PRIVATE)
        reset_button.click(editor.reset, reset_name, [pose_editor, editor_status], **PRIVATE)
        mirror_button.click(editor.mirror, pose_editor, [pose_editor, editor_status], **PRIVATE)
        photo_pose_button.click(editor.from_photo, photo, [pose_editor, editor_status], **PRIVATE)
        import_button.upload(editor.import_json, import_button, [pose_editor, editor_status], **PRIVATE)
        export_button.click(editor.export_json, pose_editor, [export_file, editor_status], **PRIVATE)
        generate_inputs = [photo, pose_names, use_editor, pose_editor, generator, synth_pid, steps, guidance, seed,
                           randomize, eta, generations]
        generate_outputs = [preview, results, archive, generate_status, seed, generations]
        generating = generate_button.click(generate.generate_in_page, generate_inputs, generate_outputs,
                                           concurrency_limit=1, concurrency_id="gpu", **PRIVATE)
        # /generate for API clients: the same, but a refusal is raised (gradio_client raises it in turn)
        generate_api.click(generate.generate, generate_inputs, generate_outputs, api_name="generate",
                           concurrency_limit=1, concurrency_id="gpu")
        # Stop cancels the event; run_ipg then interrupts the pipeline at its next step.
        stop_button.click(None, None, None, cancels=[generating], **PRIVATE)

        # ---------------------------------------------------------------- Retrieve events
        controls = [k1, k2, r_eta, rerank, top_k]
        # opening a gallery shows its queries; the new gallery key then triggers the rankings below
        opened = [gallery_key, gallery_choice, queries, query_index, photo_shown, retrieve_status]
        # one progress text, in the status line under the controls: above the fold on a 1366x768 screen
        waiting = dict(show_progress_on=retrieve_status, **PRIVATE)
        demo.load(retrieve.open_gallery, [gallery_choice, gallery_key], opened, **waiting)
        gallery_choice.input(retrieve.open_gallery, [gallery_choice, gallery_key], opened, **waiting)
        # also /upload_zip for API clients (a zip in, the gallery selector with it chosen and the status out)
        upload.upload(retrieve.upload_zip_in_box, [upload, gallery_key], [*opened, upload], api_name="upload_zip",
                      show_progress_on=retrieve_status)
        upload.clear(retrieve.close_zip, gallery_key, opened, **waiting)
        demo.unload(retrieve.session_ended)  # the page closed: the zips only it uploaded are removed

        # a query clicked, the photo removed (back to the query highlighted) or a photo ranked: view_asked
        # changes, which runs the rankings event below (after one already running, which would otherwise
        # have the last word with the query it started with)
        def pick_query(evt: gr.SelectData):
            return evt.index, False, time.monotonic_ns()

        def unpick_photo(index):
            return False, highlight_query(index), time.monotonic_ns()

        queries.select(pick_query, None, [query_index, photo_shown, view_asked], **PRIVATE)
        query_photo.upload(retrieve.upload_query, [gallery_key, query_photo, generations, k1, k2, r_eta, top_k],
                           [rankings, retrieve_status, photo_shown, queries, view_asked], **CPU_WORK, **PRIVATE)
        query_photo.clear(unpick_photo, query_index, [photo_shown, queries, view_asked], **PRIVATE)
        search_button.click(
            retrieve.search_person, [gallery_key, photo, generations, k1, k2, r_eta, top_k],
            [query_photo, tabs, rankings, retrieve_status, photo_shown, queries, generate_status, view_asked],
            **CPU_WORK, **PRIVATE)
        # rankings, then metrics, in one event for all of these: one runs at a time per page and the
        # last one has the latest values, so the table always matches the sliders
        gr.on([gallery_key.change, view_asked.change, *(control.input for control in controls)], retrieve.refresh,
              [gallery_key, query_index, query_photo, photo_shown, generations, *controls],
              [rankings, metrics, retrieve_status], trigger_mode="always_last", **CPU_WORK, **PRIVATE)
        def watch_completion(key):
            return gr.Timer(active=bool(key) and galleries.is_ready(key) and not galleries.is_complete(key))

        def check_completion(key):
            if not key or not (galleries.is_complete(key) or galleries.completion_error(key) is not None):
                return gr.update(), gr.update(), gr.update()
            now = time.monotonic_ns()  # complete (or failed, which the rankings' note then says)
            return gr.Timer(active=False), now, now

        gallery_key.change(watch_completion, gallery_key, ipg_timer, show_progress="hidden", **PRIVATE)
        ipg_timer.tick(check_completion, gallery_key, [ipg_timer, view_asked, ipg_arrived], show_progress="hidden",
                       concurrency_limit=None, **PRIVATE)
        retrieve_api.click(retrieve.update, [gallery_choice, api_query, *controls],
                           [rankings, metrics, retrieve_status, rankings_json],
                           api_name="retrieve", **CPU_WORK)

        # ---------------------------------------------------------------- Feature space events
        space_inputs = [gallery_key, after, k1, k2, r_eta, sample_size]
        space_outputs = [id2_plot, tsne_plot, space_status]
        # the user's choice of After is kept apart from the one shown: a gallery without +IPG shows +NFC,
        # and the next gallery with +IPG shows the user's choice again
        after.input(lambda choice: choice, after, after_wanted, **PRIVATE)
        gr.on([space_tab.select, after_wanted.change, sample_size.input], space.view, [*space_inputs, after_wanted],
              [after, *space_outputs], trigger_mode="always_last", **CPU_WORK, **PRIVATE)
        # a gallery that opens (the first visit's SynthPed, an upload) redraws the tab if it is open
        space_tab.select(lambda: True, None, space_open, **PRIVATE)
        for tab in (generate_tab, retrieve_tab, about_tab):
            tab.select(lambda: False, None, space_open, **PRIVATE)
        gr.on([gallery_key.change, ipg_arrived.change], space.view_if_open, [space_open, *space_inputs, after_wanted],
              [after, *space_outputs], trigger_mode="always_last", show_progress="hidden", **CPU_WORK, **PRIVATE)
        space_api.click(space.plots, [gallery_choice, *space_inputs[1:]], space_outputs, api_name="feature_space", **CPU_WORK)
    return demo


# Gradio's cache (uploads, returned files) is swept every hour of files older than two hours.
DELETE_CACHE = (3600, 7200)


def _env_port(parser):
    """The port from GRADIO_SERVER_PORT (Gradio's own variable), else PORT, else 7860."""
    for name in ("GRADIO_SERVER_PORT", "PORT"):
        text = os.environ.get(name, _PORT_SET_ASIDE.get(name, "")).strip()
        if text:
            try:
                port = int(text)
            except ValueError:
                parser.error(f"environment variable {name}={text!r} is not a port number (1-65535)")
            if not 0 < port < 65536:
                parser.error(f"environment variable {name}={text!r} is not a port number (1-65535)")
            return port
    return 7860


def _env_concurrency(parser):
    """How many calls of one event (or of one pool of events, :data:`CPU_WORK`) run at once:
    Gradio's own GRADIO_DEFAULT_CONCURRENCY_LIMIT (a number, or "none" for no limit) when it is
    set, else one per core of this process. The work is CPU-bound numpy: more calls than cores
    only take turns, each slower (caches, the GIL)."""
    name = "GRADIO_DEFAULT_CONCURRENCY_LIMIT"
    text = os.environ.get(name, "").strip()
    if text.lower() == "none":
        return None
    if text:
        try:
            limit = int(text)
        except ValueError:
            limit = 0
        if limit < 1:
            parser.error(f"environment variable {name}={text!r} is not a positive whole number or 'none'")
        return limit
    from pose2id._threads import available_cores

    return max(1, available_cores())


def _env_switch(parser, name):
    """An on/off variable: 1, true, yes or on; 0, false, no, off or unset. Anything else stops the
    app naming it (a host's POSE2ID_CPU=true must not be taken as off without a word)."""
    text = os.environ.get(name, "").strip().lower()
    if text in SWITCH_ON:
        return True
    if text in SWITCH_OFF:
        return False
    parser.error(f"environment variable {name}={os.environ[name]!r} is not 1 or 0 (true or false)")


def parse_args(argv=None):
    """The app's options; flags override the environment variables named in their help."""
    from pose2id.demo.generate import LOCAL, hosting

    parser = argparse.ArgumentParser(description="Pose2ID demo (Gradio)")
    parser.add_argument("--data", default=os.environ.get("POSE2ID_DATA"),
                        help="dataset for the Retrieve tab: a Market-1501 style folder or .zip, or 'msmt17:PATH', "
                             "'dukemtmc:PATH', 'cuhk03-np:PATH' ... as --dataset takes (docs/datasets.md) "
                             "(env POSE2ID_DATA)")
    parser.add_argument("--features", default=os.environ.get("POSE2ID_FEATURES", "handcrafted"),
                        help="features of the --data gallery in the Retrieve tab: 'handcrafted' (default), "
                             "'transreid:CKPT', or 'npz:FILE' (names, feats, optional gen_feats of any model; see "
                             "docs/reproduce.md) (env POSE2ID_FEATURES); the other galleries stay handcrafted")
    parser.add_argument("--ckpt-dir", default=os.environ.get("POSE2ID_CKPT_DIR"),
                        help="folder with the official Pose2ID weights (default: the Hugging Face cache)")
    parser.add_argument("--port", type=int, default=None,
                        help="port to serve on (env GRADIO_SERVER_PORT, or PORT; default 7860)")
    default_host = os.environ.get("GRADIO_SERVER_NAME") or ("127.0.0.1" if hosting() == LOCAL else "0.0.0.0")
    parser.add_argument("--host", default=default_host,
                        help="address to serve on (env GRADIO_SERVER_NAME; default 127.0.0.1, 0.0.0.0 on a Space)")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    parser.add_argument("--cpu", action="store_true", default=_env_switch(parser, "POSE2ID_CPU"),
                        help="run IPG on the CPU when there is no CUDA GPU: float32, many minutes per image "
                             "(env POSE2ID_CPU=1; on a CPU Space the only way to get IPG)")
    parser.add_argument("--test-pipeline", action="store_true", default=_env_switch(parser, "POSE2ID_TEST_PIPELINE"),
                        help="use the tiny random-weight IPG pipeline (for tests; images are noise)")
    args = parser.parse_args(argv)
    if args.port is None:  # the variables only when the flag is not given: a flag wins over a bad one
        args.port = _env_port(parser)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not a port number (1-65535)")
    _check_data(parser, args)
    _check_features(parser, args)
    args.concurrency_limit = _env_concurrency(parser)
    _check_limits(parser)
    return args


def _check_limits(parser):
    """POSE2ID_MAX_UPLOAD_MB, POSE2ID_MAX_UPLOADS and POSE2ID_RESULT_CACHE_MB refused at once, by
    name, when they are bad (not after a ZeroGPU Space has loaded its weights, as a traceback)."""
    from pose2id.demo.uploads import limits
    from pose2id.lru import default_max_bytes

    for check in (limits, default_max_bytes):
        try:
            check()
        except ValueError as error:
            parser.error(str(error))


def _check_data(parser, args):
    """--data refused at once when its folder or .zip does not exist (not on the first visit, as a
    gallery that cannot be opened)."""
    from pose2id.data import spec_path

    path = spec_path(args.data) if args.data else None
    if path is not None and not path.exists():
        parser.error(f"--data {args.data}: {path} does not exist (a dataset folder or .zip; see docs/datasets.md)")


def _check_features(parser, args):
    """--features: refused at once when it cannot work (no --data, a missing or bad file)."""
    spec = args.features
    if spec == "handcrafted":
        return
    if not args.data:
        parser.error(f"--features {spec} is for the --data gallery: give --data PATH too")
    kind, _, path = spec.partition(":")
    if kind not in ("npz", "transreid", "transreid-global") or not path:
        parser.error(f"--features must be 'handcrafted', 'transreid:CKPT' or 'npz:FILE', got {spec!r}")
    if kind == "npz":
        from pose2id.features.npz import FeatureFile

        try:
            FeatureFile(path)
        except ValueError as error:
            parser.error(f"--features: {error}")
    elif not os.path.isfile(os.path.expanduser(path)):
        parser.error(f"--features {spec}: the checkpoint {path} does not exist")


def launch_options(args, galleries=None):
    """Keyword arguments of ``demo.launch`` for ``args``: where to serve, the upload size limit,
    and the only folders served from disk (the example photos, SynthPed's and the --data
    folder's images: :meth:`Galleries.served_folders`). Everything else, the images of uploaded
    zips included, reaches the page through Gradio's cache, which serves inline only images."""
    from pose2id.demo.uploads import limits

    galleries = galleries or Galleries(data=args.data)
    allowed = [EXAMPLES_DIR] + galleries.served_folders()
    return dict(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        theme=theme(),
        css=CSS,
        head=HEAD,
        show_error=True,
        footer_links=["api"],
        max_file_size=limits().max_bytes,
        allowed_paths=allowed,
        prevent_thread_lock=True,
    )


def _demo_from(args):
    """(the app's Blocks, its galleries) for parsed options."""
    galleries = Galleries(data=args.data, data_extractor=args.features)
    blocks = build_demo(data=args.data, ckpt_dir=args.ckpt_dir, test_pipeline=args.test_pipeline, allow_cpu=args.cpu,
                        galleries=galleries)
    blocks.delete_cache = DELETE_CACHE
    return blocks, galleries


def __getattr__(name):
    """``app.demo``: the app's Blocks, built on first use with the settings of the environment
    variables (what ``gradio app.py``'s reload mode and a notebook look for); ``main`` sets it
    to the Blocks it launches."""
    if name == "demo":
        globals()["demo"] = _demo_from(parse_args([]))[0]
        return globals()["demo"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stop_on_sigterm():
    """SIGTERM (a Space restarting, ``docker stop``, systemd) stops the server as Ctrl+C does, so
    the process exits normally and its temporary folders (uploaded galleries, files for download)
    are removed: Python's default SIGTERM ends the process without running ``atexit``."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def main(argv=None):
    args = parse_args(argv)
    _stop_on_sigterm()
    from pose2id._threads import fix_threads
    from pose2id.demo.generate import GPU_SPACE, ZERO_GPU, GenerateConfig, hosting, preload_pipeline
    from pose2id.demo.memory import return_freed_memory

    # one BLAS thread per request, for the whole process: a count that a request changed would
    # change other requests' last decimals (pose2id._threads)
    fix_threads(1)
    return_freed_memory()  # large temporary arrays go back to the system once freed
    kind = hosting()
    config = GenerateConfig(ckpt_dir=args.ckpt_dir, test_pipeline=args.test_pipeline, allow_cpu=args.cpu)
    if kind == ZERO_GPU:
        # ZeroGPU: the weights are loaded and moved to CUDA once, before serving
        preload_pipeline(config)
    global demo
    demo, galleries = _demo_from(args)
    # CPU work (rankings, plots) runs one call per core at a time (CPU_WORK); generation one at a
    # time (its "gpu" pool).
    demo.queue(default_concurrency_limit=args.concurrency_limit).launch(**launch_options(args, galleries))
    # Once the app serves: SynthPed (the gallery every page opens with) is prepared in the
    # background, its originals first, so the first visitor seldom waits; one who does sees its progress.
    galleries.warm_up(SYNTHPED)
    if kind == GPU_SPACE:  # a dedicated GPU: IPG loaded meanwhile, not in the first visitor's request
        threading.Thread(target=preload_pipeline, args=(config,), name="load IPG", daemon=True).start()
    demo.block_thread()


if __name__ == "__main__":
    main()
