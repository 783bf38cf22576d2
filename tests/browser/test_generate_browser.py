"""The Generate tab's inputs as a first-time visitor and a careless typist meet them, in headless
Chromium: empty pose files, out-of-range numbers, the SynthPed identity following the photo, and
the out-of-the-box path on a CPU-only machine."""

import re
import time

import pytest
from pagetools import editor_pose, show_settings, status, upload, wait_until

pytestmark = pytest.mark.browser

ERROR_TOAST = "[data-testid='toast-body'].error"


def _visible_joints(page):
    flat = editor_pose(page)["people"][0]["pose_keypoints_2d"]
    return [i for i in range(18) if flat[3 * i + 2]]


def _choose_identity(page, pid):
    page.locator("#identity input").click()
    page.get_by_role("option", name=re.compile(rf"^#{pid}:")).click()
    status(page, "generate-status", f"SynthPed identity #{pid}")


def _generated(page, count):
    """Wait for a finished generation with ``count`` results; its status text."""
    text = status(page, "generate-status", f"{count} image(s)")
    page.wait_for_function(f"() => document.querySelectorAll('#results .thumbnail-item').length === {count}")
    return text


@pytest.mark.parametrize("name, why", [("allzero.json", "every keypoint is 0, 0, 0"),
                                       ("nan.json", "no numeric x, y")])
def test_importing_a_pose_without_joints_keeps_the_pose(open_app, tmp_path, name, why, screenshot, viewports):
    page = open_app(viewports["laptop"])
    before = editor_pose(page)
    path = tmp_path / name
    value = "NaN" if name == "nan.json" else "0"
    path.write_text('{"people": [{"pose_keypoints_2d": [' + ", ".join([value] * 54) + "]}]}")
    upload(page, "#import-pose", path)
    text = status(page, "editor-status", f"Cannot import {name}")
    assert why in text and "Your pose is unchanged" in text
    assert editor_pose(page) == before and "No valid pose" not in page.locator("#pose-editor .p2-info").inner_text()
    screenshot(page, f"import_{name.replace('.', '_')}_laptop")


def test_an_emptied_editor_pose_is_refused_by_generate(open_app, viewports):
    page = open_app(viewports["laptop"])
    _choose_identity(page, 45)
    page.locator("#generator label", has_text="SynthPed oracle").click()
    # remove joints until the neck and two more are left: not enough of a person to generate from
    canvas = page.locator("#pose-editor canvas.p2-canvas")
    while len(visible := _visible_joints(page)) > 3:
        pose, joint = editor_pose(page), visible[-1]
        x, y = pose["people"][0]["pose_keypoints_2d"][3 * joint: 3 * joint + 2]
        scale = canvas.bounding_box()["width"] / pose["canvas_width"]
        canvas.click(position={"x": x * scale, "y": y * scale})  # scrolled into view first
        page.locator("#pose-editor .p2-remove").click()
        # the canvas redraws asynchronously
        wait_until(lambda: _visible_joints(page), lambda now: len(now) < len(visible), "removed the joint")
    assert 1 in _visible_joints(page)
    page.locator("#generate-button").click()
    text = status(page, "generate-status", "editor pose cannot be generated")
    assert "only 3 visible joints" in text and "Include the editor pose" in text
    assert page.locator("#results .thumbnail-item").count() == 0


def test_seed_minus_one_is_random_and_a_huge_seed_is_refused_keeping_the_results(open_app, screenshot, viewports):
    page = open_app(viewports["laptop"])
    show_settings(page)
    assert "-1 = random" in page.locator("#seed").inner_text()
    _choose_identity(page, 47)
    page.locator("#generator label", has_text="SynthPed oracle").click()
    seed = page.locator("#seed input")
    seed.fill("-1")
    page.locator("#generate-button").click()
    text = _generated(page, 5)
    used = int(re.search(r"random seed (\d+)", text).group(1))
    page.wait_for_function(f"() => document.querySelector('#seed input').value === '{used}'")  # written back

    seed.fill("99999999999")
    page.locator("#generate-button").click()
    text = status(page, "generate-status", "out of range")
    assert "0 to 2147483647, or -1 for a random seed" in text
    # nothing of the user's is lost: the typed seed, the last results and their zip stay; no error badges
    assert seed.input_value() == "99999999999"
    assert page.locator("#results .thumbnail-item").count() == 5
    assert page.locator("#archive a, #archive .file-preview").count() > 0
    assert page.locator(ERROR_TOAST).count() == 0 and page.get_by_text("less than minimum").count() == 0
    screenshot(page, "generate_seed_refused_laptop")


def test_typed_slider_values_out_of_range_are_clamped(open_app, viewports):
    page = open_app(viewports["laptop"])
    page.get_by_role("tab", name="Retrieve").click()
    page.locator("#rankings .p2-rank-col").first.wait_for()
    for elem_id, typed, shown in [("k1", 0, "1"), ("top-k", 100, "15"), ("eta", -1, "0")]:
        before = page.locator("#rankings").inner_html()
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(typed))
        box.press("Enter")
        if elem_id != "eta":  # eta 2 -> 0 changes the +IPG lists; k1 and top-k change every list
            page.wait_for_function("b => document.querySelector('#rankings').innerHTML !== b", arg=before)
        box.blur()
        page.wait_for_function("([id, v]) => document.querySelector(`#${id} input[type=number]`).value === v",
                               arg=[elem_id, shown])
    time.sleep(1)  # any late failure would show up as a toast
    assert page.locator(ERROR_TOAST).count() == 0 and page.get_by_text("less than minimum").count() == 0
    assert page.locator("#rankings .p2-hit.p2-ok, #rankings .p2-hit.p2-bad").count() == 4 * 15  # top-k 15, all lists


def test_the_synthped_identity_follows_the_photo(open_app, screenshot, viewports):
    page = open_app(viewports["laptop"])
    _choose_identity(page, 43)
    assert page.locator("#identity input").input_value().startswith("#43")
    # a real example photo replaces the identity's picture: the dropdown is cleared with it
    page.locator("#examples .thumbnail-item").nth(5).click()
    page.wait_for_function("() => document.querySelector('#identity input').value === ''")
    page.locator("#generator label", has_text="SynthPed oracle").click()
    status(page, "generate-status", "The SynthPed oracle only draws SynthPed identities")  # said when chosen
    page.locator("#generate-button").click()
    status(page, "generate-status", "only re-renders SynthPed identities")  # and again by Generate
    assert page.locator("#identity input").input_value() == ""
    # a SynthPed example (labelled synthetic) chooses its identity
    assert "SynthPed people" in page.locator("#examples").inner_text() and "synthetic" in page.locator("#examples").inner_text()
    synthetic = page.locator("#examples .thumbnail-item", has_text="#46")
    synthetic.click()
    page.wait_for_function("() => document.querySelector('#identity input').value.startsWith('#46')")
    page.locator("#generate-button").click()
    assert "identity #46" in _generated(page, 5)
    screenshot(page, "generate_synthped_example_laptop")


def test_a_cpu_machine_generates_out_of_the_box(browser, cpu_app_url, screenshot):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(cpu_app_url)
        page.wait_for_selector("#pose-editor canvas.p2-canvas")
        # an identity and its picture are chosen, the oracle is the generator, and the note points up to them
        page.locator("#photo img").wait_for()
        assert page.locator("#identity input").input_value().startswith("#41")
        assert page.locator("#generator input[type=radio]:checked").get_attribute("value") == "oracle"
        note = page.locator(".p2-status", has_text="IPG needs a CUDA GPU").inner_text()
        assert "above" in note and "below" not in note
        assert page.locator("#examples .thumbnail-item", has_text=re.compile(r"#\d+")).count() == 5
        page.locator("#generate-button").click()
        assert "identity #41" in _generated(page, 5)
        screenshot(page, "generate_cpu_out_of_the_box_laptop")
        # a real example photo says at once that it cannot be generated here
        page.locator("#examples .thumbnail-item").first.click()
        assert "SynthPed example" in status(page, "generate-status", "a real person")
    finally:
        context.close()


def test_generate_api_as_the_readme_documents_it(app_url, tmp_path):
    from gradio_client import Client, handle_file
    from PIL import Image

    client = Client(app_url, verbose=False)
    from gradio_client.exceptions import AppError

    oracle = "oracle"
    # README: the oracle with a SynthPed pid, no photo
    preview, gallery, archive, message, seed = client.predict(
        None, ["1", "3"], False, "", oracle, 41, 20, 3.5, 42, False, 2.0, api_name="/generate")
    assert len(gallery) == 2 and seed == 42 and "identity #41" in message and "p2-ok" in message
    # a pid that is not an identity: raised with the app's message
    with pytest.raises(AppError, match="SynthPed pid 5"):
        client.predict(None, ["1"], False, "", oracle, 5, 20, 3.5, 42, False, 2.0, api_name="/generate")
    # a real photo with a pid: the identity's own picture is the reference, and the status says so
    photo = tmp_path / "person.png"
    Image.new("RGB", (64, 128), (90, 40, 40)).save(photo)
    *_, message, _ = client.predict(handle_file(str(photo)), ["1"], False, "", oracle, 41, 20, 3.5, 42, False, 2.0,
                                    api_name="/generate")
    assert "Your photo was not used" in message
    # seed -1 is random and comes back as the seed used; an empty pose JSON is refused
    *_, seed = client.predict(None, ["1"], False, "", oracle, 41, 20, 3.5, -1, False, 2.0, api_name="/generate")
    assert 0 <= seed <= 2**31 - 1
    empty = '{"people": [{"pose_keypoints_2d": [' + ", ".join(["0"] * 54) + "]}]}"
    with pytest.raises(AppError, match="no visible joint"):
        client.predict(None, [], True, empty, oracle, 41, 20, 3.5, 1, False, 2.0, api_name="/generate")
