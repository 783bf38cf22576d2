"""Click through every tab of the app as a person would, in headless Chromium."""

import json
import re
import urllib.request
import zipfile

import pytest
from PIL import Image

from testkit import png_header_only
from pagetools import editor_pose, set_slider, status, upload, wait_until

pytestmark = pytest.mark.browser


def _wait_editor(page, check):
    """The editor pose once ``check(pose)`` holds (the canvas redraws asynchronously)."""
    return wait_until(lambda: editor_pose(page), check, "the expected editor pose")


def test_the_app_serves_its_page_and_api(app_url):
    # how fast it starts is measured by benchmarks/app_latency.py
    from gradio_client import Client

    with urllib.request.urlopen(app_url, timeout=60) as response:
        assert response.status == 200 and "pose2id" in response.read().decode().lower()
    endpoints = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/retrieve"} <= set(endpoints)


def test_page_is_offline_and_fits_a_laptop_and_a_projector(open_app, screenshot, viewports):
    for name, viewport in viewports.items():
        page = open_app(viewport)
        page.locator("#pose-strip img").wait_for()
        screenshot(page, f"generate_{name}")
        assert page.external_requests == []
        # nothing overflows sideways
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_drag_a_joint_then_generate_with_the_tiny_pipeline(open_app, screenshot, viewports):
    page = open_app(viewports["laptop"])
    page.locator("#examples .thumbnail-item").nth(5).click()
    page.locator("#photo img").wait_for()
    for name in ("3", "5", "7"):  # keep only pose 1 ticked
        page.locator("#pose-names").get_by_label(name, exact=True).uncheck()

    canvas = page.locator("#pose-editor canvas.p2-canvas")
    canvas.scroll_into_view_if_needed()  # the editor sits below the main flow; the mouse needs it on screen
    before = editor_pose(page)
    box = canvas.bounding_box()
    scale = box["width"] / before["canvas_width"]
    x, y = before["people"][0]["pose_keypoints_2d"][3 * 4: 3 * 4 + 2]  # right wrist
    start = (box["x"] + x * scale, box["y"] + y * scale)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 40, start[1] - 60, steps=8)
    page.mouse.up()
    page.locator("#pose-editor .p2-info", has_text="Selected: r_wrist").wait_for()
    after = _wait_editor(page, lambda p: p != before)
    moved = after["people"][0]["pose_keypoints_2d"][3 * 4: 3 * 4 + 2]
    assert moved[0] > x + 5 and moved[1] < y - 5

    set_slider(page, "steps", 2)
    page.locator("#generate-button").click()
    text = status(page, "generate-status", "image(s)")
    assert "tiny random-weight pipeline" in text and "2 image(s)" in text
    assert page.locator("#results .thumbnail-item").count() == 2
    page.locator("#preview img").wait_for()
    page.locator("#archive a, #archive .file-preview").first.wait_for()
    screenshot(page, "generate_done_laptop")
    # the edited pose survives the generation
    assert editor_pose(page)["people"][0]["pose_keypoints_2d"][3 * 4] == pytest.approx(moved[0])


def test_remove_add_mirror_and_export_in_the_editor(open_app, tmp_path, viewports):
    page = open_app(viewports["laptop"])
    canvas = page.locator("#pose-editor canvas.p2-canvas")
    canvas.scroll_into_view_if_needed()  # the editor sits below the main flow; the mouse needs it on screen
    pose = editor_pose(page)
    box = canvas.bounding_box()
    scale = box["width"] / pose["canvas_width"]
    x, y = pose["people"][0]["pose_keypoints_2d"][0:2]  # nose
    page.mouse.click(box["x"] + x * scale, box["y"] + y * scale)
    page.locator("#pose-editor .p2-remove").click()
    nose_visible = lambda pose: pose["people"][0]["pose_keypoints_2d"][2]  # noqa: E731
    assert nose_visible(_wait_editor(page, lambda p: nose_visible(p) == 0)) == 0
    assert page.locator("#pose-editor .p2-missing").input_value() == "0"  # the nose is offered back
    page.locator("#pose-editor .p2-add").click()
    assert nose_visible(_wait_editor(page, lambda p: nose_visible(p) == 1)) == 1

    before = editor_pose(page)["people"][0]["pose_keypoints_2d"]
    page.locator("#mirror-pose").click()
    status(page, "editor-status", "mirrored")
    mirrored = _wait_editor(page, lambda p: p["people"][0]["pose_keypoints_2d"] != before)["people"][0]["pose_keypoints_2d"]
    # the right shoulder (2) lands where the mirror image of the left shoulder (5) is
    assert mirrored[3 * 2] == pytest.approx(64 - before[3 * 5], abs=0.01)

    page.locator("#export-pose").click()
    status(page, "editor-status", "ready to download")
    with page.expect_download() as download:
        page.locator("#export-file a").first.click()
    exported = json.loads(open(download.value.path()).read())
    assert exported["people"][0]["pose_keypoints_2d"][3 * 2] == pytest.approx(mirrored[3 * 2], abs=0.01)


def test_oracle_for_a_synthped_identity(open_app, screenshot, viewports):
    page = open_app(viewports["laptop"])
    page.locator("#identity input").click()
    page.get_by_role("option").nth(3).click()
    status(page, "generate-status", "SynthPed identity")
    page.locator("#generator label", has_text="SynthPed oracle").click()
    page.locator("#generate-button").click()
    text = status(page, "generate-status", "image(s)")
    assert "SynthPed oracle (not a model)" in text and "5 image(s)" in text  # 4 standard poses + editor pose
    assert page.locator("#results .thumbnail-item").count() == 5
    screenshot(page, "generate_oracle_laptop")


def test_bad_inputs_show_specific_messages_and_keep_the_users_work(open_app, tmp_path, screenshot, viewports):
    page = open_app(viewports["laptop"])
    # a pose the user made
    initial = editor_pose(page)
    page.locator("#mirror-pose").click()
    status(page, "editor-status", "mirrored")
    made = _wait_editor(page, lambda p: p != initial)
    assert made != initial

    broken = tmp_path / "broken.json"
    broken.write_text('{"people": [{"pose_keypoints_2d": [1, 2')
    upload(page, "#import-pose", broken)
    assert "Cannot import broken.json" in status(page, "editor-status", "Cannot import")
    assert editor_pose(page) == made

    # a photo, then a file that is no image dropped over it: refused, and the photo comes back
    grey = tmp_path / "grey.png"
    Image.new("LA", (64, 128), (128, 255)).save(grey)
    upload(page, "#photo button.upload-container", grey)
    status(page, "generate-status", "Reference photo grey.png")
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not really a photo")
    page.locator("#photo input[type=file]").set_input_files(str(fake))
    assert "The previous photo is kept" in status(page, "generate-status", "holiday.jpg is not an image")
    page.wait_for_function("() => [...document.querySelectorAll('#photo img')].some(i => i.src.includes('grey'))")
    page.locator("#generator label", has_text="SynthPed oracle").click()
    page.locator("#generate-button").click()  # with the grey photo, which the oracle does not draw
    status(page, "generate-status", "only re-renders SynthPed identities")  # Generate's answer, not the radio's

    huge = png_header_only(tmp_path / "huge.png", 20000, 20000)
    page.get_by_role("button", name="Remove Image").click()
    status(page, "generate-status", "No reference photo")
    upload(page, "#photo button.upload-container", huge)
    assert "megapixels" in status(page, "generate-status", "megapixels")
    page.locator("#generate-button").click()
    status(page, "generate-status", "No photo given")  # the refused file is not used
    assert editor_pose(page) == made
    screenshot(page, "bad_inputs_generate_laptop")

    page.get_by_role("tab", name="Retrieve").click()
    page.locator("#rankings .p2-rank-col").first.wait_for()
    rankings = page.locator("#rankings .p2-rankings").inner_html()  # the lists, not Gradio's progress wrapper
    bad_zip = tmp_path / "gallery.zip"
    bad_zip.write_bytes(b"PK\x03\x04 this is not a zip")
    upload(page, "#gallery-zip button.upload-container", bad_zip)
    assert "current gallery stays" in status(page, "retrieve-status", "Cannot use gallery.zip")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../escape/0001_c1s1_000001_00.jpg", b"x")
    # the refused zip left the upload box: it offers an upload again, not a file in use
    page.locator("#gallery-zip button.upload-container").wait_for()
    assert page.locator("#gallery-zip").get_by_role("button", name="Clear").count() == 0
    upload(page, "#gallery-zip button.upload-container", evil)
    assert ".." in status(page, "retrieve-status", "Cannot use evil.zip")
    assert page.locator("#rankings .p2-rankings").inner_html() == rankings
    screenshot(page, "bad_inputs_retrieve_laptop")


def test_retrieve_rankings_metrics_and_sliders(open_app, screenshot, viewports):
    for name, viewport in viewports.items():
        page = open_app(viewport)
        page.get_by_role("tab", name="Retrieve").click()
        page.locator("#rankings .p2-rank-col").first.wait_for()
        assert page.locator("#rankings .p2-rank-col").count() == 4
        assert "synthetic" in status(page, "retrieve-status", "SynthPed")
        table = page.locator("#metrics").inner_text().split()
        assert all(method in table for method in ("Base", "+NFC", "+IPG", "+NFC+IPG"))

        page.locator("#queries .thumbnail-item").nth(7).click()
        status(page, "retrieve-status", "Query #7")
        assert page.locator("#rankings .p2-hit.p2-ok, #rankings .p2-hit.p2-bad").count() == 4 * 8
        screenshot(page, f"retrieve_query_{name}")
        if name == "laptop":
            before = page.locator("#rankings").inner_html()
            set_slider(page, "k1", 5)
            page.wait_for_function("b => document.querySelector('#rankings').innerHTML !== b", arg=before)
            status(page, "retrieve-status", "Metrics over all")
            page.locator("#rerank input").check()
            page.locator("#rankings .p2-note", has_text="re-ranking").wait_for()
        screenshot(page, f"retrieve_{name}")


def _dot_at(page, dot, end):
    """Wait until ``dot`` (a locator) is drawn at its Base (``end`` 0) or after (1) position."""
    return page.wait_for_function(
        """([c, s]) => Math.abs(c.getAttribute('cx') - c.dataset['x' + s]) < 0.01
                    && Math.abs(c.getAttribute('cy') - c.dataset['y' + s]) < 0.01""",
        arg=[dot.element_handle(), end])


def test_feature_space_plots(open_app, screenshot, viewports):
    for name, viewport in viewports.items():
        page = open_app(viewport)
        page.get_by_role("tab", name="Feature space").click()
        page.locator("#tsne-plot svg circle").first.wait_for()
        page.locator("#id2-plot .js-plotly-plot").wait_for()
        assert "global ID²" in status(page, "space-status", "global ID²")
        assert page.locator("#tsne-plot svg").count() == 1  # one map for Base and after
        screenshot(page, f"feature_space_{name}")
        # Play moves every dot from its Base position to its +NFC+IPG position
        dot = page.locator("#tsne-plot circle[data-t='3']")
        assert (dot.get_attribute("cx"), dot.get_attribute("cy")) == (dot.get_attribute("data-x0"), dot.get_attribute("data-y0"))
        page.locator("#tsne-plot .p2-tsne-play").click()
        # checked on every animation frame: the dots pass through the positions in between
        page.wait_for_function("() => { const v = +document.querySelector('#tsne-plot .p2-tsne-range input').value;"
                               " return v > 0 && v < 100; }", polling="raf")
        _dot_at(page, dot, 1)
        page.wait_for_function("() => document.querySelector('#tsne-plot .p2-tsne-range input').value === '100'")
        spread, now = page.locator("#tsne-plot .p2-tsne-spread"), page.locator("#tsne-plot .p2-tsne-now")
        assert now.inner_text() == spread.get_attribute("data-d1")  # the live number, computed in the page
        screenshot(page, f"feature_space_after_{name}")
    # the slider moves the dots back, and halfway puts them halfway
    page.locator("#tsne-plot .p2-tsne-range input").fill("0")
    _dot_at(page, dot, 0)
    assert now.inner_text() == spread.get_attribute("data-d0")
    page.locator("#tsne-plot .p2-tsne-range input").fill("50")
    x0, x1 = float(dot.get_attribute("data-x0")), float(dot.get_attribute("data-x1"))
    assert float(dot.get_attribute("cx")) == pytest.approx((x0 + x1) / 2, abs=0.01)

    before = page.locator("#tsne-plot h4").inner_text()
    set_slider(page, "sample-size", 100)  # the plots follow: no button to press
    page.wait_for_function("b => document.querySelector('#tsne-plot h4').innerText !== b", arg=before)
    shown = int(re.search(r"(\d+) images", page.locator("#tsne-plot h4").inner_text()).group(1))  # "… of N images …"
    assert 100 <= shown < 130  # whole identities, so slightly more than asked
    assert page.locator("#tsne-plot circle").count() == shown
    page.locator("#tsne-plot .p2-tsne-play").click()  # the new map plays too
    _dot_at(page, page.locator("#tsne-plot circle[data-t='3']"), 1)
    dot = page.locator("#tsne-plot circle[data-t='3']")
    # the pointer over this dot (dispatched on it: in the fixed map another dot may lie on top of it)
    box = dot.bounding_box()
    dot.dispatch_event("mouseover", {"clientX": box["x"] + box["width"] / 2, "clientY": box["y"] + box["height"] / 2})
    tip = page.locator("#tsne-plot .p2-tsne-tip")
    tip.wait_for()
    assert tip.locator("img").get_attribute("src").startswith("data:image/jpeg")
    assert "cam" in tip.inner_text()
    assert page.locator("#tsne-plot circle.p2-on").count() == 1
    mates = page.locator(f"#tsne-plot circle[data-pid='{dot.get_attribute('data-pid')}']").count()
    assert page.locator("#tsne-plot circle.p2-mate").count() == mates  # its identity's dots are ringed
    screenshot(page, "feature_space_hover_projector")


def test_about_tab(open_app, screenshot, viewports):
    page = open_app(viewports["laptop"])
    page.get_by_role("tab", name="About").click()
    page.get_by_text("python -m pose2id download").first.wait_for()
    screenshot(page, "about_laptop")


def test_named_api_endpoints_with_gradio_client(app_url, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    html, table, message, _ = client.predict("synthped", 4, 3, 2, 2.0, False, 5, api_name="/retrieve")
    assert html.count('class="p2-rank-col"') == 4 and "Query #4" in message
    assert [row[0] for row in table["data"]] == ["Base", "+NFC", "+IPG", "+NFC+IPG"]

    pose = json.dumps({"canvas_width": 64, "canvas_height": 128,
                       "people": [{"pose_keypoints_2d": [32, 20, 1] + [0, 0, 0] * 17}]})
    photo = tmp_path / "person.png"
    Image.new("RGB", (64, 128), (90, 40, 40)).save(photo)
    preview, gallery, archive, message, seed = client.predict(
        handle_file(str(photo)), ["2", "4"], False, pose, "oracle", 45, 5, 3.5, 11, False, 2.0, api_name="/generate")
    assert len(gallery) == 2 and seed == 11 and "SynthPed oracle" in message
    assert zipfile.is_zipfile(archive)

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(text)), ["1"], False, pose, "ipg", None, 2, 3.5, 1, False, 2.0,
                       api_name="/generate")

    bars, tsne, message = client.predict("synthped", "+NFC", 2, 2, 2.0, 60, api_name="/feature_space")
    assert "global ID²" in message


def test_pose_from_the_photo(open_app, screenshot, viewports):
    pytest.importorskip("mediapipe")
    page = open_app(viewports["laptop"])
    initial = editor_pose(page)
    page.locator("#examples .thumbnail-item").nth(5).click()
    page.locator("#photo img").wait_for()
    page.locator("#photo-pose").click()
    assert "Pose taken from the photo" in status(page, "editor-status", "Pose taken")
    assert _wait_editor(page, lambda p: p != initial) != initial
    screenshot(page, "pose_from_photo_laptop")


def test_search_the_gallery_with_an_uploaded_photo(open_app, screenshot, viewports):
    from pathlib import Path

    page = open_app(viewports["laptop"])
    page.get_by_role("tab", name="Retrieve").click()
    page.locator("#rankings .p2-rank-col").first.wait_for()
    photo = Path(__file__).resolve().parents[2] / "assets" / "examples" / "rgb2.jpg"
    upload(page, "#query-photo button.upload-container", photo)
    text = status(page, "retrieve-status", "Ranked your photo")
    assert "No images of this photo have been generated" in text  # and how to get +IPG
    assert page.locator("#rankings .p2-rank-col").count() == 2
    page.locator("#rankings h4", has_text="Your photo").wait_for()
    screenshot(page, "retrieve_uploaded_query_laptop")

    # generate images of the same photo (example rgb2.jpg), then search the gallery with it
    page.get_by_role("tab", name="Generate").click()
    page.locator("#examples .thumbnail-item").nth(6).click()
    page.locator("#photo img").wait_for()
    for name in ("3", "5", "7"):  # pose 1 and the editor pose
        page.locator("#pose-names").get_by_label(name, exact=True).uncheck()
    set_slider(page, "steps", 2)
    page.locator("#generate-button").click()
    status(page, "generate-status", "image(s)")
    page.locator("#search-person").click()
    text = status(page, "retrieve-status", "+IPG from")
    assert "+IPG from 2 generated images of your photo" in text and "eta 2" in text
    assert page.locator("#rankings").is_visible()  # the Retrieve tab is open
    assert page.locator("#rankings .p2-rank-col").count() == 4
    page.locator("#rankings h4", has_text="Your photo").wait_for()
    screenshot(page, "retrieve_uploaded_query_ipg_laptop")

    # the eta slider re-ranks the photo; removing the photo brings a gallery query back
    set_slider(page, "eta", 0)
    page.locator("#rankings .p2-note", has_text="eta 0").wait_for()
    assert page.locator("#rankings .p2-rank-col").count() == 4
    page.locator("#query-photo").get_by_role("button", name="Remove Image").click()
    status(page, "retrieve-status", "Query #0")
    assert page.locator("#rankings h4", has_text="Your photo").count() == 0
