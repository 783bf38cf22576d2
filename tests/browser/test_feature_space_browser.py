"""The Feature space tab's t-SNE in the page: a Base map that stays put whatever method and
parameters are shown, and a slider, dots and numbers that agree after Play and a change of After."""

import math

import pytest

from pagetools import set_slider, wait_until

pytestmark = pytest.mark.browser

# every dot's Base position and shown position, the slider's value and the numbers beside it
_STATE = """() => {
  const root = document.querySelector('#tsne-plot .p2-tsne');
  const dots = [...root.querySelectorAll('circle[data-t]')].map(c => ({
    pid: c.dataset.pid, x0: +c.dataset.x0, y0: +c.dataset.y0, x1: +c.dataset.x1, y1: +c.dataset.y1,
    cx: +c.getAttribute('cx'), cy: +c.getAttribute('cy')}));
  return {map: root.dataset.map, dots, t: +root.querySelector('.p2-tsne-range input').value / 100,
          now: +root.querySelector('.p2-tsne-now').textContent, after: root.querySelector('.p2-tsne-range span:last-child').textContent};
}"""


def _spread(points, pids):
    groups = {}
    for point, pid in zip(points, pids):
        groups.setdefault(pid, []).append(point)
    total = []
    for members in groups.values():
        cx, cy = sum(p[0] for p in members) / len(members), sum(p[1] for p in members) / len(members)
        total += [math.dist(p, (cx, cy)) for p in members]
    return sum(total) / len(total)


def _agrees(state):
    """The dots are drawn where the slider says, and the number is their spread there."""
    t = state["t"]
    for d in state["dots"]:
        x, y = (1 - t) * d["x0"] + t * d["x1"], (1 - t) * d["y0"] + t * d["y1"]
        if abs(d["cx"] - x) > 0.02 or abs(d["cy"] - y) > 0.02:
            return False
    spread = _spread([(d["cx"], d["cy"]) for d in state["dots"]], [d["pid"] for d in state["dots"]])
    return abs(spread - state["now"]) <= 0.051


def _new_map(page, old):
    return wait_until(lambda: page.evaluate(_STATE), lambda s: s["map"] != old, "a new map drawn")


def _choose_after(page, name):
    page.locator("#after input").click()
    page.get_by_role("option", name=name, exact=True).click()


@pytest.fixture
def space(open_app):
    page = open_app()
    page.get_by_role("tab", name="Feature space").click()
    page.locator("#tsne-plot .p2-tsne circle").first.wait_for()
    return page


def test_the_base_map_stays_when_after_k1_k2_or_eta_change(space):
    page = space
    first = page.evaluate(_STATE)
    base = [(d["x0"], d["y0"]) for d in first["dots"]]
    _choose_after(page, "+NFC")
    state = _new_map(page, first["map"])
    assert state["after"] == "+NFC" and [(d["x0"], d["y0"]) for d in state["dots"]] == base
    page.get_by_role("tab", name="Retrieve").click()
    for elem_id, value in (("k1", 4), ("k2", 3), ("eta", 1)):
        set_slider(page, elem_id, value)
    page.get_by_role("tab", name="Feature space").click()
    moved = _new_map(page, state["map"])
    assert [(d["x0"], d["y0"]) for d in moved["dots"]] == base
    assert [(d["x1"], d["y1"]) for d in moved["dots"]] != [(d["x1"], d["y1"]) for d in state["dots"]]


def test_after_play_and_a_change_of_after_slider_dots_and_numbers_agree(space, screenshot):
    page = space
    first = page.evaluate(_STATE)
    page.locator("#tsne-plot .p2-tsne-play").click()
    played = wait_until(lambda: page.evaluate(_STATE), lambda s: s["t"] == 1.0, "the slider at the end after Play")
    assert _agrees(played)
    _choose_after(page, "+NFC")
    state = _new_map(page, first["map"])
    # the handle stays where Play left it, and the new map is drawn there, numbers included
    assert state["t"] == 1.0 and _agrees(state)
    assert any((d["cx"], d["cy"]) != (d["x0"], d["y0"]) for d in state["dots"])
    screenshot(page, "feature_space_after_play")
    # moving the slider by hand keeps them together
    page.locator("#tsne-plot .p2-tsne-range input").fill("40")
    assert _agrees(wait_until(lambda: page.evaluate(_STATE), lambda s: s["t"] == 0.4, "the slider at 40"))
