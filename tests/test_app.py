"""Unit tests of the app's callbacks (pose2id.demo), without a browser."""

import json
import re
import threading
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from pose2id.demo import editor
from pose2id.demo.generate import (IPG, MAX_SEED, ORACLE, SYNTHPED_EXAMPLES, Generate, GenerateConfig, Generations,
                                   pair_image, selected_poses)
from pose2id.demo.inputs import InputError, open_photo
from pose2id.demo.retrieve import DATA, SYNTHPED, Galleries, Retrieve, ranked_list
from pose2id.poses import MIRROR_INDEX, Pose, PoseError
from testkit import png_header_only
from tiny_market import market_folder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _kind(message):
    """The kind of a status box ("info", "ok", "warning", "error"): its p2-<kind> class."""
    kinds = re.findall(r'class="p2-status p2-(\w+)"', message)
    assert len(kinds) == 1, message
    return kinds[0]


# ---------------------------------------------------------------------------- inputs
def test_open_photo_refuses_a_non_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo")
    with pytest.raises(InputError, match="not an image"):
        open_photo(path)


def test_open_photo_refuses_a_huge_image_from_its_header(tmp_path):
    path = png_header_only(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(InputError, match="too large|megapixels"):
        open_photo(path)


def test_open_photo_states_size_and_limit(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(InputError, match=r"300x200 .* limit"):
        open_photo(path, max_pixels=10_000)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_open_photo_converts_modes_to_rgb(tmp_path, mode):
    path = tmp_path / f"photo_{mode}.{'jpg' if mode in ('L', 'CMYK') else 'png'}"
    Image.new(mode, (32, 64)).save(path)
    image = open_photo(path)
    assert image.mode == "RGB" and image.size == (32, 64)


def test_open_photo_composites_transparency_on_white(tmp_path):
    path = tmp_path / "transparent.png"
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(path)
    assert open_photo(path).getpixel((0, 0)) == (255, 255, 255)


def test_open_photo_refuses_a_picture_too_small_to_show_a_person(tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (3, 3)).save(tiny)
    with pytest.raises(InputError, match=r"tiny.png is only 3x3 pixels, too small to show a person"):
        open_photo(tiny)
    Image.new("RGB", (16, 40)).save(tiny)  # the smallest accepted
    assert open_photo(tiny).size == (16, 40)


def test_open_photo_without_a_file_says_what_to_do():
    with pytest.raises(InputError, match="upload"):
        open_photo(None)


# ---------------------------------------------------------------------------- editor
def test_editor_value_round_trips_a_pose():
    pose = editor.standard_pose("4")
    assert editor.from_value(editor.to_value(pose)) == Pose(pose.keypoints, pose.visible, 64, 128)


def test_mirror_swaps_left_and_right_joints():
    pose = editor.standard_pose("3")
    value, message = editor.mirror(editor.to_value(pose))
    mirrored = editor.from_value(value)
    assert _kind(message) == "ok" and "mirrored" in message
    np.testing.assert_allclose(mirrored.keypoints[2, 0], 64 - pose.keypoints[MIRROR_INDEX[2], 0], atol=1e-4)


def test_reset_gives_the_standard_pose():
    value, _ = editor.reset("6")
    np.testing.assert_allclose(editor.from_value(value).keypoints, editor.standard_pose("6").keypoints, atol=1e-4)


def test_import_malformed_json_keeps_the_pose_and_says_why(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"people": [{"pose_keypoints_2d": [1, 2')
    value, message = editor.import_json(str(path))
    assert value == {"__type__": "update"}  # the editor keeps the user's pose
    assert "Cannot import broken.json" in message and "unchanged" in message


def test_import_pose_with_17_points_is_refused(tmp_path):
    path = tmp_path / "short.json"
    path.write_text(json.dumps({"canvas_width": 64, "canvas_height": 128,
                                "people": [{"pose_keypoints_2d": [10.0, 10.0, 1.0] * 17}]}))
    value, message = editor.import_json(str(path))
    assert value == {"__type__": "update"} and "Error" in message


@pytest.mark.parametrize("flat, why", [
    ([0] * 54, "every keypoint is 0, 0, 0"),
    ([float("nan")] * 54, "no numeric x, y"),
    ([32, 20, 1, 32, 30, 1] + [0, 0, 0] * 16, "only 2 visible joints (nose, neck)"),
    ([20, 30, 1, 0, 0, 0] + [20, 30, 1] * 16, "no neck"),
])
def test_import_of_a_pose_without_a_body_keeps_the_pose_and_says_why(tmp_path, flat, why):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    value, message = editor.import_json(str(path))
    assert value == KEEP  # the editor keeps the user's pose
    assert _kind(message) == "error" and "empty.json" in message and why in message and "unchanged" in message
    assert "JSON text" not in message and "0 joints" not in message


def test_import_then_export_round_trips(tmp_path):
    pose = editor.standard_pose("2").mirror()
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(pose.to_openpose()))
    value, message = editor.import_json(str(path))
    assert "Imported mine.json" in message
    download, _ = editor.export_json(value)
    exported = Pose.from_openpose(json.loads(open(download["value"]).read()))
    np.testing.assert_allclose(exported.keypoints[exported.visible], pose.keypoints[pose.visible], atol=1e-3)


def test_export_of_a_broken_editor_value_is_a_message():
    update, message = editor.export_json("not json")
    assert update == {"__type__": "update"} and "Cannot export" in message


# ---------------------------------------------------------------------------- generate
# How long a test waits for another thread before it fails: only a hang gets near it.
WAIT = 300
KEEP = {"__type__": "update"}  # an output a refused request leaves as it was


def _run(gen, **overrides):
    args = dict(photo=None, pose_names=["1", "5"], use_editor=False, editor_value=editor.to_value(editor.standard_pose("2")),
                generator=ORACLE, synth_pid=None, steps=2, guidance=3.5, seed=7, randomize=False, eta=2.0,
                generations=Generations())
    args.update(overrides)
    import gradio

    outputs = []
    try:
        for output in gen.generate(*args.values()):
            outputs.append(output)
    except gradio.Error:  # a refusal: its status was yielded first
        pass
    return outputs


def test_selected_poses_orders_standard_poses_then_the_editor_pose():
    labels = [label for label, _ in selected_poses(["5", "2"], True, editor.to_value(editor.standard_pose("8")))]
    assert labels == ["pose 2", "pose 5", "editor pose"]
    with pytest.raises(PoseError, match="no pose selected"):
        selected_poses([], False, "")


def test_oracle_generates_one_pair_per_pose_and_a_zip():
    gen = Generate()
    photo, pid, _ = gen.pick_identity(45)
    outputs = _run(gen, photo=photo, synth_pid=pid, use_editor=True)
    preview, gallery, archive, message, seed, _ = outputs[-1]
    assert len(gallery) == 3 and seed == 7
    assert _kind(message) == "ok" and "oracle" in message and "seed 7" in message
    names = zipfile.ZipFile(archive).namelist()
    assert sum(n.endswith("_generated.png") for n in names) == 3 and "settings.json" in names
    assert json.loads(zipfile.ZipFile(archive).read("settings.json"))["seed"] == 7


def test_randomize_returns_the_seed_it_used():
    gen = Generate()
    photo, pid, _ = gen.pick_identity(50)
    *_, message, seed, _ = _run(gen, photo=photo, synth_pid=pid, randomize=True)[-1]
    assert 0 <= seed < 2**31 and f"random seed {seed}" in message


def test_seed_minus_one_is_random_and_out_of_range_seeds_are_refused():
    gen = Generate()
    photo, pid, _ = gen.pick_identity(50)
    *_, message, seed, _ = _run(gen, photo=photo, synth_pid=pid, seed=-1)[-1]
    assert 0 <= seed <= MAX_SEED and f"random seed {seed}" in message
    for bad, why in [(-2, "-2 is out of range"), (99999999999, "99999999999 is out of range"),
                     (None, "seed is empty"), (1.5, "not a whole number")]:
        outputs = _run(gen, photo=photo, synth_pid=pid, seed=bad)
        (preview, gallery, archive, message, seed, _), = outputs
        assert why in message and str(MAX_SEED) in message and "-1" in message  # the range it accepts
        assert "p2-error" in message and preview == gallery == archive == seed == KEEP  # nothing of the user's lost


def test_app_lets_the_tab_check_the_seed_and_clamps_typed_slider_values(monkeypatch):
    """Gradio's own bounds check fails the whole event with a generic error; the seed box has no
    bounds (the tab checks it), and sliders bring a typed value into their range."""
    import gradio as gr

    import app

    demo = app.build_demo(test_pipeline=True)
    by_id = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert by_id["seed"].preprocess(-1) == -1 and by_id["seed"].preprocess(99999999999) == 99999999999
    assert "-1 = random" in by_id["seed"].info
    for elem_id, low, high in [("steps", 1, 50), ("guidance", 1, 10), ("gen-eta", 0, 5),
                               ("k1", 1, 10), ("k2", 1, 10), ("eta", 0, 5), ("top-k", 3, 15),
                               ("sample-size", 50, 800)]:
        slider = by_id[elem_id]
        assert (slider.preprocess(low - 1), slider.preprocess(high * 10)) == (low, high), elem_id
        assert slider.preprocess(None) == slider.value and slider.preprocess("") == slider.value
        for bad in (float("nan"), float("inf"), "two", True):  # an API client's non-numbers: the app's message
            with pytest.raises(gr.Error, match=re.escape(slider.label)):
                slider.preprocess(bad)
    with pytest.raises(gr.Error, match="re-ranking: 'false' is not true or false"):
        by_id["rerank"].preprocess("false")
    assert by_id["rerank"].preprocess(True) is True
    # a value between steps goes to the nearest step (halves up), as the browser moves the handle
    typed = {"k1": [(2.7, 3), (2.4, 2), (2.5, 3)], "guidance": [(3.6, 3.5), (3.8, 4.0)],
             "eta": [(2.34, 2.3), (2.36, 2.4), (4.99, 5.0)], "sample-size": [(254, 250), (255, 260)]}
    for elem_id, pairs in typed.items():
        assert [by_id[elem_id].preprocess(value) for value, _ in pairs] == [snapped for _, snapped in pairs], elem_id


def test_oracle_without_a_synthped_identity_explains(tmp_path):
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 128)).save(photo)
    outputs = _run(Generate(), photo=str(photo))
    message = outputs[0][3]
    assert len(outputs) == 1 and _kind(message) != "ok" and "SynthPed" in message and outputs[0][1] == KEEP


@pytest.mark.parametrize("editor_value, why", [
    (json.dumps({"people": [{"pose_keypoints_2d": [0] * 54}]}), "no visible joint"),
    (json.dumps({"people": [{"pose_keypoints_2d": [float("nan")] * 54}]}), "no visible joint"),
    (json.dumps({"canvas_width": 64, "canvas_height": 128,
                 "people": [{"pose_keypoints_2d": [32, 20, 1, 32, 30, 1, 20, 30, 1] + [0, 0, 0] * 15}]}),
     "only 3 visible joints"),
    (json.dumps({"canvas_width": 64, "canvas_height": 128,
                 "people": [{"pose_keypoints_2d": [32, 20, 1, 0, 0, 0] + [20, 30, 1] * 16}]}), "no neck"),
    ("", "holds no pose"),
])
@pytest.mark.parametrize("generator", [ORACLE, IPG])
def test_generate_refuses_an_editor_pose_without_a_body(editor_value, why, generator):
    gen = Generate(GenerateConfig(test_pipeline=True))
    photo, pid, _ = gen.pick_identity(41)
    outputs = _run(gen, photo=photo, synth_pid=pid, generator=generator, pose_names=["1"], use_editor=True,
                   editor_value=editor_value)
    (_, gallery, archive, message, _, generations), = outputs  # refused before anything runs
    assert _kind(message) == "error" and why in message and "editor pose" in message
    assert gallery == archive == KEEP and generations.finished is None
    # the same pose, not included: the standard pose alone is generated
    if generator == ORACLE:
        outputs = _run(gen, photo=photo, synth_pid=pid, pose_names=["1"], use_editor=False, editor_value=editor_value)
        assert len(outputs[-1][1]) == 1


def test_oracle_as_the_readme_calls_it_photo_none_and_a_pid():
    gen = Generate()
    *_, gallery, archive, message, _, generations = _run(gen, photo=None, synth_pid=41)[-1]
    assert len(gallery) == 2 and "identity #41" in message and "p2-ok" in message
    # the identity's own picture is the reference: the zip's and the Retrieve tab's
    from pose2id.demo.inputs import photo_digest

    picture = gen.identity_picture(41)
    assert generations.finished.photo_digest == photo_digest(picture)
    reference = Image.open(zipfile.ZipFile(archive).open("reference.png"))
    assert photo_digest(reference.convert("RGB")) == photo_digest(picture)


@pytest.mark.parametrize("pid", [5, 0, 121, 41.5, "x"])
def test_oracle_with_an_unknown_pid_says_so_in_the_status(pid):
    (_, gallery, _, message, _, _), = _run(Generate(), photo=None, synth_pid=pid)
    assert "p2-error" in message and "41–120" in message and gallery == KEEP
    assert "1..120" not in message


def test_oracle_with_another_photo_uses_the_identitys_picture_and_says_so():
    from pathlib import Path

    from pose2id.demo.inputs import photo_digest

    gen = Generate()
    photo = Path(__file__).resolve().parents[1] / "assets" / "examples" / "rgb1.jpg"
    *_, message, _, generations = _run(gen, photo=str(photo), synth_pid=41)[-1]
    assert "not used" in message and "identity #41" in message
    # the fusion line and the +IPG record are the identity's, not the photo's mixed with identity #41
    assert generations.finished.photo_digest == photo_digest(gen.identity_picture(41))
    assert generations.finished.photo_digest != photo_digest(open_photo(photo))
    own, _, _ = gen.pick_identity(41)
    *_, message, _, _ = _run(gen, photo=own, synth_pid=41)[-1]
    assert "not used" not in message


def test_examples_end_with_synthped_identities_labelled_synthetic(tmp_path):
    gen = Generate()
    photos = [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    items = gen.examples(photos)
    assert [path for path, _ in items[:2]] == photos and len(items) == 2 + len(SYNTHPED_EXAMPLES)
    assert all(caption == f"#{pid}" for (_, caption), pid in zip(items[2:], SYNTHPED_EXAMPLES))
    # a SynthPed example chooses its identity (dropdown and pid); a photo clears it
    photo, pid, dropdown, message = gen.pick_example(photos, 3)
    assert pid == dropdown == SYNTHPED_EXAMPLES[1] and photo == gen.identity_photo(pid) and "synthetic" in message
    photo, pid, dropdown, _ = gen.pick_example(photos, 1)
    assert photo == photos[1] and pid is None and dropdown is None


def test_generate_status_follows_the_reference_photo(monkeypatch, tmp_path):
    import torch

    from pose2id.demo.inputs import MAX_PIXELS

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gen = Generate(GenerateConfig())
    start_photo, pid, message = gen.start_state()
    assert f"SynthPed identity #{pid}" in message
    # the photo removed with ✕: the identity goes with it and the status asks for another photo
    pid, identity, message = gen.photo_changed(None)
    assert pid is identity is None and "reference photo" in message.lower() and "#41" not in message
    assert "press Generate" not in message
    # another photo on a CPU machine: said at once that it can be searched, not generated here
    photo = tmp_path / "walker.png"
    Image.new("RGB", (64, 128), (120, 60, 30)).save(photo)
    pid, identity, message = gen.photo_changed(str(photo))
    assert pid is identity is None and "walker.png (64x128)" in message and "CUDA GPU" in message
    assert "Search the gallery" in message and "SynthPed example" in message  # what can be done instead
    # where IPG runs: press Generate
    _, _, message = Generate(GenerateConfig(test_pipeline=True)).photo_changed(str(photo))
    assert "press Generate" in message and "tiny random-weight" in message
    # a bad or huge file: its specific error at upload time
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a photo")
    _, _, message = gen.photo_changed(str(fake))
    assert _kind(message) == "error" and "fake.jpg" in message and "not an image" in message
    side = int(MAX_PIXELS ** 0.5) + 100
    huge = tmp_path / "huge.png"
    Image.new("1", (side, side)).save(huge)  # bilevel: small file, many pixels
    _, _, message = gen.photo_changed(str(huge))
    assert _kind(message) == "error" and f"{side}x{side}" in message and "megapixels" in message


def test_the_status_follows_the_generator_chosen(monkeypatch):
    import torch

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gen = Generate(GenerateConfig())
    photo, pid, _ = gen.start_state()
    # the CPU machine opens on SynthPed #41 with the oracle; IPG chosen instead: why it cannot run
    message = gen.generator_changed(IPG, photo, pid)
    assert _kind(message) == "warning" and "CUDA GPU" in message and "oracle" not in message.split(".")[0]
    assert f"#{pid}" in gen.generator_changed(ORACLE, photo, pid)
    assert "SynthPed" in gen.generator_changed(ORACLE, "photo.jpg", None)  # the oracle draws only those
    able = Generate(GenerateConfig(test_pipeline=True))
    assert "Press Generate" in able.generator_changed(IPG, "photo.jpg", None)
    assert "reference photo" in able.generator_changed(IPG, None, None)


def test_a_file_that_cannot_be_used_gives_way_to_the_previous_photo(tmp_path):
    gen = Generate(GenerateConfig(test_pipeline=True))
    good, text = tmp_path / "rgb.png", tmp_path / "notimage.jpg"
    Image.new("RGB", (64, 128)).save(good)
    text.write_text("hello")
    photo, kept, pid, identity, message = gen.photo_uploaded(str(good), None)
    assert photo == {"__type__": "update"} and kept == str(good) and "press Generate" in message
    # a text file dropped over it: the good photo comes back, with its SynthPed identity untouched
    photo, kept, pid, identity, message = gen.photo_uploaded(str(text), str(good))
    assert photo == kept == str(good) and pid == identity == {"__type__": "update"}
    assert _kind(message) == "error" and "notimage.jpg" in message and "not an image" in message and "kept" in message
    # nothing before it: the box is emptied, and the message says why
    photo, kept, *_, message = gen.photo_uploaded(str(text), None)
    assert photo is kept is None and "not an image" in message and "kept" not in message
    # removed: no photo, and none to come back
    photo, kept, pid, identity, message = gen.photo_uploaded(None, str(good))
    assert kept is None and pid is None and "reference photo" in message.lower()


def test_a_cpu_machine_starts_with_a_synthped_identity_that_generates(monkeypatch):
    import torch

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gen = Generate(GenerateConfig())
    photo, pid, message = gen.start_state()
    assert pid == SYNTHPED_EXAMPLES[0] and photo == gen.identity_photo(pid) and "press Generate" in message
    *_, gallery, _, message, _, _ = _run(gen, photo=photo, synth_pid=pid)[-1]
    assert len(gallery) == 2 and "p2-ok" in message
    # a real example photo on this machine: told at once that it cannot be generated here
    _, pid, dropdown, message = gen.pick_example(["rgb1.jpg"], 0)
    assert pid is dropdown is None and "CUDA GPU" in message and "SynthPed example" in message
    # where IPG runs, nothing is chosen for the user
    assert Generate(GenerateConfig(test_pipeline=True)).start_state() == (None, None, "")


def test_ipg_without_gpu_says_why_and_offers_the_oracle(tmp_path, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 128)).save(photo)
    (_, gallery, archive, message, _, _), = _run(Generate(GenerateConfig()), photo=str(photo), generator=IPG)
    assert gallery == archive == KEEP  # the last results stay
    assert "GPU" in message and "oracle" in message and "python -m pose2id download" in message
    assert "above" in message and "below" not in message  # the SynthPed examples and identities are above it


def test_cpu_flag_runs_ipg_without_a_gpu_and_says_it_is_slow(tmp_path, monkeypatch):
    """`app.py --cpu` on a machine without CUDA, weights present: IPG is offered and every status
    says it will be slow; nothing pushes the oracle."""
    import torch

    import app
    import pose2id.demo.ipg_runner as generate_module
    import pose2id.ipg.weights as weights
    from pose2id.demo.generate import IPGUnavailable

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(weights, "resolve_files", lambda *a, **k: {})  # the weights are there

    def no_load(config):
        raise IPGUnavailable("stopped here by the test")

    monkeypatch.setattr(generate_module, "load_pipeline", no_load)
    assert app.parse_args(["--cpu"]).cpu and not app.parse_args([]).cpu
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 128)).save(photo)
    gen = Generate(GenerateConfig(allow_cpu=True))
    assert gen.ipg_note() == "" and gen.start_state() == (None, None, "")  # no SynthPed identity chosen
    *_, message = gen.photo_changed(str(photo))
    assert "CPU" in message and "slow" in message and "needs a CUDA GPU" not in message
    starting, (_, gallery, _, message, _, _) = _run(gen, photo=str(photo), generator=IPG)
    assert "CPU" in starting[3] and "starting" in starting[3]
    assert gallery == KEEP and "stopped here by the test" in message
    # without the flag the same machine says IPG needs a GPU, and how to run it anyway
    *_, message = Generate(GenerateConfig()).photo_changed(str(photo))
    assert "needs a CUDA GPU" in message and "`--cpu`" in message
    (*_, message, _, _), = _run(Generate(GenerateConfig()), photo=str(photo), generator=IPG)
    assert "`--cpu`" in message


def _photo_and_empty_weights(tmp_path, monkeypatch, cuda):
    """(a photo, an empty weights folder) on a machine with CUDA or without, off Spaces."""
    import torch

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 128)).save(photo)
    empty = tmp_path / "weights"
    empty.mkdir()
    return photo, empty


@pytest.mark.parametrize("cuda, allow_cpu", [(True, False), (False, True)])
def test_ipg_without_its_weights_says_so_before_generate(tmp_path, monkeypatch, cuda, allow_cpu):
    """Where IPG could run (a GPU, or --cpu) but its weights are missing and cannot be fetched
    (offline, or a --ckpt-dir without them), the tab says so from the start and offers the oracle."""
    photo, empty = _photo_and_empty_weights(tmp_path, monkeypatch, cuda)
    gen = Generate(GenerateConfig(ckpt_dir=str(empty), allow_cpu=allow_cpu))
    note = gen.ipg_note()
    assert "weights are missing" in note and "denoising_unet.pth" in note and "python -m pose2id download" in note
    assert gen.start_state()[1] == SYNTHPED_EXAMPLES[0]  # Generate works at once, with the oracle
    *_, message = gen.photo_changed(str(photo))
    assert "weights" in message and "GPU" not in message
    (_, gallery, _, message, _, _), = _run(gen, photo=str(photo), generator=IPG)
    assert gallery == KEEP and "missing" in message and "denoising_unet" in message
    # online, with no --ckpt-dir, the first Generate downloads them: not a reason to refuse
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert Generate(GenerateConfig(allow_cpu=allow_cpu)).ipg_note() == ""


def test_ipg_with_a_gpu_but_no_weights_lists_them(tmp_path, monkeypatch):
    """Past the cheap check (the weights looked present), loading them fails: the files are listed."""
    photo, empty = _photo_and_empty_weights(tmp_path, monkeypatch, cuda=True)
    gen = Generate(GenerateConfig(ckpt_dir=str(empty)))
    monkeypatch.setattr(gen, "_blocker", lambda: None)  # as if the files had gone after the check
    starting, (_, gallery, _, message, _, _) = _run(gen, photo=str(photo), generator=IPG)
    assert "starting" in starting[3]  # shown while the weights are looked for
    assert gallery == KEEP and "missing" in message and "denoising_unet" in message
    assert "python -m pose2id download" in message


def test_generate_with_bad_inputs_gives_specific_messages(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    huge = png_header_only(tmp_path / "huge.png", 20000, 20000)
    gen = Generate()
    assert "not an image" in _run(gen, photo=str(text))[-1][3]
    assert "megapixels" in _run(gen, photo=str(huge))[-1][3]
    photo = tmp_path / "ok.png"
    Image.new("L", (64, 128)).save(photo)
    message = _run(gen, photo=str(photo), pose_names=[])[-1][3]
    assert _kind(message) == "error" and "no pose selected" in message and message.endswith(".</div>")  # a sentence
    assert "steps must be" in _run(gen, photo=str(photo), steps=0)[-1][3]
    (_, gallery, _, message, _, _), = _run(gen, photo=str(photo), use_editor=True, editor_value="{bad")
    assert gallery == KEEP and message.startswith('<div class="p2-status p2-error"') and "JSON" in message


def test_pair_image_puts_pose_left_of_the_image():
    generated = Image.new("RGB", (64, 128), (10, 200, 10))
    tile = pair_image(editor.standard_pose("1"), generated)
    assert tile.height == 256 and tile.width == 2 * 128 + 4
    assert tile.getpixel((tile.width - 1, 10)) == (10, 200, 10)


@pytest.mark.slow
def test_tiny_pipeline_streams_previews_then_results(tmp_path):
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 128), (120, 60, 30)).save(photo)
    outputs = _run(Generate(GenerateConfig(test_pipeline=True)), photo=str(photo), pose_names=["1"], generator=IPG, steps=2)
    assert len(outputs) == 4  # starting, one preview per step, then the results
    assert outputs[0][:3] == (KEEP,) * 3 and "starting" in outputs[0][3]
    assert outputs[1][1] == [] and "step 1 of 2" in outputs[1][3]
    assert len(outputs[-1][1]) == 1 and "tiny random-weight" in outputs[-1][3]
    assert ", of p.png." in outputs[-1][3]  # the photo the images are of, should another be shown by then


@pytest.mark.slow
def test_out_of_gpu_memory_starts_again_in_low_memory_mode(tmp_path, monkeypatch):
    import torch

    from pose2id.demo import ipg_runner as generate_module
    from pose2id.ipg import IPGPipeline

    monkeypatch.setattr(generate_module, "_PIPELINES", {})  # a pipeline of this test's own
    original, calls = IPGPipeline.__call__, []

    def runs_out_once(self, *args, **kwargs):
        calls.append(self.low_memory)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(IPGPipeline, "__call__", runs_out_once)
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 128), (120, 60, 30)).save(photo)
    config = GenerateConfig(test_pipeline=True)
    outputs = _run(Generate(config), photo=str(photo), pose_names=["1", "2"], generator=IPG, steps=2)
    assert calls == [False, True]
    assert "ran out of memory" in outputs[1][3] and "p2-warning" in outputs[1][3]
    assert len(outputs[-1][1]) == 2 and "low-memory mode" in outputs[-1][3] and "p2-ok" in outputs[-1][3]
    assert generate_module.load_pipeline(config).low_memory


def test_small_gpus_start_in_low_memory_mode(monkeypatch):
    from pose2id.demo.generate import wants_low_memory

    monkeypatch.delenv("POSE2ID_LOW_MEMORY", raising=False)
    assert wants_low_memory(8 * 2**30) and not wants_low_memory(80 * 2**30)
    monkeypatch.setenv("POSE2ID_LOW_MEMORY", "1")
    assert wants_low_memory(80 * 2**30)


# ---------------------------------------------------------------------------- retrieve
@pytest.fixture
def market(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    return market_folder(tmp_path / "market")


def _shown_table(update):
    """(label, rows of displayed strings) of a metrics-table update, as the page shows them."""
    import gradio as gr

    shown = gr.Dataframe(interactive=False).postprocess(update["value"])
    return update["label"], shown.metadata["display_value"]


def test_retrieve_opens_a_folder_with_four_methods(market):
    retrieve = Retrieve(Galleries(data=str(market)))
    key = retrieve.galleries.choices()[1][1]
    key_out, _, queries, query_index, shown, message = retrieve.open_gallery(key)
    assert key_out == key and len(queries["value"]) == 6 and query_index == 0 and shown is False and "Market-1501: 6 queries" in message
    assert queries["selected_index"] == 0  # the query ranked is the one highlighted, not the last one clicked
    # the new key makes the app refresh the view: the rankings first, then the metrics
    (html, table, first), (html_again, table_after, second) = retrieve.refresh(key, 0, None, False, Generations(),
                                                                                2, 2, 2.0, False, 5)
    assert html.count('class="p2-rank-col"') == 4 and "p2-ok" in html and "Query #0" in first
    assert table == html_again == {"__type__": "update"}
    label, rows = _shown_table(table_after)
    assert [r[0] for r in rows] == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    assert all(0 <= float(v) <= 100 for r in rows for v in r[1:5])
    assert "Query #0" in second and "Metrics over all 6 queries" in second


def test_metrics_are_shown_with_the_clis_decimals(market):
    from pose2id.demo.retrieve import metrics_rows, metrics_table
    from pose2id.experiments import format_table

    bench = Galleries(data=str(market)).benchmark(DATA)
    label, rows = _shown_table(metrics_table(metrics_rows(bench, 2, 2, 2.0, False), 2, 2, 2.0, False))
    cli = [[cell.strip() for cell in line.strip("|").split("|")] for line in format_table(bench.table()).splitlines()[2:]]
    assert rows == cli  # "44.00" and "0.1030", not "44" and "0.103"
    label, rows = _shown_table(metrics_table([["Base", 44.0, 68.3, 80.07, 90.0, 0.103]], 3, 1, 0.5, True))
    assert rows == [["Base", "44.00", "68.30", "80.07", "90.00", "0.1030"]]
    assert label == "Metrics over the whole query set (k1 3, k2 1, eta 0.5, k-reciprocal re-ranking)"


def test_the_retrieve_endpoint_gives_the_table_with_numbers(market):
    import gradio as gr

    retrieve = Retrieve(Galleries(data=str(market)))
    html, table, message, rankings = retrieve.update(DATA, 2, 2, 2, 2.0, False, 5)
    data = gr.Dataframe(interactive=False).postprocess(table)
    assert data.headers[0] == "Method" and [row[0] for row in data.data] == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    assert all(isinstance(value, float) for row in data.data for value in row[1:])
    assert "Query #2" in message and "Metrics over all 6 queries" in message


def test_metrics_table_is_written_with_the_rankings_in_one_event_per_page():
    """The metrics shown must be those of the sliders shown. Rankings and metrics in one event of
    one dependency for every slider (trigger mode always_last): a page runs it one at a time, the
    latest values last. Metrics in a chained second event could arrive after a later event's."""
    import app

    demo = app.build_demo(test_pipeline=True)
    blocks = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    writers = [fn for fn in demo.fns.values() if blocks["metrics"] in fn.outputs]
    ui = [fn for fn in writers if fn.api_name != "retrieve"]
    assert len(ui) == 1 and blocks["rankings"] in ui[0].outputs and ui[0].trigger_mode == "always_last"
    triggers = set(ui[0].targets)  # (block id, event name)
    for elem_id in ("k1", "k2", "eta", "rerank", "top-k"):
        assert (blocks[elem_id]._id, "input") in triggers, elem_id


def test_what_changes_the_ranked_query_re_runs_the_rankings_and_metrics_event():
    """A query click, a photo uploaded or removed and the Generate tab's Search each also trigger
    the one rankings-and-metrics event (always_last), so one already running (e.g. the first
    visit's, for query #0) cannot have the last word in the status; the photo's events also set
    the query picker's highlight."""
    import app

    demo = app.build_demo(test_pipeline=True)
    blocks = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    refresh = next(fn for fn in demo.fns.values() if blocks["metrics"] in fn.outputs and fn.api_name != "retrieve")
    triggers = {block_id for block_id, _ in refresh.targets}

    def writers(elem_id, event):
        return [fn for fn in demo.fns.values() if (blocks[elem_id]._id, event) in fn.targets]

    for elem_id, event in (("queries", "select"), ("query-photo", "upload"), ("query-photo", "clear"),
                           ("search-person", "click")):
        (fn,) = writers(elem_id, event)
        assert any(out._id in triggers for out in fn.outputs), (elem_id, event)
        assert elem_id == "queries" or blocks["queries"] in fn.outputs, (elem_id, event)
    # the Feature space view follows the user's own choice of After, kept apart from the one shown
    (choose,) = writers("after", "input")
    view = next(fn for fn in demo.fns.values() if blocks["tsne-plot"] in fn.outputs and fn.api_name != "feature_space")
    assert {out._id for out in choose.outputs} <= {block_id for block_id, _ in view.targets}


def test_ranked_list_follows_the_market_protocol(market):
    galleries = Galleries(data=str(market))
    bench = galleries.benchmark(DATA)
    items = ranked_list(bench, 0, "Base", 2, 2, 2.0, False, 10)
    distances = [d for _, d, _ in items]
    assert distances == sorted(distances)
    q_pid, q_cam = bench.q_pids[0], bench.q_camids[0]
    assert not any(bench.g_pids[g] == q_pid and bench.g_camids[g] == q_cam for g, _, _ in items)
    full = bench.distances("Base")[0]
    g0 = items[0][0]
    assert np.isclose(items[0][1], full[g0], atol=1e-5)


def test_sliders_change_the_ranking_view_quickly(market):
    retrieve = Retrieve(Galleries(data=str(market)))
    key = DATA
    retrieve.open_gallery(key)
    html1, _ = retrieve.rankings(key, 1, 1, 1, 0.0, False, 5)
    html2, message = retrieve.rankings(key, 1, 3, 2, 4.0, True, 5)
    assert html1 != html2 and "re-ranking" in html2 and "ranked in" in message


def test_an_uploaded_query_photo_is_ranked_without_right_or_wrong(market, tmp_path):
    retrieve = Retrieve(Galleries(data=str(market)))
    key = DATA
    photo = next((market / "query").glob("0003_*.jpg"))
    html, message, shown, picker, asked = retrieve.upload_query(key, str(photo), Generations(), 2, 2, 2.0, 5)
    assert "Your photo" in html and _columns(html) == ["Base", "+NFC"] and shown is True and isinstance(asked, int)
    assert picker == {"__type__": "update", "selected_index": -1}  # no query highlighted while the photo is ranked
    assert "p2-ok" not in html and "p2-bad" not in html
    # nothing was generated: the note says how to get +IPG, on the page and in the status line
    assert _kind(message) == "ok" and "Base and +NFC" in message
    for text in (html, message):
        assert "No images of this photo have been generated" in text and "Generate tab" in text
        assert "CUDA GPU" in text and "Search the gallery" in text
    # the photo is itself a query image, so its identity's gallery images come first
    assert _ranked_names(html, "Base")[0].startswith("0003_")
    assert "Re-ranking" not in html + message
    # re-ranking ticked while the photo is shown: the same lists, and both notes say it is not applied
    (reranked, _, reranked_status), *_ = retrieve.refresh(key, 0, str(photo), True, Generations(), 2, 2, 2.0, True, 5)
    assert _ranked_names(reranked, "Base") == _ranked_names(html, "Base")
    for text in (reranked, reranked_status):
        assert "Re-ranking is not applied" in text
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    update, message, shown, picker, asked = retrieve.upload_query(key, str(bad), Generations(), 2, 2, 2.0, 5)
    assert update == shown == picker == asked == {"__type__": "update"} and "not an image" in message


# ---------------------------------------------------------------------------- +IPG of an uploaded photo
def _columns(html):
    """The methods of the ranked lists in ``html``, in order."""
    return re.findall(r'class="p2-rank-col" data-method="([^"]+)"', html)


def _ranked_names(html, method):
    """Gallery image names of one ranked list, best first."""
    column = html.split(f'data-method="{method}"', 1)[1].split('class="p2-rank-col"', 1)[0]
    return re.findall(r'<figure class="p2-hit" title="([^"]+)"', column)


def _tiny_generations(photo, poses=("1", "2")):
    """Generate images of ``photo`` with the tiny random-weight IPG pipeline, as the Generate tab
    does; returns the session's Generations after it."""
    outputs = _run(Generate(GenerateConfig(test_pipeline=True)), photo=str(photo), pose_names=list(poses),
                   generator=IPG, steps=2, generations=Generations())
    assert "p2-ok" in outputs[-1][3]
    return outputs[-1][5]


def test_uploaded_photo_ipg_fusion_is_the_specs_formula():
    """+IPG of a photo is normalize(f + eta * mean_p g_p) (ALGORITHMS.md), worked out by hand on
    3-d features; +NFC+IPG adds the photo's mutual neighbours among the fused query set."""
    from pose2id.data.market1501 import ReIDImage
    from pose2id.demo.retrieve import uploaded_query_features
    from pose2id.experiments import Benchmark

    images = [ReIDImage(f"{k}.jpg", pid, 0, f"{k}.jpg") for k, pid in enumerate([1, 1, 2, 2])]
    qf = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1], [0, 0.2, 1]], np.float32)
    q_gen = np.stack([qf, qf], axis=1)
    bench = Benchmark(query=images, gallery=images, qf=qf, gf=qf.copy(), q_gen=q_gen, g_gen=q_gen.copy())

    photo = np.array([3, 0, 0], np.float32)  # raw features: not normalized before fusion
    generated = np.array([[0, 1, 0], [0, 3, 0]], np.float32)  # mean (0, 2, 0)
    feats = uploaded_query_features(bench, photo, generated, k1=1, k2=1, eta=0.5)
    assert list(feats) == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    np.testing.assert_allclose(feats["Base"], [1, 0, 0], atol=1e-6)
    # (3, 0, 0) + 0.5 * (0, 2, 0) = (3, 1, 0), normalized
    np.testing.assert_allclose(feats["+IPG"], np.array([3, 1, 0]) / np.sqrt(10), atol=1e-6)
    # the fused query set is qf itself (its generated features equal it, eta 0.5: (1 + 0.5) f, normalized);
    # with k1 = k2 = 1 the photo's nearest row is query 1 (0.9, 0.1, 0), whose nearest is query 0,
    # not the photo: no mutual neighbour, the photo keeps its fused feature
    np.testing.assert_allclose(feats["+NFC+IPG"], feats["+IPG"], atol=1e-6)
    # with k2 = 2 query 1's two nearest are query 0 and the photo: mutual, so they are summed
    feats = uploaded_query_features(bench, photo, generated, k1=1, k2=2, eta=0.5)
    q1 = qf[1] / np.linalg.norm(qf[1])
    expected = feats["+IPG"] + q1
    np.testing.assert_allclose(feats["+NFC+IPG"], expected / np.linalg.norm(expected), atol=1e-6)
    # without generated images only Base and +NFC exist
    assert list(uploaded_query_features(bench, photo, None, 1, 1, 0.5)) == ["Base", "+NFC"]


@pytest.mark.slow
def test_an_uploaded_photo_gets_ipg_from_the_generate_tabs_images(market, tmp_path):
    from pose2id.demo.retrieve import uploaded_query_features
    from pose2id.features import get_extractor

    photo = next((market / "query").glob("0003_*.jpg"))
    generations = _tiny_generations(photo)
    assert generations.finished is not None and len(generations.finished.images) == 2
    # the same picture under another name and format is recognized by its content
    again = tmp_path / "my_upload.png"
    open_photo(photo).save(again)
    retrieve = Retrieve(Galleries(data=str(market)))
    key = DATA
    html, message, shown, _, _ = retrieve.upload_query(key, str(again), generations, 2, 2, 2.0, 30)
    assert shown is True and _columns(html) == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    assert "+IPG from 2 generated images" in message and "tiny random-weight" in message  # how many, and which model
    assert "pose 1, pose 2" in message and "eta 2" in message
    # the tiny pipeline's images are noise, so fusing them moves the feature: another order than Base
    assert _ranked_names(html, "+IPG") != _ranked_names(html, "Base")
    # each list is the photo's feature against the gallery features of the benchmark's own column
    bench = retrieve.galleries.benchmark(key)
    extractor = get_extractor("handcrafted")
    feats = uploaded_query_features(bench, extractor([open_photo(photo)])[0],
                                    extractor(list(generations.finished.images)), 2, 2, 2.0)
    for method, q in feats.items():
        g = bench.features(method, 2, 2, 2.0)[1]
        order = np.argsort(np.sum((g - q) ** 2, axis=1), kind="stable")
        assert _ranked_names(html, method) == [bench.gallery[i].name for i in order[:30]]
    # eta = 0 leaves the feature as it is: +IPG ranks as Base does
    html, _, _, _, _ = retrieve.upload_query(key, str(again), generations, 2, 2, 0.0, 30)
    assert _ranked_names(html, "+IPG") == _ranked_names(html, "Base")


def test_uploaded_photo_says_why_there_is_no_ipg(market, tmp_path):
    from pose2id.demo.generate import GeneratedImages
    from pose2id.demo.inputs import photo_digest

    retrieve = Retrieve(Galleries(data=str(market)))
    key = DATA
    photo = next((market / "query").glob("0003_*.jpg"))
    digest = photo_digest(open_photo(photo))
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (128, 64, 3), dtype=np.uint8))
    other = GeneratedImages("0" * 64, (noise,), ("pose 1",), "IPG")
    cases = {
        "still generating": Generations(running=digest),
        "No +IPG: the Generate tab could not generate images of this photo (an internal error, RuntimeError).":
            Generations(failed=digest, error="Generation failed with an internal error (RuntimeError: boom).",
                        reason="an internal error, RuntimeError"),
        "images are of a different photo": Generations(finished=other),
        "made no images": Generations(finished=GeneratedImages(digest, (), (), "IPG")),
        "No images of this photo have been generated": "not a Generations at all",
    }
    for expected, generations in cases.items():
        html, message, shown, _, _ = retrieve.upload_query(key, str(photo), generations, 2, 2, 2.0, 5)
        assert shown is True and _columns(html) == ["Base", "+NFC"], expected
        assert expected in message and expected in html
    # the Generate tab's refusal is summed up in one short sentence, not quoted with its advice and a generic hint
    oracle_refusal = ("The SynthPed oracle only re-renders SynthPed identities: pick a SynthPed example (labelled "
                      "synthetic) or choose one under 'SynthPed identity'; your photo is kept. A real photo needs IPG.")
    refused = Generations(failed=digest, error=oracle_refusal,
                          reason="the SynthPed oracle only draws SynthPed identities")
    _, message, *_ = retrieve.upload_query(key, str(photo), refused, 2, 2, 2.0, 5)
    assert "No +IPG" in message and "SynthPed oracle" in message and "pick a SynthPed example" not in message
    assert "kept" not in message and "needs IPG" not in message and "official weights" not in message
    # a new generation of the same photo that fails keeps the images of the one that finished
    kept = Generations(finished=GeneratedImages(digest, (noise,), ("pose 1",), "IPG"), failed=digest, error="boom")
    html, message, _, _, _ = retrieve.upload_query(key, str(photo), kept, 2, 2, 2.0, 5)
    assert _columns(html) == ["Base", "+NFC", "+IPG", "+NFC+IPG"] and "+IPG from 1 generated image " in message
    # the photo removed
    update, message, shown, _, _ = retrieve.upload_query(key, None, kept, 2, 2, 2.0, 5)
    assert update == shown == {"__type__": "update"} and "Upload a photo" in message


def test_uploaded_photo_with_a_gallery_without_generated_images(tmp_path, monkeypatch):
    from pose2id.demo.generate import GeneratedImages
    from pose2id.demo.inputs import photo_digest

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    market = market_folder(tmp_path / "plain", with_gen=False)
    photo = next((market / "query").glob("0002_*.jpg"))
    generated = Generations(finished=GeneratedImages(photo_digest(open_photo(photo)), (open_photo(photo),) * 2,
                                                     ("pose 1", "pose 2"), "IPG"))
    html, message, *_ = Retrieve(Galleries(data=str(market))).upload_query(DATA, str(photo), generated,
                                                                          2, 2, 2.0, 5)
    assert _columns(html) == ["Base", "+NFC"]
    assert "2 generated images of your photo are ready" in message and "gallery too" in message


def test_generate_records_its_images_for_the_retrieve_tab(tmp_path, monkeypatch):
    from pose2id.demo import ipg_runner as generate_module
    from pose2id.demo.inputs import photo_digest

    gen = Generate()
    photo, pid, _ = gen.pick_identity(45)
    digest = photo_digest(open_photo(photo))
    outputs = _run(gen, photo=photo, synth_pid=pid, generations=Generations())
    done = outputs[-1][5]
    assert done.finished.photo_digest == digest and len(done.finished.images) == 2
    assert done.finished.poses == ("pose 1", "pose 5") and "SynthPed oracle" in done.finished.generator
    assert done.running is None and done.failed is None

    # bad input: the record is kept as it was
    assert _run(gen, photo=photo, synth_pid=pid, pose_names=[], generations=done)[-1][5] is done
    # a failure inside the model: the photo is marked failed, the finished images stay
    def broken(*args, **kwargs):
        raise RuntimeError("boom")
        yield

    monkeypatch.setattr(generate_module, "run_ipg", broken)
    other = tmp_path / "other.png"
    Image.new("RGB", (64, 128), (200, 10, 10)).save(other)
    out = _run(Generate(GenerateConfig(test_pipeline=True)), photo=str(other), generator=IPG, generations=done)[-1]
    failed = out[5]
    assert "internal error" in out[3] and "RuntimeError: boom" in out[3]  # a bug: told as one
    assert failed.finished is done.finished and failed.failed == photo_digest(open_photo(other))
    assert "boom" in failed.error and "RuntimeError" in failed.reason and failed.running is None


@pytest.mark.slow
def test_generate_marks_the_photo_as_running_while_denoising(tmp_path, market):
    from pose2id.demo.inputs import photo_digest

    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 128), (120, 60, 30)).save(photo)
    digest = photo_digest(open_photo(photo))
    run = Generate(GenerateConfig(test_pipeline=True)).generate(
        str(photo), ["1"], False, "", IPG, None, 2, 3.5, 7, False, 2.0, Generations())
    # the very first update, before the pipeline is loaded or a step is taken, already marks the photo:
    # a Search pressed right after Generate says the images are still being generated
    first = next(run)
    assert first[5].running == digest and "starting" in first[3] and first[:3] == (KEEP,) * 3
    retrieve = Retrieve(Galleries(data=str(market)))
    _, _, html, message, shown, _, _, _ = retrieve.search_person(DATA, str(photo), first[5], 2, 2, 2.0, 5)
    assert shown is True and "still generating" in html and "still generating" in message and "No images of this photo have been generated" not in message
    outputs = [first, *run]
    assert [out[5].running for out in outputs] == [digest, digest, digest, None]
    assert outputs[-1][5].finished.photo_digest == digest


def test_search_the_gallery_with_this_person(market, tmp_path):
    from pose2id.demo.generate import GeneratedImages
    from pose2id.demo.inputs import photo_digest

    retrieve = Retrieve(Galleries(data=str(market)))
    key = DATA
    keep = {"__type__": "update"}
    *retrieve_tab, message, asked = retrieve.search_person(key, None, Generations(), 2, 2, 2.0, 5)
    assert retrieve_tab == [keep] * 6 and "reference photo" in message and asked == keep  # no re-ranking asked
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    *retrieve_tab, message, asked = retrieve.search_person(key, str(bad), Generations(), 2, 2, 2.0, 5)
    # the Generate tab's status names its own "Reference photo", not the Retrieve tab's query photo
    assert retrieve_tab == [keep] * 6 and "Reference photo: bad.jpg is not an image" in message and asked == keep
    assert "Query photo" not in message

    photo = str(next((market / "query").glob("0004_*.jpg")))
    noise = Image.fromarray(np.random.default_rng(2).integers(0, 255, (128, 64, 3), dtype=np.uint8))
    generations = Generations(finished=GeneratedImages(photo_digest(open_photo(photo)), (noise,) * 3,
                                                       ("pose 1", "pose 2", "pose 3"), "IPG"))
    query_photo, tabs, html, message, shown, picker, generate_status, asked = retrieve.search_person(
        key, photo, generations, 2, 2, 2.0, 5)
    assert query_photo == photo and tabs.selected == "retrieve" and shown is True and generate_status == keep
    assert isinstance(asked, int)  # a new token: the page re-ranks the photo as its sliders say
    assert picker == {"__type__": "update", "selected_index": -1}  # "Your photo" is ranked: no query highlighted
    assert _columns(html) == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    assert "+IPG from 3 generated images of your photo" in message


def test_sliders_re_rank_the_uploaded_photo_while_it_is_shown(market):
    from pose2id.demo.generate import GeneratedImages
    from pose2id.demo.inputs import photo_digest

    retrieve = Retrieve(Galleries(data=str(market)))
    key = DATA
    photo = str(next((market / "query").glob("0004_*.jpg")))
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 255, (128, 64, 3), dtype=np.uint8))
    generations = Generations(finished=GeneratedImages(photo_digest(open_photo(photo)), (noise,), ("pose 1",), "IPG"))
    (html0, _, message), (_, table, final) = retrieve.refresh(key, 1, photo, True, generations, 3, 2, 0.0, False, 30)
    (html5, _, _), _ = retrieve.refresh(key, 1, photo, True, generations, 2, 2, 5.0, False, 30)
    assert "Your photo" in html0 and "eta 0" in message
    assert _ranked_names(html0, "+IPG") == _ranked_names(html0, "Base") != _ranked_names(html5, "+IPG")
    # the metrics follow the sliders too, and the status still speaks of the photo
    assert "(k1 3, k2 2, eta 0," in table["label"]
    assert final.startswith(message[:-len("</div>")]) and "Metrics over all 6 queries" in final
    # a gallery query again once the photo is not shown (or was removed)
    for photo_now, shown in ((photo, False), (None, True)):
        (html, _, message), _ = retrieve.refresh(key, 1, photo_now, shown, generations, 2, 2, 2.0, False, 5)
        assert "Your photo" not in html and "Query #1" in message


def test_a_gallery_warmed_up_at_launch_is_prepared_once_and_a_visitor_sees_its_progress(monkeypatch):
    """The app prepares SynthPed in the background at launch (its originals, then its generated
    images); a visitor who opens it meanwhile waits for that work (not a second build), is told how
    far it has got, and gets the originals' benchmark; the whole one follows, each stage made once."""
    galleries = Galleries()
    started, release, calls = threading.Event(), threading.Event(), []

    whole = threading.Event()  # the generated images are made once the visitor has the originals

    def prepare(key, progress, generated=True):
        calls.append((key, generated))
        if generated:
            assert whole.wait(WAIT)
            return SimpleNamespace(stage="whole", ipg_note="")
        progress("drawing images", 3, 10)
        started.set()
        assert release.wait(WAIT)
        progress("features", 10, 10)
        return SimpleNamespace(stage="originals", ipg_note="")

    monkeypatch.setattr(galleries, "_prepare", prepare)
    thread = galleries.warm_up(SYNTHPED)
    assert started.wait(WAIT) and not galleries.is_ready(SYNTHPED)
    seen, told = [], threading.Event()

    def visitor_progress(*args):
        seen.append(args)
        told.set()

    visitor = threading.Thread(target=lambda: seen.append(
        galleries.benchmark(SYNTHPED, progress=visitor_progress, partial=True)))
    visitor.start()
    # the visitor waits, and is passed the warm-up's progress meanwhile
    assert told.wait(WAIT) and ("drawing images", 3, 10) in seen and visitor.is_alive()
    release.set()
    visitor.join(WAIT)
    thread.join(WAIT)
    assert not visitor.is_alive() and not thread.is_alive()
    assert seen[-1].stage == "originals" and not galleries.is_complete(SYNTHPED)
    whole.set()
    assert galleries.benchmark(SYNTHPED).stage == "whole" and galleries.is_complete(SYNTHPED)
    assert calls == [(SYNTHPED, False), (SYNTHPED, True)]  # each stage made once


def test_a_failed_warm_up_is_reported_when_a_visitor_opens_the_gallery(monkeypatch, caplog):
    galleries = Galleries()
    monkeypatch.setattr(galleries, "_prepare",
                        lambda key, progress, generated=True: (_ for _ in ()).throw(OSError("disk full")))
    galleries.warm_up(SYNTHPED).join(WAIT)
    assert "disk full" in caplog.text
    *_, message = Retrieve(galleries).open_gallery(SYNTHPED, progress=lambda *a, **k: None)
    assert "Cannot open" in message and "disk full" in message


def test_broken_zip_keeps_the_current_gallery(tmp_path, market):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    *view, message = Retrieve(Galleries()).upload_zip(str(bad), "synthped")
    assert view == [{"__type__": "update"}] * 5  # the view stays, an uploaded photo's included
    assert _kind(message) == "error" and "broken.zip" in message and message.count("not a readable zip") == 1
    assert "current gallery stays" in message and not re.search(r"[^.]\.\.[^.]", message)


def test_a_refused_zip_leaves_the_upload_box_and_a_used_one_stays(tmp_path, market):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    retrieve = Retrieve(Galleries())
    *view, message, box = retrieve.upload_zip_in_box(str(bad), "synthped")
    assert box is None and "Cannot use broken.zip" in message
    *view, message, box = retrieve.upload_zip_in_box(str(_zip_of(market, tmp_path / "my_cams.zip")), "synthped")
    assert view[0].startswith("zip:") and box == {"__type__": "update"}


def test_zip_with_parent_paths_is_refused(tmp_path, market):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../escape/0001_c1s1_000000_00.jpg", b"x")
    message = Retrieve(Galleries()).upload_zip(str(evil), "synthped")[-1]
    assert "Cannot use evil.zip: archive entry &#x27;../../escape/" in message and "points outside" in message
    assert not (tmp_path / "escape").exists()


def _zip_of(folder, path):
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder.parent))
    return path


def test_uploaded_zip_becomes_the_selected_gallery_named_after_its_file(tmp_path, market):
    retrieve = Retrieve(Galleries())
    key, selector, queries, query_index, shown, message = retrieve.upload_zip(str(_zip_of(market, tmp_path / "my_cams.zip")),
                                                                             "synthped")
    assert key.startswith("zip:") and len(queries["value"]) == 6 and query_index == 0 and shown is False
    assert queries["selected_index"] == 0  # query #0 is ranked, so #0 is highlighted, whatever was clicked before
    assert selector["value"] == key and selector["choices"][-1] == ("my_cams.zip (Market-1501 style)", key)
    assert selector["choices"][0] == ("SynthPed (synthetic, built in)", "synthped")
    assert "my_cams.zip (Market-1501 style): 6 queries" in message
    assert str(tmp_path) not in key + message  # the selector's value holds no server path either
    # only the session that uploaded it lists it
    assert retrieve.galleries.choices() == [("SynthPed (synthetic, built in)", "synthped")]
    # the same archive again: prepared once, the view stays
    again = retrieve.upload_zip(str(_zip_of(market, tmp_path / "my_cams.zip")), key)
    assert again[0] == again[2] == {"__type__": "update"} and again[1]["value"] == key


def test_a_zip_uploaded_while_synthped_is_built_stays_the_gallery_shown(tmp_path, market, monkeypatch):
    """The page opens SynthPed (slow: built on the first visit); the user uploads a zip meanwhile,
    which opens first. When SynthPed is ready its result must not replace the zip's."""
    retrieve = Retrieve(Galleries())
    page, other_page = SimpleNamespace(session_hash="page"), SimpleNamespace(session_hash="other")
    built, release = threading.Event(), threading.Event()
    prepare = retrieve.galleries._prepare

    def slow_synthped(key, progress, generated=True):
        if key == SYNTHPED:
            built.set()
            assert release.wait(WAIT)
            return SimpleNamespace(ipg_note="")  # a SynthPed benchmark
        return prepare(key, progress, generated)

    monkeypatch.setattr(retrieve.galleries, "_prepare", slow_synthped)
    monkeypatch.setattr(retrieve, "label", lambda bench, key=None: "label.")
    monkeypatch.setattr("pose2id.demo.retrieve.query_strip", lambda bench: ["queries of", bench])
    results = {}
    load = threading.Thread(target=lambda: results.setdefault(
        "load", retrieve.open_gallery(SYNTHPED, None, lambda *a, **k: None, request=page)))
    load.start()
    assert built.wait(WAIT)
    zipped = retrieve.upload_zip(str(_zip_of(market, tmp_path / "my_cams.zip")), None, lambda *a, **k: None,
                                 request=page)
    assert zipped[0].startswith("zip:") and zipped[1]["value"] == zipped[0]
    # another page opening SynthPed at the same time is not affected by this page's zip
    other = threading.Thread(target=lambda: results.setdefault(
        "other", retrieve.open_gallery(SYNTHPED, None, lambda *a, **k: None, request=other_page)))
    other.start()
    release.set()
    load.join(WAIT)
    other.join(WAIT)
    assert not load.is_alive() and not other.is_alive()
    assert results["load"] == ({"__type__": "update"},) * 6  # nothing changed: the zip stays shown
    assert results["other"][0] == SYNTHPED


def test_removing_the_uploaded_zip_goes_back_to_synthped(tmp_path, market, monkeypatch):
    retrieve = Retrieve(Galleries())
    key = retrieve.upload_zip(str(_zip_of(market, tmp_path / "my_cams.zip")), "synthped")[0]
    opened = []
    monkeypatch.setattr(retrieve, "_open_gallery", lambda key, current, progress: opened.append(key) or
                        ("synthped", {}, ["queries"], 0, False, "opened"))
    out = retrieve.close_zip(key)
    assert opened == ["synthped"] and out[0] == "synthped" and out[2] == ["queries"]
    assert out[1]["choices"] == [("SynthPed (synthetic, built in)", "synthped")] and out[1]["value"] == "synthped"
    # removed after going back to SynthPed: only the choice goes
    out = retrieve.close_zip("synthped")
    assert out[1] == {"__type__": "update", "choices": [("SynthPed (synthetic, built in)", "synthped")]}
    assert out[0] == out[-1] == {"__type__": "update"} and opened == ["synthped"]


def _zip_files(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_zip_errors_say_what_is_wrong_without_server_paths(tmp_path, market):
    from pose2id.features import cache_root

    names = ["0001_c1s1_000001_00.jpg", "0001_c2s1_000001_00.jpg", "0002_c1s1_000001_00.jpg", "0002_c2s1_000001_00.jpg"]
    fake = _zip_files(tmp_path / "market_fakeimgs.zip", {name: b"0123456789" for name in names})
    message = Retrieve(Galleries()).upload_zip(str(fake), "synthped")[-1]
    assert _kind(message) == "error" and "market_fakeimgs.zip" in message and "4 file(s)" in message
    assert all(f"{name} (not image data)" in message for name in names) and "current gallery stays" in message
    holiday = _zip_files(tmp_path / "holiday.zip", {"photos/holiday.jpg": (market / "query").iterdir().__next__().read_bytes()})
    message = Retrieve(Galleries()).upload_zip(str(holiday), "synthped")[-1]
    assert _kind(message) == "error" and "1 image file(s)" in message and "holiday.jpg" in message
    assert "Market-1501 style name" in message
    empty = _zip_files(tmp_path / "empty.zip", {})
    text = Retrieve(Galleries()).upload_zip(str(empty), "synthped")[-1]
    assert _kind(text) == "error" and "empty.zip" in text and "no image files" in text and "Market-1501 style" in text
    for text in (message, text, Retrieve(Galleries()).upload_zip(str(fake), "synthped")[-1]):
        assert str(cache_root()) not in text and str(tmp_path) not in text
        assert "root:" not in text and "zip_path" not in text
        assert not re.search(r"[^.]\.\.[^.]", text)  # no double period (an ellipsis such as PPPP_cC...jpg is fine)


def test_unreadable_images_of_a_zip_are_listed(tmp_path, market):
    (market / "bounding_box_test" / "0001_c3s1_000009_00.jpg").write_bytes(b"not a jpeg")
    retrieve = Retrieve(Galleries())
    key, *_, message = retrieve.upload_zip(str(_zip_of(market, tmp_path / "mine.zip")), "synthped")
    assert "1 unreadable image(s)" in message and "0001_c3s1_000009_00.jpg (not image data)" in message
    # and it stays in the status line while the gallery is shown
    *_, (_, _, refreshed) = retrieve.refresh(key, 0, None, False, Generations(), 2, 2, 2.0, False, 5)
    assert "0001_c3s1_000009_00.jpg (not image data)" in refreshed


def test_empty_gallery_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    *view, message = Retrieve(Galleries(data=str(empty))).open_gallery(DATA, "synthped")
    assert view[0] == view[2] == {"__type__": "update"} and view[1]["value"] == "synthped"  # SynthPed stays
    assert "Cannot open Folder: empty: there are no image files" in message and "Market-1501 style" in message
    assert str(tmp_path) not in message
    assert "The current gallery stays." in message


def test_a_gallery_being_built_says_what_is_happening(market):
    from pose2id.demo.retrieve import BUILDING_SYNTHPED, SYNTHPED

    calls = []

    def progress(fraction, desc=None):
        calls.append((fraction, desc))

    retrieve = Retrieve(Galleries(data=str(market)))
    report = retrieve._progress(SYNTHPED, "SynthPed", progress)
    report("drawing images", 300, 1181)
    report("features", 9009, 9009)  # read from the cache: nothing to say
    assert calls == [(300 / 1181, f"{BUILDING_SYNTHPED} Drawing images: 300 of 1,181")]
    assert "SynthPed" in BUILDING_SYNTHPED and "once" in BUILDING_SYNTHPED  # what is built, and only the first time
    calls.clear()
    retrieve.open_gallery(DATA, None, progress)
    assert calls[0] == (0, "Opening Folder: market…")
    calls.clear()
    retrieve.open_gallery(DATA, None, progress)  # prepared: no progress
    assert calls == []


def test_no_gallery_open_yet(market):
    retrieve = Retrieve(Galleries(data=str(market)))
    assert list(retrieve.refresh(None, 0, None, False, Generations(), 2, 2, 2.0, False, 5)) == [
        ({"__type__": "update"},) * 3]
    assert "no gallery is open yet" in retrieve.rankings(None, 0, 2, 2, 2.0, False, 5)[1]


# ---------------------------------------------------------------------------- feature space
def test_feature_space_plots_before_and_after(market):
    from pose2id.demo.feature_space import FeatureSpace

    bars, tsne, message = FeatureSpace(Galleries(data=str(market))).plots(DATA, "+NFC+IPG", 2, 2, 2.0, 30)
    assert [trace.name.split(" ")[0] for trace in bars.data] == ["Base", "+NFC+IPG"]
    assert len(bars.data[0].x) == 6
    assert "global ID²" in message and "(+NFC+IPG; k1 2, k2 2, eta 2)" in message  # the parameters in use
    # eta 0: +IPG moves nothing, and the status says why rather than looking broken
    _, _, message = FeatureSpace(Galleries(data=str(market))).plots(DATA, "+IPG", 2, 2, 0, 30)
    before, after = re.search(r"global ID² ([\d.]+) \(Base\) → ([\d.]+)", message).groups()
    assert before == after and "(+IPG; eta 0)" in message and "no weight" in message
    # one map whose points move from Base to +NFC+IPG, one thumbnail per point for the hover view
    assert tsne.count("<svg") == 1 and "+NFC+IPG" in tsne and 'type="range"' in tsne
    points = tsne.count("<circle")
    assert points == tsne.count('<img data-i=') == tsne.count("data-x1=") and 30 <= points <= 36  # whole identities


def test_feature_space_follows_its_controls_with_the_methods_the_gallery_has(tmp_path, monkeypatch, market):
    from pose2id.demo.feature_space import FeatureSpace

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    plain = market_folder(tmp_path / "plain", with_gen=False)
    space = FeatureSpace(Galleries(data=str(plain)))
    # the default "+NFC+IPG" needs generated images: the best method there is is shown instead
    after, bars, tsne, message = space.view(DATA, "+NFC+IPG", 2, 2, 2.0, 30)
    assert after == {"__type__": "update", "choices": ["+NFC"], "value": "+NFC"}
    assert [trace.name.split(" ")[0] for trace in bars.data] == ["Base", "+NFC"] and "+NFC placed into it" in tsne
    assert _kind(message) == "warning" and "+NFC instead of +NFC+IPG" in message and "no generated images" in message
    # +NFC chosen: a plain note that +IPG is not offered
    *_, message = space.view(DATA, "+NFC", 2, 2, 2.0, 30)
    assert _kind(message) == "ok" and "not offered" in message
    # a gallery with generated images offers all three and keeps the choice
    after, *_, message = FeatureSpace(Galleries(data=str(market))).view(DATA, "+IPG", 2, 2, 2.0, 30)
    assert after == {"__type__": "update", "choices": ["+NFC", "+IPG", "+NFC+IPG"], "value": "+IPG"}
    assert "not offered" not in message


def test_feature_space_waits_for_the_first_gallery_and_draws_only_when_open(market):
    """Before the page's gallery has opened the tab says the plots will come; a gallery that opens
    then draws the tab if it is open, and leaves it alone (no t-SNE to compute) if not."""
    from pose2id.demo.feature_space import FeatureSpace

    space = FeatureSpace(Galleries(data=str(market)))
    *unchanged, message = space.view(None, "+NFC", 2, 2, 2.0, 30)
    assert all(update == {"__type__": "update"} for update in unchanged)
    assert _kind(message) == "info" and "still opening" in message
    galleries = space.galleries
    space.galleries = None  # another tab shown: the gallery is not even looked at
    closed = space.view_if_open(False, DATA, "+NFC", 2, 2, 2.0, 30)
    assert closed == ({"__type__": "update"},) * 4
    space.galleries = galleries
    after, bars, tsne, message = space.view_if_open(True, DATA, "+NFC", 2, 2, 2.0, 30)
    assert after["value"] == "+NFC" and "<svg" in tsne and "global ID²" in message


def test_feature_space_shows_the_users_after_again_when_the_gallery_has_it(tmp_path, monkeypatch, market):
    """+IPG chosen, a gallery without generated images (shows +NFC), then one with them: +IPG again."""
    from pose2id.demo.feature_space import FeatureSpace

    plain = market_folder(tmp_path / "plain", with_gen=False)
    space = FeatureSpace(Galleries(data=str(plain)))
    after, *_, message = space.view(DATA, "+IPG", 2, 2, 2.0, 30, "+IPG")
    assert after["value"] == "+NFC" and "Showing +NFC instead of +IPG" in message
    # back to a gallery with +IPG: the dropdown shows +NFC, the user's own choice was +IPG
    after, bars, *_ = FeatureSpace(Galleries(data=str(market))).view(DATA, "+NFC", 2, 2, 2.0, 30, "+IPG")
    assert after["value"] == "+IPG" and bars.data[1].name.startswith("+IPG ")


def test_feature_space_says_how_many_points_whole_identities_give(market):
    from pose2id.demo.feature_space import FeatureSpace

    _, tsne, message = FeatureSpace(Galleries(data=str(market))).plots(DATA, "+NFC", 2, 2, 2.0, 20)
    points = tsne.count("<circle")  # 6 images per identity: 4 identities pass 20
    assert points == 24 and "24 points" in message and "4 whole identities" in message and "about 20" in message


def test_feature_space_refuses_a_bad_sample_size(market):
    import gradio as gr

    from pose2id.demo.feature_space import FeatureSpace

    with pytest.raises(gr.Error, match="sample size"):  # an API client's mistake, raised as /retrieve raises it
        FeatureSpace(Galleries(data=str(market))).plots(DATA, "+NFC", 2, 2, 2.0, 5)


# ---------------------------------------------------------------------------- app
def test_about_lists_exactly_what_download_fetches(monkeypatch):
    import huggingface_hub

    from pose2id.demo.about import ABOUT
    from pose2id.ipg import weights

    fetched = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: fetched.append(f"{repo}/{name}") or name)
    weights.download()
    listed = re.findall(r"^  - `([^`]+)` \(", ABOUT, flags=re.M)
    assert listed == fetched and len(fetched) == 7
    assert weights.SD15_REPO not in ABOUT and "stable-diffusion-v1-5/" not in ABOUT
    assert "never downloaded" in ABOUT and "Hugging Face cache" in ABOUT and "about 7.9 GB" in ABOUT


def test_app_exposes_the_named_endpoints(monkeypatch):
    import app

    demo = app.build_demo(test_pipeline=True)
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"generate", "retrieve", "feature_space"} <= names
    generate = next(fn for fn in demo.fns.values() if fn.api_name == "generate")
    assert generate.concurrency_limit == 1
    # rankings and plots, from the page or the API, take turns in one pool sized by the queue's default
    by_name = {fn.api_name: fn for fn in demo.fns.values()}
    pools = {by_name[name].concurrency_id for name in ("retrieve", "feature_space")}
    pools |= {fn.concurrency_id for fn in demo.fns.values() if fn.name in ("refresh", "view", "view_if_open")}
    assert len(pools) == 1 and generate.concurrency_id not in pools


def test_app_flags_and_environment(monkeypatch, tmp_path, capsys):
    import app

    monkeypatch.setenv("POSE2ID_DATA", str(tmp_path))
    monkeypatch.setenv("POSE2ID_TEST_PIPELINE", "1")
    args = app.parse_args([])
    assert args.data == str(tmp_path) and args.test_pipeline and not args.share
    assert app.parse_args(["--port", "9000", "--share"]).port == 9000
    # a dataset that is not there stops the app at once, naming the option and the path
    for spec in (str(tmp_path / "market"), f"msmt17:{tmp_path / 'MSMT17_V1'}", str(tmp_path / "cams.zip")):
        with pytest.raises(SystemExit):
            app.parse_args(["--data", spec])
        assert "--data" in (err := capsys.readouterr().err) and "does not exist" in err


@pytest.mark.parametrize("name, flag", [("POSE2ID_CPU", "cpu"), ("POSE2ID_TEST_PIPELINE", "test_pipeline")])
def test_on_off_variables_take_true_and_refuse_other_words(monkeypatch, capsys, name, flag):
    import app

    for text, expected in (("1", True), ("true", True), ("Yes", True), ("0", False), ("false", False), ("", False)):
        monkeypatch.setenv(name, text)
        assert getattr(app.parse_args([]), flag) is expected
    monkeypatch.setenv(name, "sometimes")
    with pytest.raises(SystemExit):
        app.parse_args([])
    assert name in capsys.readouterr().err


def test_the_editor_never_reads_a_server_file_named_by_a_visitor(tmp_path):
    # an editor value (/generate's editor_value, /mirror) or an imported file holding a path
    # must not make the server open that path
    on_server = tmp_path / "server_pose.json"
    on_server.write_text(editor.to_value(editor.standard_pose("3")))
    with pytest.raises(PoseError):
        editor.from_value(str(on_server))
    value, message = editor.mirror(str(on_server))
    assert value == {"__type__": "update"} and _kind(message) == "error"
    with pytest.raises(PoseError):
        selected_poses([], True, str(on_server))
    upload = tmp_path / "upload.json"
    upload.write_text(str(on_server))
    value, message = editor.import_json(str(upload))
    assert value == {"__type__": "update"} and _kind(message) == "error"


def test_pose_from_a_pedestrian_photo_fills_the_editor():
    pytest.importorskip("mediapipe")
    from pathlib import Path

    photo = Path(__file__).resolve().parents[1] / "assets" / "examples" / "rgb1.jpg"
    value, message = editor.from_photo(str(photo))
    pose = editor.from_value(value)
    assert _kind(message) == "ok" and f"({int(pose.visible.sum())} joints found)" in message
    assert (pose.width, pose.height) == (64, 128)
    nose, l_ankle = pose.keypoints[0], pose.keypoints[13]
    assert pose.visible[0] and pose.visible[13] and nose[1] < l_ankle[1]


def test_pose_from_a_non_image_keeps_the_editor(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_text("nope")
    value, message = editor.from_photo(str(path))
    assert value == {"__type__": "update"} and "not an image" in message


# ---------------------------------------------------------------------------- hosting: launch and uploads
def test_gradio_server_variables_are_honoured_and_flags_override_them(monkeypatch, capsys):
    import app

    for name in ("GRADIO_SERVER_PORT", "PORT", "GRADIO_SERVER_NAME", "SPACE_ID", "SPACES_ZERO_GPU"):
        monkeypatch.delenv(name, raising=False)
    assert (app.parse_args([]).port, app.parse_args([]).host) == (7860, "127.0.0.1")
    monkeypatch.setenv("PORT", "8000")
    assert app.parse_args([]).port == 8000
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9001")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    args = app.parse_args([])
    assert (args.port, args.host) == (9001, "0.0.0.0")
    args = app.parse_args(["--port", "9002", "--host", "127.0.0.2"])
    assert (args.port, args.host) == (9002, "127.0.0.2")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "http")
    with pytest.raises(SystemExit):
        app.parse_args([])
    assert "GRADIO_SERVER_PORT" in capsys.readouterr().err


def test_a_bad_gradio_server_port_is_refused_by_name_before_gradio_is_imported(monkeypatch):
    # Gradio itself reads GRADIO_SERVER_PORT with int() on import: a subprocess shows the real start-up
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": "http"}
    run = subprocess.run([sys.executable, str(root / "app.py")], env=env, capture_output=True, text=True,
                         timeout=300, cwd=root)
    assert run.returncode == 2 and "GRADIO_SERVER_PORT" in run.stderr and "Traceback" not in run.stderr
    code = "import app; print(app.parse_args(['--port', '8123']).port)"  # the flag wins over the variable
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert run.returncode == 0 and run.stdout.split()[-1] == "8123"


def test_concurrency_is_one_call_per_core_or_gradios_variable(monkeypatch, capsys):
    import app

    monkeypatch.delenv("GRADIO_DEFAULT_CONCURRENCY_LIMIT", raising=False)
    monkeypatch.setattr(app.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert app.parse_args([]).concurrency_limit == 3
    monkeypatch.setenv("GRADIO_DEFAULT_CONCURRENCY_LIMIT", "5")
    assert app.parse_args([]).concurrency_limit == 5
    monkeypatch.setenv("GRADIO_DEFAULT_CONCURRENCY_LIMIT", "None")
    assert app.parse_args([]).concurrency_limit is None
    for bad in ("0", "many"):
        monkeypatch.setenv("GRADIO_DEFAULT_CONCURRENCY_LIMIT", bad)
        with pytest.raises(SystemExit):
            app.parse_args([])
        assert "GRADIO_DEFAULT_CONCURRENCY_LIMIT" in capsys.readouterr().err


@pytest.mark.parametrize("name, bad", [("POSE2ID_MAX_UPLOAD_MB", "lots"), ("POSE2ID_MAX_UPLOADS", "0"),
                                       ("POSE2ID_RESULT_CACHE_MB", "-1")])
def test_a_bad_limit_variable_stops_the_app_while_its_options_are_read(monkeypatch, capsys, name, bad):
    import app

    monkeypatch.setenv(name, bad)
    with pytest.raises(SystemExit):
        app.parse_args([])
    assert name in capsys.readouterr().err


def test_launch_serves_no_upload_folder_and_limits_the_upload_size(monkeypatch, tmp_path):
    import app
    from pose2id.features import cache_root

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POSE2ID_MAX_UPLOAD_MB", "5")
    galleries = Galleries()
    options = app.launch_options(app.parse_args([]), galleries)
    assert options["max_file_size"] == 5 * 2**20
    upload_root = galleries._folders.root
    for folder in options["allowed_paths"]:
        assert not str(upload_root).startswith(folder) and not str(cache_root()).startswith(folder)


@pytest.mark.parametrize("written", ["{folder}", "market1501:{folder}", "dukemtmc:{folder}", "{zip}"])
def test_the_data_gallery_images_are_inside_the_served_folders(monkeypatch, tmp_path, written):
    """The query strip shows --data's images from disk: Gradio refuses a file outside allowed_paths
    (a dataset outside the working and temporary folders), so each must lie in one of them."""
    from pathlib import Path

    from tiny_market import market_zip

    import app
    from pose2id.data import open_dataset

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    spec = written.format(folder=market_folder(tmp_path / "shelf" / "Market", with_gen=False),
                          zip=market_zip(tmp_path / "shelf" / "cams.zip", pids=3))
    options = app.launch_options(app.parse_args(["--data", spec]), Galleries(data=spec))
    served = [Path(folder) for folder in options["allowed_paths"]]
    images = [image.path.resolve() for image in open_dataset(spec).query]
    assert images and all(any(image.is_relative_to(folder) for folder in served) for image in images)


def test_main_launches_with_the_caches_swept_and_one_blas_count(monkeypatch, tmp_path):
    import gradio as gr

    import app
    import pose2id._threads as threads

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw, delete_cache=self.delete_cache))
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    monkeypatch.setattr(Galleries, "warm_up", lambda self, key: None)
    monkeypatch.setattr(threads, "fix_threads", lambda count, user_api="blas": seen.setdefault("blas", count))
    app.main(["--port", "9123", "--test-pipeline"])
    assert seen["server_port"] == 9123 and seen["delete_cache"] == app.DELETE_CACHE and seen["blas"] == 1
    assert seen["max_file_size"] > 0


def test_sigterm_stops_the_server_and_removes_its_temporary_folders(tmp_path):
    # a Space restarting or `docker stop` sends SIGTERM: the app's folders under the system's
    # temporary folder must go as they do on Ctrl+C (atexit), not pile up restart after restart
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_SERVER_PORT": str(port), "POSE2ID_CACHE": str(tmp_path / "c")}
    for name in ("SPACE_ID", "SPACES_ZERO_GPU"):
        env.pop(name, None)
    server = subprocess.Popen([sys.executable, str(root / "app.py"), "--test-pipeline"], env=env, cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in server.stdout:  # until it serves (or ends)
            if "Running on" in line:
                break
        assert any(temp.glob("pose2id-*")), "the app made no temporary folder to check"
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert not list(temp.glob("pose2id-*"))


def _upload_galleries(tmp_path, **limits):
    from pose2id.demo.uploads import UploadFolders, UploadLimits

    return Galleries(upload_limits=UploadLimits(**limits), upload_folders=UploadFolders(tmp_path / "uploads"))


def test_a_refused_upload_leaves_nothing_on_disk(tmp_path, market):
    galleries = _upload_galleries(tmp_path)
    bad = tmp_path / "blank.zip"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as archive:
        for k in range(4):
            archive.writestr(f"junk/{k}.bin", b"\0" * 2**20)
    message = Retrieve(galleries).upload_zip(str(bad), SYNTHPED)[-1]
    assert "Cannot use blank.zip" in message
    assert galleries._folders.size() == 0 and galleries.uploads_kept() == []


def test_an_upload_may_expand_only_to_the_limit(tmp_path, market):
    galleries = _upload_galleries(tmp_path, max_bytes=2**20)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as archive:
        for k in range(3):
            archive.writestr(f"market/bounding_box_test/{k:04d}_c1s1_000000_00.jpg", b"\0" * 600_000)
    message = Retrieve(galleries).upload_zip(str(big), SYNTHPED)[-1]
    assert "expands to" in message and "limit" in message and galleries._folders.size() == 0


def test_uploads_beyond_the_limit_and_of_ended_sessions_are_removed(tmp_path, market):
    galleries = _upload_galleries(tmp_path, max_galleries=2)
    keys, benches = [], []
    for k in range(3):
        copy = tmp_path / f"copy{k}"
        market_folder(copy / "market", pids=4 + k)  # three different archives
        keys.append(galleries.add_zip(_zip_of(copy / "market", tmp_path / f"m{k}.zip"), session=f"page{k}"))
        benches.append(galleries.benchmark(keys[-1]))
        benches[-1].evaluate("+NFC", k1=2, k2=2)  # results held in the server's cache
    assert galleries.uploads_kept() == keys[1:]  # the oldest one went, with its folder and its results
    assert len(benches[0]._cache) == 0 and len(benches[2]._cache) > 0
    assert not galleries._extracted.get(keys[0]) and len(list((galleries._folders.root).iterdir())) == 2
    message = Retrieve(galleries).open_gallery(keys[0], SYNTHPED)[-1]
    assert "no longer on the server" in message and "upload it again" in message
    galleries.release("page1")
    assert galleries.uploads_kept() == [keys[2]] and len(list(galleries._folders.root.iterdir())) == 1


def test_all_galleries_keep_their_results_within_one_server_wide_bound(tmp_path, market):
    from pose2id.demo.uploads import UploadFolders
    from pose2id.lru import ByteLRU

    bound = 2**20  # a few dozen feature sets of these galleries
    galleries = Galleries(data=str(market), results=ByteLRU(max_bytes=bound),
                          upload_folders=UploadFolders(tmp_path / "uploads"))
    copy = tmp_path / "copy"
    market_folder(copy / "market", pids=5)
    upload = galleries.add_zip(_zip_of(copy / "market", tmp_path / "m.zip"), session="page")
    first = galleries.benchmark(DATA).table(k1=2, k2=2)
    for key in (DATA, upload):
        for k1 in range(1, 5):
            for k2 in range(1, 4):
                galleries.benchmark(key).table(k1=k1, k2=k2)
    held = galleries.benchmark(DATA)._cache.bytes + galleries.benchmark(upload)._cache.bytes
    largest = max(size for _, size in galleries.results._items.values())
    assert held == galleries.results.bytes and held <= bound + largest  # one bound (plus the entry last stored)
    assert galleries.benchmark(DATA).table(k1=2, k2=2) == first  # recomputed after eviction: the same numbers


def test_gallery_keys_hold_no_server_paths(tmp_path, market):
    galleries = Galleries(data=str(market))
    key = galleries.add_zip(_zip_of(market, tmp_path / "mine.zip"))
    values = [value for _, value in galleries.choices(uploaded=key)]
    assert values == [SYNTHPED, DATA, key] and not any(str(tmp_path) in value for value in values)


def test_a_pose_whose_joints_sit_on_one_point_is_refused():
    pose = editor.standard_pose("1")
    blob = Pose(np.full((18, 2), 30.0), pose.visible, pose.width, pose.height)
    with pytest.raises(PoseError, match="all sit on one point"):
        blob.check_body()
    assert pose.check_body() is pose


def test_an_editor_value_is_limited_in_size_like_an_imported_file():
    huge = '{"people": [{"pose_keypoints_2d": [' + ", ".join(["0"] * 54) + ']}], "x": "' + "a" * 3_000_000 + '"}'
    with pytest.raises(PoseError, match="larger than 1024 KB"):
        editor.from_value(huge)


@pytest.mark.slow
def test_ticking_another_pose_leaves_the_other_poses_images_as_they_were(tmp_path):
    # each pose's noise comes from (seed, pose), not from its place in the batch
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 128), (120, 60, 30)).save(photo)

    def images(pose_names):
        gallery = _run(Generate(GenerateConfig(test_pipeline=True)), photo=str(photo), pose_names=pose_names,
                       generator=IPG, steps=2)[-1][1]
        return [np.asarray(Image.open(item[0]) if isinstance(item[0], str) else item[0], dtype=np.int16)
                for item in gallery]

    alone, = images(["3"])
    first, third = images(["1", "3"])
    assert np.abs(third - alone).max() <= 2  # a grey level or two: batch size changes the last bits
    assert np.abs(first - alone).max() > 10  # another pose, other noise: not the same picture


def test_the_module_has_a_demo_for_gradios_reload_mode():
    # `gradio app.py` and notebooks look for a module-level `demo`
    import gradio as gr

    import app

    assert isinstance(app.demo, gr.Blocks) and app.demo is app.demo
    assert {"/retrieve", "/generate"} <= {f"/{d.api_name}" for d in app.demo.fns.values() if d.api_name}
    with pytest.raises(AttributeError):
        app.no_such_thing


# ---------------------------------------------------------------------------- errors worded from their fields
def test_an_upload_without_images_is_told_without_the_servers_extraction_folder(tmp_path, market):
    from pose2id.demo.retrieve import public_message

    galleries = _upload_galleries(tmp_path)
    notes = _zip_files(tmp_path / "notes.zip", {"notes/readme.txt": b"no pictures here"})
    message = Retrieve(galleries).upload_zip(str(notes), SYNTHPED)[-1]
    assert _kind(message) == "error" and "Cannot use notes.zip" in message and "no image files" in message
    assert str(galleries._folders.root) not in message and str(tmp_path) not in message
    # the same error, worded from its fields: the folder it was extracted to is shown as the zip
    from pose2id.data import DatasetError, Market1501

    folder = tmp_path / "extracted" / "gallery-x"
    (folder / "notes").mkdir(parents=True)
    with pytest.raises(DatasetError) as caught:
        Market1501(folder, shown_as="notes.zip")
    assert caught.value.file == str(folder) and caught.value.shown_as == "notes.zip"
    told = public_message(caught.value, str(notes))
    assert told.startswith("there are no image files") and str(tmp_path) not in told
    # a folder inside the zip is named inside the zip's name
    half = _zip_files(tmp_path / "half.zip", {"release/query/0001_c1s1_000001_00.jpg": b"broken",
                                              "release/bounding_box_test/0001_c2s1_000001_00.jpg": b"broken"})
    message = Retrieve(galleries).upload_zip(str(half), SYNTHPED)[-1]
    assert "half.zip/release: " in message and str(tmp_path) not in message


def test_public_message_names_a_damaged_uploaded_files_name_and_reason_only(tmp_path):
    from pose2id import ArgumentError
    from pose2id.demo.retrieve import public_message

    server = tmp_path / "srv" / "pose2id-uploads-1" / "gallery-2" / "0001_c1s1_000001_00.jpg"
    assert public_message(FileNotFoundError(2, "No such file or directory", str(server))) == \
        "0001_c1s1_000001_00.jpg: No such file or directory"
    assert public_message(OSError("disk full")) == "disk full"
    # a file inside the upload's own folder is named under the upload's name
    upload = tmp_path / "srv" / "cams"
    inside = ArgumentError("cannot read this image (not image data)", file=upload / "query" / "a.jpg")
    assert public_message(inside, str(upload)) == "cams/query/a.jpg: cannot read this image (not image data)"
    assert public_message(ArgumentError("must be >= 1, got 0", argument="k1")) == "k1 must be >= 1, got 0"


def _generate_failing_with(monkeypatch, tmp_path, error):
    """Generate with the test pipeline, the model run raising ``error``: its last output."""
    from pose2id.demo import ipg_runner

    def run(*args, **kwargs):
        raise error
        yield

    monkeypatch.setattr(ipg_runner, "gpu_task", lambda: run)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 128), (20, 120, 200)).save(photo)
    return _run(Generate(GenerateConfig(test_pipeline=True)), photo=str(photo), generator=IPG)[-1]


def test_a_bug_in_the_generate_model_run_is_logged_with_its_traceback_and_told_as_internal(monkeypatch, tmp_path,
                                                                                          caplog):
    import logging

    with caplog.at_level(logging.ERROR, logger="pose2id.demo.generate"):
        out = _generate_failing_with(monkeypatch, tmp_path, KeyError("latents"))
    records = [r for r in caplog.records if r.name == "pose2id.demo.generate" and r.exc_info]
    assert len(records) == 1 and records[0].exc_info[0] is KeyError
    assert "Traceback" in caplog.text and "KeyError" in caplog.text
    assert _kind(out[3]) == "error" and "internal error" in out[3] and "KeyError" in out[3] and "latents" in out[3]
    assert "log" in out[3]
    failed = out[5]
    assert failed.failed and failed.reason == "an internal error, KeyError" and failed.running is None
    # the app stays up: the next generation runs
    monkeypatch.undo()
    again = _run(Generate(GenerateConfig(test_pipeline=True)), photo=str(tmp_path / "photo.png"), generator=IPG)[-1]
    assert again[5].finished is not None and len(again[5].finished.images) == 2


@pytest.mark.parametrize("make_error, reason", [
    (lambda torch, gr: torch.OutOfMemoryError("CUDA out of memory"), "the GPU ran out of memory"),
    (lambda torch, gr: gr.Error("GPU task aborted", title="ZeroGPU worker error"), "ZeroGPU worker error"),
])
def test_out_of_memory_or_a_stopped_generate_run_is_the_users_not_a_bug(monkeypatch, tmp_path, caplog, make_error,
                                                                         reason):
    import logging

    import gradio as gr
    import torch

    with caplog.at_level(logging.ERROR, logger="pose2id.demo.generate"):
        out = _generate_failing_with(monkeypatch, tmp_path, make_error(torch, gr))
    assert not [r for r in caplog.records if r.name == "pose2id.demo.generate"]
    assert _kind(out[3]) == "error" and "internal error" not in out[3]
    assert out[5].reason == reason
