"""What the browser tests do on a page of the app: upload a file, type into a slider, read the
editor's pose and a tab's status box, wait for a state that Playwright cannot see."""

import json
import time


def wait_until(read, check, what, timeout=300):
    """``read()`` once ``check`` holds for it; fails, showing the last value, if it never does
    (the timeout only ends a wait for a state that never comes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"never {what}: {value}"
        time.sleep(0.1)


def upload(page, selector, path):
    """Choose ``path`` in the file dialog that clicking ``selector`` opens."""
    with page.expect_file_chooser() as chooser:
        page.locator(selector).click()
    chooser.value.set_files(str(path))


def show_settings(page):
    """Open Generate's folded settings (steps, guidance, seed, eta) if they are folded away."""
    if not page.locator("#steps").is_visible():
        page.get_by_text("Settings: steps, guidance, seed, eta").click()
        page.locator("#steps").wait_for()


def set_slider(page, elem_id, value):
    """Type ``value`` into the number box of slider ``elem_id`` (Generate's settings opened
    where it is one of them) and press Enter."""
    if elem_id in ("steps", "guidance", "gen-eta"):
        show_settings(page)
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def status(page, elem_id, *contains):
    """The text of the tab's status box once it holds every one of ``contains``."""
    locator = page.locator(f"#{elem_id} .p2-status")
    for text in contains:
        locator = locator.filter(has_text=text)
    locator.wait_for()
    return locator.inner_text()


def editor_pose(page):
    """The skeleton editor's pose as OpenPose JSON."""
    return json.loads(page.locator("#pose-editor canvas.p2-canvas").get_attribute("data-pose"))
