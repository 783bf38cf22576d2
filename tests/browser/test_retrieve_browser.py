"""The Retrieve and Feature space tabs in headless Chromium: the metrics follow the sliders, an
uploaded photo stays the query while sliders move, an uploaded zip is a gallery of its own name
that SynthPed can replace again, zip errors that say what is wrong, the first visit's wait
explained, and the Feature space plots that follow their controls."""

import os
import re
import zipfile
from pathlib import Path

import pytest
from pagetools import set_slider, status, upload, wait_until
from tiny_market import market_zip

from pose2id.demo.retrieve import BUILDING_SYNTHPED as BUILDING

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
LAPTOP = {"width": 1366, "height": 768}

EXAMPLE = ROOT / "assets" / "examples" / "rgb2.jpg"


def _table(page):
    """{method: [mAP, Rank-1, Rank-5, Rank-10, ID²]} as the metrics table shows them (strings)."""
    rows = page.locator("#metrics .virtual-row")
    table = {}
    for i in range(rows.count()):
        cells = [c.strip() for c in rows.nth(i).get_by_role("gridcell").all_inner_texts()]
        table[cells[0]] = cells[1:]
    return table


def _open_retrieve(page):
    page.get_by_role("tab", name="Retrieve").click()
    page.locator("#rankings .p2-rank-col").first.wait_for()
    status(page, "retrieve-status", "Metrics over all")


# ---------------------------------------------------------------------------- on the shared app
def test_sliders_re_rank_the_uploaded_photo_not_query_0(open_app, screenshot):
    page = open_app(LAPTOP)
    _open_retrieve(page)
    upload(page, "#query-photo button.upload-container", EXAMPLE)
    status(page, "retrieve-status", "Ranked your photo")
    for elem_id, value, label in (("k1", 4, "(k1 4,"), ("k2", 3, "k2 3,"), ("eta", 1.5, "eta 1.5,")):
        set_slider(page, elem_id, value)
        page.locator("#metrics", has_text=label).wait_for()  # the metrics followed the slider ...
        text = status(page, "retrieve-status", "Metrics over all")
        assert "Ranked your photo" in text and "Query #" not in text  # ... and the photo is still the query
        assert page.locator("#rankings h4", has_text="Your photo").count() == 1
    set_slider(page, "top-k", 5)
    page.wait_for_function("() => document.querySelectorAll('#rankings .p2-rank-col')[0]"
                           ".querySelectorAll('.p2-hit').length === 5")
    assert page.locator("#rankings h4", has_text="Your photo").count() == 1
    page.locator("#rerank input").check()
    page.locator("#metrics", has_text="k-reciprocal re-ranking").wait_for()
    assert "Ranked your photo" in status(page, "retrieve-status", "Metrics over all")
    screenshot(page, "retrieve_photo_after_sliders_laptop")
    # a click on a query makes it the query again, and the sliders then re-rank that query
    page.locator("#queries .thumbnail-item").nth(3).click()
    status(page, "retrieve-status", "Query #3")
    set_slider(page, "k1", 2)
    assert "Query #3" in status(page, "retrieve-status", "Metrics over all", "Query #3")
    assert page.locator("#rankings h4", has_text="Your photo").count() == 0


def test_an_uploaded_zip_is_a_gallery_choice_and_synthped_comes_back(open_app, tmp_path, screenshot):
    page = open_app(LAPTOP)
    _open_retrieve(page)
    synthped = _table(page)
    archive = market_zip(tmp_path / "my_cams.zip", unreadable=["0003_c2s1_000009_00.jpg"])
    upload(page, "#gallery-zip button.upload-container", archive)
    text = status(page, "retrieve-status", "my_cams.zip (Market-1501 style)", "Metrics over all")
    assert "20 queries" in text and "1 unreadable image(s) skipped: 0003_c2s1_000009_00.jpg (not image data)" in text
    choice = page.locator("#gallery-choice").get_by_label("my_cams.zip (Market-1501 style)")
    assert choice.is_checked()
    assert list(_table(page)) == ["Base", "+NFC"] and _table(page) != synthped
    screenshot(page, "retrieve_uploaded_zip_laptop")

    # Feature space: no generated images in this zip, so +NFC instead of the default +NFC+IPG
    page.get_by_role("tab", name="Feature space").click()
    text = status(page, "space-status", "t-SNE of")
    assert text.startswith("Note: Showing +NFC instead of +NFC+IPG") and "my_cams.zip" in text
    assert page.locator("#after input").input_value() == "+NFC"
    page.locator("#tsne-plot svg circle").first.wait_for()
    title = page.locator("#tsne-plot h4").inner_text()
    set_slider(page, "sample-size", 50)  # no button to press: the plots follow (120 points before)
    page.wait_for_function("t => document.querySelector('#tsne-plot h4').innerText !== t", arg=title)
    points = page.locator("#tsne-plot circle").count()
    assert 50 <= points < 60 and f"t-SNE of {points} points" in status(page, "space-status", "for about 50 asked")
    screenshot(page, "feature_space_uploaded_zip_laptop")

    # back to SynthPed with one click, and to the zip again
    page.get_by_role("tab", name="Retrieve").click()
    page.locator("#gallery-choice").get_by_label("SynthPed (synthetic, built in)").click()
    status(page, "retrieve-status", "SynthPed", "Metrics over all")
    assert _table(page) == synthped
    # the Feature space shows the user's own After again (the default +NFC+IPG), not the zip's +NFC
    page.get_by_role("tab", name="Feature space").click()
    status(page, "space-status", "SynthPed", "(+NFC+IPG; k1 2, k2 2, eta 2). t-SNE")
    assert page.locator("#after input").input_value() == "+NFC+IPG"
    page.get_by_role("tab", name="Retrieve").click()
    choice.click()
    status(page, "retrieve-status", "my_cams.zip", "Metrics over all")
    # removing the zip goes back to SynthPed, and the choice goes with the file
    page.locator("#gallery-zip").get_by_role("button", name="Clear").click()
    status(page, "retrieve-status", "SynthPed", "Metrics over all")
    page.wait_for_function("() => !document.querySelector('#gallery-choice').innerText.includes('my_cams')")
    assert page.locator("#gallery-choice").get_by_label("SynthPed (synthetic, built in)").is_checked()
    assert _table(page) == synthped


def test_zip_errors_say_what_is_wrong_in_the_users_terms(open_app, tmp_path):
    page = open_app(LAPTOP)
    _open_retrieve(page)
    rankings = page.locator("#rankings").inner_html()
    fake = tmp_path / "market_fakeimgs.zip"
    with zipfile.ZipFile(fake, "w") as archive:
        for name in ("0001_c1s1_000001_00.jpg", "0001_c2s1_000001_00.jpg", "0002_c1s1_000001_00.jpg"):
            archive.writestr(name, b"0123456789")
    upload(page, "#gallery-zip button.upload-container", fake)
    text = status(page, "retrieve-status", "Cannot use market_fakeimgs.zip")
    # what is wrong with each file, by its name in the zip, and that nothing was lost
    assert text.startswith("Error: Cannot use market_fakeimgs.zip") and "readable image" in text
    for name in ("0001_c1s1_000001_00.jpg", "0001_c2s1_000001_00.jpg", "0002_c1s1_000001_00.jpg"):
        assert f"{name} (not image data)" in text
    assert "current gallery stays" in text
    assert page.locator("#rankings").inner_html() == rankings
    assert page.locator("#gallery-choice").get_by_label("SynthPed (synthetic, built in)").is_checked()

    holiday = tmp_path / "holiday.zip"
    with zipfile.ZipFile(holiday, "w") as archive:
        archive.write(EXAMPLE, "photos/holiday_0.jpg")
    page.locator("#gallery-zip button.upload-container").wait_for()  # the refused zip left the box
    upload(page, "#gallery-zip button.upload-container", holiday)
    text = status(page, "retrieve-status", "Cannot use holiday.zip")
    assert "Market-1501 style name" in text and "'holiday_0.jpg'" in text
    for message in [text] + page.locator(".toast-body").all_inner_texts():
        assert "/" not in message.replace("query/", "").replace("bounding_box_test/", "")  # no server paths
        assert "root:" not in message and not re.search(r"[^.]\.\.[^.]", message)


# ---------------------------------------------------------------------------- on an app of its own
# An empty cache (the first visit builds SynthPed), and metrics for k1 = 1 that take 3 s longer:
# an event that starts later (k1 = 2) could finish first, so a table arriving late would show
# k1 = 1. Every metrics table the app computes is logged ("start K1" / "end K1") to the file named
# by the second argument, so the tests wait for what the server did, never for a time.
SLOW_APP = """
import sys, time
from pose2id.experiments import Benchmark

table = Benchmark.table
log_path = sys.argv[2]

def log(line):
    with open(log_path, "a") as log_file:
        log_file.write(line + "\\n")

def table_slow_for_k1_1(self, k1=2, k2=2, eta=2.0, rerank=False):
    log(f"start {k1}")
    if k1 == 1:
        time.sleep(3)
    try:
        return table(self, k1=k1, k2=k2, eta=eta, rerank=rerank)
    finally:
        log(f"end {k1}")

Benchmark.table = table_slow_for_k1_1

# SynthPed's generated images are drawn only once the test has created the file named by the third
# argument: the page's first rankings (from the originals) are seen before +IPG arrives
import os
import pose2id.data.synthped as synthped

load_synthped, release = synthped.load_synthped, sys.argv[3]

def gated(*args, generated=True, **kwargs):
    while generated and not os.path.exists(release):
        time.sleep(0.1)
    return load_synthped(*args, generated=generated, **kwargs)

synthped.load_synthped = gated
sys.argv = ["app.py", "--port", sys.argv[1]]
import app
app.main()
"""


@pytest.fixture(scope="module")
def cold_app(tmp_path_factory, serve):
    """The app on a free port with an empty POSE2ID_CACHE and slow k1 = 1 metrics; yields
    {"url", "log"}, the log of its metrics tables."""
    folder = tmp_path_factory.mktemp("cold")
    log = folder / "tables.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", POSE2ID_TEST_PIPELINE="1",
               POSE2ID_CACHE=str(folder / "cache"))
    release = folder / "release"
    for server in serve(folder / "app.log", env, ("-c", SLOW_APP, "{port}", str(log), str(release))):
        yield {"url": server["url"], "log": log, "release": release.touch}


def _table_log(log):
    """The app's table log as lines such as "start 1", "end 1"."""
    words = log.read_text().split() if log.exists() else []
    return [" ".join(pair) for pair in zip(words[::2], words[1::2])]


@pytest.fixture
def cold_page(browser, cold_app):
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(180_000)  # building SynthPed takes 30-45 s on a busy 2-core machine
    page.goto(cold_app["url"])
    page.get_by_role("tab", name="Retrieve").wait_for()
    yield page
    context.close()


@pytest.mark.slow
def test_the_first_visit_says_that_synthped_is_being_built(cold_page, cold_app, browser, screenshot):
    page = cold_page
    page.get_by_role("tab", name="Retrieve").click()
    shown = page.locator("#retrieve-status").get_by_text(BUILDING).first
    shown.wait_for()  # the progress text, in the status line under the controls
    box = shown.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP["height"]  # above the fold at 1366x768
    progress = shown.inner_text()
    assert re.search(r"(Drawing images|Features): [\d,]+ of [\d,]+", progress)
    screenshot(page, "retrieve_first_visit_laptop")

    # a second visitor goes straight to Feature space while SynthPed is built: told to wait, the
    # plots then appear by themselves (no click), as soon as the gallery has opened
    other = browser.new_context(viewport=LAPTOP).new_page()
    other.set_default_timeout(180_000)
    other.goto(page.url)
    other.get_by_role("tab", name="Feature space").click()
    assert "the plots appear here when it is ready" in status(other, "space-status", "still opening")
    assert other.locator("#tsne-plot svg circle").count() == 0
    other.locator("#tsne-plot svg circle").first.wait_for()
    assert "global ID²" in status(other, "space-status", "global ID²")
    other.context.close()

    # the first rankings come from SynthPed's originals: Base and +NFC, and a note that +IPG follows
    status(page, "retrieve-status", "Metrics over all")
    assert page.locator("#rankings .p2-rank-col").count() == 2
    assert "+IPG" in page.locator("#rankings .p2-note").last.inner_text()
    assert list(_table(page)) == ["Base", "+NFC"]
    screenshot(page, "retrieve_first_rankings_laptop")
    # once the generated images are made, +IPG and +NFC+IPG appear by themselves (no click)
    cold_app["release"]()
    page.locator("#rankings .p2-rank-col").nth(3).wait_for()
    page.locator("#metrics .virtual-row", has_text="+NFC+IPG").wait_for()
    assert list(_table(page)) == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    # a later visit opens the built benchmark: the building notice never shows
    page.reload()
    page.get_by_role("tab", name="Retrieve").wait_for()
    page.evaluate("""(text) => {
        window.p2SawBuilding = document.body.innerText.includes(text);
        new MutationObserver(() => {
            if (document.body.innerText.includes(text)) window.p2SawBuilding = true;
        }).observe(document.body, {childList: true, subtree: true, characterData: true});
    }""", BUILDING)
    page.get_by_role("tab", name="Retrieve").click()
    status(page, "retrieve-status", "Metrics over all")
    assert page.evaluate("window.p2SawBuilding") is False


@pytest.mark.slow
def test_the_metrics_always_match_the_sliders(cold_page, cold_app, screenshot):
    from gradio_client import Client

    cold_app["release"]()  # SynthPed's generated images may be drawn (if the first-visit test has not)
    _, expected, _, _ = Client(cold_app["url"], verbose=False).predict(
        "synthped", 0, 2, 2, 2.0, False, 8, api_name="/retrieve")
    # the CLI's decimals: 2 for percentages, 4 for ID² (0.1030, not 0.103)
    expected = {method: [f"{v:.2f}" for v in values[:4]] + [f"{values[4]:.4f}"] for method, *values in expected["data"]}
    page = cold_page
    _open_retrieve(page)
    def read_log():
        return _table_log(cold_app["log"])

    done_before = len(read_log())
    set_slider(page, "k1", 1)
    # k1 = 1's (slow) metrics have started; k1 = 2 is asked for while they are computed
    wait_until(read_log, lambda lines: "start 1" in lines[done_before:], "started k1 = 1's metrics")
    set_slider(page, "k1", 2)
    # every table asked for has been computed, k1 = 2's after k1 = 1's started ...
    def all_done(lines):
        since = lines[lines.index("start 1", done_before):]
        return "start 2" in since and sum(x.startswith("start") for x in since) == sum(x.startswith("end") for x in since)

    lines = wait_until(read_log, all_done, "computed k1 = 2's metrics")
    # ... one event at a time for the page, so k1 = 2's came last ...
    assert [x for x in lines[done_before:] if x.startswith("end")][-1] == "end 2", lines
    # ... and the page ends on it, with the label of the same table, never on k1 = 1's
    page.locator("#metrics", has_text="Metrics over the whole query set (k1 2, k2 2, eta 2, no re-ranking)").wait_for()
    status(page, "retrieve-status", "Metrics over all")
    assert _table(page) == expected, lines
    assert page.locator("#k1 input[type=number]").input_value() == "2"
    assert "Query #0" in status(page, "retrieve-status", "Metrics over all")
    screenshot(page, "retrieve_metrics_after_k1_race_laptop")


def _highlighted(page):
    """Captions of the highlighted query thumbnails (none or one)."""
    return page.locator("#queries .thumbnail-item.selected").all_inner_texts()


def test_the_highlighted_query_is_the_one_ranked(open_app, tmp_path, screenshot):
    """A query clicked, then another gallery: #0 is ranked and highlighted, not the clicked
    position; a photo ranked highlights no query, and in a 1280 px window its four lists fit one
    row as a query's do."""
    page = open_app({"width": 1280, "height": 900})
    _open_retrieve(page)
    page.locator("#queries .thumbnail-item").nth(4).click()
    status(page, "retrieve-status", "Query #4", "Metrics over all")
    assert [t.strip() for t in _highlighted(page)] == ["#4"]
    upload(page, "#gallery-zip button.upload-container", market_zip(tmp_path / "cams.zip"))
    status(page, "retrieve-status", "cams.zip (Market-1501 style)", "Query #0", "Metrics over all")
    page.wait_for_function("() => document.querySelector('#queries .thumbnail-item.selected')?.innerText.trim() === '#0'")
    page.locator("#gallery-choice").get_by_label("SynthPed (synthetic, built in)").check()
    status(page, "retrieve-status", "SynthPed", "Query #0", "Metrics over all")
    assert [t.strip() for t in _highlighted(page)] == ["#0"]

    def rows():  # the distinct tops of the ranked-list columns
        return page.evaluate("() => new Set([...document.querySelectorAll('#rankings .p2-rank-col')]"
                             ".map(c => Math.round(c.getBoundingClientRect().top))).size")

    def query_width():  # the room the query takes beside the lists
        return page.evaluate("() => document.querySelector('#rankings .p2-query').getBoundingClientRect().width")

    assert rows() == 1
    width = query_width()
    upload(page, "#query-photo button.upload-container", EXAMPLE)
    status(page, "retrieve-status", "Ranked your photo", "Metrics over all")
    page.wait_for_function("() => !document.querySelector('#queries .thumbnail-item.selected')")
    # "identity unknown" under the photo wraps instead of widening it: the four lists (with +IPG)
    # get the room a query's four have, so at 1280 px they fit one row too
    assert rows() == 1 and query_width() == width
    screenshot(page, "retrieve_photo_1280")
    # the photo removed: the query ranked (#0) is highlighted again
    page.locator("#query-photo").get_by_role("button", name="Remove Image").click()
    status(page, "retrieve-status", "Query #0", "Metrics over all")
    page.wait_for_function("() => document.querySelector('#queries .thumbnail-item.selected')?.innerText.trim() === '#0'")
