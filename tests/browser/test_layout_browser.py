"""Layout and legibility: on a phone nothing hides or overflows, labels do not cover content, and
the small text is large and dark enough to read on a projector."""

import pytest

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

_BOX = "s => { const r = document.querySelector(s).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"
# Top of the first visible text or box inside an element.
_CONTENT_TOP = """s => {
  const range = document.createRange();
  range.selectNodeContents(document.querySelector(s));
  return Math.min(...[...range.getClientRects()].filter(r => r.width > 0 && r.height > 0).map(r => r.top));
}"""

# The text colour of an element and the first opaque background behind it, as [r, g, b].
_COLOURS = """s => {
  const rgb = c => c.match(/[\\d.]+/g).map(Number);
  const e = document.querySelector(s);
  let back = e;
  while (back && (getComputedStyle(back).backgroundColor === 'rgba(0, 0, 0, 0)' || rgb(getComputedStyle(back).backgroundColor)[3] === 0))
    back = back.parentElement;
  return [rgb(getComputedStyle(e).color).slice(0, 3), back ? rgb(getComputedStyle(back).backgroundColor).slice(0, 3) : [255, 255, 255]];
}"""


def _contrast(foreground, background):
    """WCAG 2 contrast ratio of two sRGB colours."""
    def luminance(rgb):
        linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _font_px(page, selector):
    return float(page.evaluate(f"getComputedStyle(document.querySelector({selector!r})).fontSize").removesuffix("px"))


def _fits_sideways(page, selector):
    return page.evaluate(f"(e => e.scrollWidth <= e.clientWidth + 1)(document.querySelector({selector!r}))")


def test_phone_shows_every_tab_and_nothing_overflows(open_app, screenshot):
    page = open_app(PHONE)
    tabs = page.get_by_role("tab")
    assert tabs.all_inner_texts() == ["Generate", "Retrieve", "Feature space", "About"]
    for tab in tabs.all():
        left, top, right, bottom = tab.evaluate("t => { const r = t.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }")
        assert 0 <= left and right <= PHONE["width"] and bottom > top
    assert not page.get_by_label("More tabs").is_visible()

    # the examples start below their label and corner button, which do not overlap either
    label, first = page.evaluate(_BOX, "#examples > label"), page.evaluate(_BOX, "#examples .thumbnail-item")
    corner = page.evaluate(_BOX, "#examples .icon-button-wrapper")
    assert first[1] >= label[3] and first[1] >= corner[3] and corner[0] >= label[2]
    # the pose strip keeps its captions at their own size and scrolls sideways instead
    assert page.evaluate(_BOX, "#pose-strip img")[3] - page.evaluate(_BOX, "#pose-strip img")[1] >= 115  # its 120 px
    screenshot(page, "phone_generate")

    page.get_by_role("tab", name="Retrieve").click()
    page.locator("#rankings .p2-rank-col").first.wait_for()
    assert _fits_sideways(page, "#rankings .p2-rankings")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    for drop_zone in ("#gallery-zip", "#query-photo"):
        label = page.evaluate(_BOX, f"{drop_zone} label")
        assert page.evaluate(_CONTENT_TOP, f"{drop_zone} .upload-container .wrap") >= label[3]
    screenshot(page, "phone_retrieve")

    page.get_by_role("tab", name="Feature space").click()
    page.locator("#tsne-plot .p2-tsne-range").wait_for()
    panel = page.evaluate(_BOX, "#tsne-plot .p2-tsne-side")
    assert page.evaluate(_BOX, "#tsne-plot .p2-tsne-range span:last-child")[2] <= panel[2] + 1  # "+NFC+IPG" shown
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "phone_feature_space")


@pytest.mark.parametrize("screen", ["laptop", "projector"])
def test_small_text_is_readable(open_app, viewports, screen):
    page = open_app(viewports[screen])
    page.get_by_role("tab", name="Retrieve").click()
    page.locator("#rankings .p2-rank-col figcaption").first.wait_for()
    assert _font_px(page, "#rankings .p2-rank-col figcaption") >= (12 if screen == "laptop" else 15)
    assert _contrast(*page.evaluate(_COLOURS, "#rankings .p2-note")) >= 4.5

    page.get_by_role("tab", name="Feature space").click()
    page.locator("#tsne-plot .p2-tsne-note").wait_for()
    assert _font_px(page, "#tsne-plot .p2-tsne-note") >= 14
    assert _contrast(*page.evaluate(_COLOURS, "#tsne-plot .p2-tsne-note")) >= 4.5


def test_a_wide_screen_shows_the_app_centred(open_app):
    """On a 2560 px screen the 1800 px wide app sits in the middle, not against the left edge."""
    page = open_app({"width": 2560, "height": 1440})
    left, _, right, _ = page.evaluate(_BOX, ".gradio-container")
    assert right - left == 1800 and abs(left - (2560 - right)) <= 20


def _inside(page, selector, viewport):
    """Whether the element ``selector`` is wholly inside the viewport (no scrolling)."""
    left, top, right, bottom = page.evaluate(_BOX, selector)
    return bottom > top and 0 <= left and right <= viewport["width"] + 1 and 0 <= top and bottom <= viewport["height"] + 1


@pytest.mark.parametrize("screen", ["laptop", "projector"])
def test_the_generate_flow_is_on_one_screen(open_app, viewports, screenshot, screen):
    """Photo, poses, Generate, the forming preview and the results, without scrolling."""
    viewport = viewports[screen]
    page = open_app(viewport)
    for selector in ("#photo", "#pose-strip", "#pose-names", "#generate-button", "#preview", "#results"):
        assert _inside(page, selector, viewport), selector
    screenshot(page, f"generate_{screen}")


def test_the_identity_description_ends_before_the_dropdown_arrow(open_app):
    page = open_app()
    page.locator("#examples .thumbnail-item").last.click()  # a SynthPed person: its identity is described
    page.wait_for_function("document.querySelector('#identity input').value.length > 0")
    text_right = page.evaluate("(() => { const e = document.querySelector('#identity input'); const r = e.getBoundingClientRect();"
                               " return r.right - parseFloat(getComputedStyle(e).paddingRight); })()")
    arrow = page.evaluate(_BOX, "#identity .icon-wrap, #identity svg")
    assert text_right <= arrow[0] + 1


@pytest.mark.parametrize("screen", ["laptop", "projector"])
def test_retrieve_shows_whole_query_rows_and_ranked_lists_on_one_line(open_app, viewports, screenshot, screen):
    page = open_app(viewports[screen])
    page.get_by_role("tab", name="Retrieve").click()
    page.locator("#rankings .p2-rank-col .p2-hit").first.wait_for()
    # the query strip shows two whole rows and nothing of the third (no row cut in half)
    strip = page.evaluate(_BOX, "#queries .grid-wrap")
    rows = page.evaluate("""() => [...new Set([...document.querySelectorAll('#queries .thumbnail-item')]
        .map(e => { const r = e.getBoundingClientRect(); return JSON.stringify([Math.round(r.top), Math.round(r.bottom)]); }))]
        .map(JSON.parse).slice(0, 3)""")
    assert len(rows) == 3 and all(strip[1] - 1 <= top and bottom <= strip[3] + 1 for top, bottom in rows[:2]), (rows, strip)
    assert rows[2][0] >= strip[3] - 1, (rows, strip)
    if screen == "projector":
        # the 8 ranked thumbnails of every list on one line
        tops = page.evaluate("""() => [...document.querySelectorAll('#rankings .p2-rank-col')].map(col =>
            new Set([...col.querySelectorAll('.p2-hit img')].map(i => Math.round(i.getBoundingClientRect().top))).size)""")
        assert tops == [1, 1, 1, 1]
    screenshot(page, f"retrieve_{screen}")


@pytest.mark.parametrize("screen", ["laptop", "projector"])
def test_the_presenter_view_has_large_type_and_high_contrast(browser, app_url, viewports, screenshot, screen):
    """``?presenter``: body text and status text larger and black on their backgrounds."""
    context = browser.new_context(viewport=viewports[screen])
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(app_url)
        page.wait_for_selector("#pose-editor canvas.p2-canvas")
        page.get_by_role("tab", name="Retrieve").click()
        page.locator("#rankings .p2-rank-col figcaption").first.wait_for()
        normal = _font_px(page, "#retrieve-status .p2-status"), _font_px(page, "#rankings .p2-rank-col figcaption")
        page.goto(app_url + "?presenter")
        page.wait_for_selector("html.p2-presenter")
        page.get_by_role("tab", name="Retrieve").click()
        page.locator("#rankings .p2-rank-col figcaption").first.wait_for()
        page.locator("#retrieve-status .p2-status").wait_for()
        large = _font_px(page, "#retrieve-status .p2-status"), _font_px(page, "#rankings .p2-rank-col figcaption")
        assert large[0] >= 1.2 * normal[0] and large[1] >= 1.2 * normal[1] and large[1] >= 16
        assert _contrast(*page.evaluate(_COLOURS, "#retrieve-status .p2-status")) >= 12
        assert _contrast(*page.evaluate(_COLOURS, "#rankings .p2-note")) >= 12
        screenshot(page, f"presenter_retrieve_{screen}")
        page.get_by_role("tab", name="Feature space").click()
        page.locator("#tsne-plot .p2-tsne-note").wait_for()
        assert _contrast(*page.evaluate(_COLOURS, "#tsne-plot .p2-tsne-note")) >= 12
        screenshot(page, f"presenter_feature_space_{screen}")
    finally:
        context.close()
