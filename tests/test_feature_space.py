"""The Feature space tab's t-SNE: a map of the Base features, after features placed into it."""

import math
import re

import numpy as np
import pytest
from testkit import gaussian_identities

from pose2id.demo import feature_space as fs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _clusters():
    """(before, after, pids): 4 Gaussian identities of 15, float32; after = halfway to the centres."""
    return gaussian_identities(ids=4, per_id=15, dtype=np.float32)


def _dots(html):
    """Attributes of every <circle> in ``html`` as dicts of strings."""
    return [dict(re.findall(r'([\w-]+)="([^"]*)"', attrs)) for attrs in re.findall(r"<circle ([^>]*)>", html)]


# ---------------------------------------------------------------------------- maths on arrays
def test_fixed_tsne_is_deterministic():
    before, after, _ = _clusters()
    first = fs.fixed_tsne(before, after)
    second = fs.fixed_tsne(before.copy(), after.copy())
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_the_base_map_does_not_change_when_only_the_after_features_change():
    before, after, _ = _clusters()
    xy0, xy1 = fs.fixed_tsne(before, after)
    other0, other1 = fs.fixed_tsne(before, 0.5 * before + 0.5 * after)
    np.testing.assert_array_equal(xy0, other0)
    assert not np.allclose(xy1, other1)
    # a method that leaves the features as they were leaves every dot where it was
    same0, same1 = fs.fixed_tsne(before, before)
    np.testing.assert_array_equal(same0, same1)


def test_centralized_features_are_placed_closer_to_their_centre():
    before, after, pids = _clusters()
    xy0, xy1 = fs.fixed_tsne(before, after)
    assert fs.centroid_distance(xy1, pids) < fs.centroid_distance(xy0, pids)


def test_fixed_tsne_refuses_feature_sets_of_different_shapes():
    before, after, _ = _clusters()
    with pytest.raises(ValueError, match="before and after"):
        fs.fixed_tsne(before, after[:-1])


def test_centroid_distance_is_the_mean_over_points():
    points = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [0.0, 3.0], [0.0, 7.0]])
    # identity 1: centre (1, 0), distances 1, 1; identity 2: one point, 0; identity 3: centre (0, 5), 2, 2
    assert fs.centroid_distance(points, [1, 1, 2, 3, 3]) == pytest.approx(6 / 5)
    with pytest.raises(ValueError, match="pids has 4 entries"):
        fs.centroid_distance(points, [1, 1, 2, 3])


def test_fit_to_box_scales_both_axes_alike():
    points = np.array([[0.0, 0.0], [4.0, 1.0], [2.0, -1.0]])
    box = fs.fit_to_box(points, size=400, margin=10)
    assert box[:, 0].min() == pytest.approx(10) and box[:, 0].max() == pytest.approx(390)
    assert np.ptp(box[:, 1]) == pytest.approx(380 / 2)  # 2 wide in y, 4 in x: one scale for both
    assert box[:, 1].min() == pytest.approx(200 - 95)  # centred


# ---------------------------------------------------------------------------- the tab on SynthPed
@pytest.fixture(scope="module")
def synthped_map():
    """(html, bench) of the tab's default view: SynthPed, +NFC+IPG, k1 = k2 = 2, eta = 2, 250 points.
    Uses the default SynthPed cache (built once, about 30 s, as the app does)."""
    from pose2id.demo.retrieve import Galleries

    bench = Galleries().benchmark("synthped")
    return fs.tsne_html(bench, "+NFC+IPG", 2, 2, 2.0, 250), bench


@pytest.mark.slow
def test_one_map_whose_dots_carry_base_and_after_positions(synthped_map):
    html, _ = synthped_map
    assert html.count("<svg") == 1 and 'viewBox="0 0 400 400"' in html
    dots = _dots(html)
    assert 250 <= len(dots) < 290 and len(dots) == html.count("<img data-i=")  # whole identities
    for dot in dots:
        positions = [float(dot[key]) for key in ("data-x0", "data-y0", "data-x1", "data-y1")]
        assert all(math.isfinite(v) and 0 <= v <= 400 for v in positions), dot
        assert (dot["cx"], dot["cy"]) == (dot["data-x0"], dot["data-y0"])  # shown at Base first
    moved = [math.dist((float(d["data-x0"]), float(d["data-y0"])), (float(d["data-x1"]), float(d["data-y1"])))
             for d in dots]
    assert np.mean(moved) > 10 and np.mean(np.array(moved) > 1) > 0.9  # in map units of 400
    assert 'type="range"' in html and ">Base<" in html and ">+NFC+IPG<" in html and "Play" in html


@pytest.mark.slow
def test_the_centre_distances_in_the_text_are_those_of_the_drawn_dots(synthped_map):
    html, _ = synthped_map
    dots = _dots(html)
    pids = [int(d["data-pid"]) for d in dots]
    shown = [fs.centroid_distance([(float(d[f"data-x{s}"]), float(d[f"data-y{s}"])) for d in dots], pids)
             for s in (0, 1)]
    text = re.search(r"Mean distance to identity centre in this map: <b>([\d.]+)</b> \(Base\) → <b>([\d.]+)</b>", html)
    assert [float(v) for v in text.groups()] == pytest.approx(shown, abs=0.05)


@pytest.mark.slow
def test_nfc_ipg_brings_synthped_points_closer_to_their_identity_in_the_map(synthped_map):
    html, _ = synthped_map
    d0, d1 = (float(v) for v in re.search(r'data-d0="([\d.]+)" data-d1="([\d.]+)"', html).groups())
    assert d1 < d0


@pytest.mark.slow
def test_the_base_dots_are_the_same_whatever_method_and_parameters_are_shown(synthped_map):
    html, bench = synthped_map
    base = [(d["data-x0"], d["data-y0"]) for d in _dots(html)]
    for after, k1, k2, eta in (("+NFC", 2, 2, 2.0), ("+NFC+IPG", 5, 3, 0.5), ("+IPG", 2, 2, 1.0)):
        other = fs.tsne_html(bench, after, k1, k2, eta, 250)
        assert [(d["data-x0"], d["data-y0"]) for d in _dots(other)] == base, (after, k1, k2, eta)
        assert re.search(r'data-map="(\w+)"', other).group(1) != re.search(r'data-map="(\w+)"', html).group(1)
    # eta 0: +IPG leaves every feature where it was, so every dot stays where it is
    still = _dots(fs.tsne_html(bench, "+IPG", 2, 2, 0.0, 250))
    assert all((d["data-x1"], d["data-y1"]) == (d["data-x0"], d["data-y0"]) for d in still)


# ---------------------------------------------------------------------------- the /feature_space endpoint
@pytest.fixture
def market_space(tmp_path, monkeypatch):
    """A FeatureSpace on a tiny Market-1501 folder, with its own cache."""
    from tiny_market import market_folder

    from pose2id.demo.retrieve import Galleries

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    return fs.FeatureSpace(Galleries(data=str(market_folder(tmp_path / "market"))))


@pytest.mark.parametrize("after", [None, "", "+nfc", "Bogus", 3])
def test_feature_space_api_refuses_an_unknown_after_naming_it_and_the_allowed_values(market_space, after):
    import gradio as gr

    from pose2id.demo.retrieve import DATA

    with pytest.raises(gr.Error) as raised:
        market_space.plots(DATA, after, 2, 2, 2.0, 20)
    message = str(raised.value.message)
    assert message.startswith("after must be one of") and repr(after) in message
    allowed = re.search(r"\[(.*?)\]", message).group(1)
    assert [name.strip(" '") for name in allowed.split(",")] == ["Base", "+NFC", "+IPG", "+NFC+IPG"]


@pytest.mark.parametrize("key, k1, problem", [("bogus", 2, "gallery 'bogus' is not one of"),
                                              ("zip:/etc/passwd", 2, "is not one of"),
                                              (None, "two", "k1 must be a whole number")])
def test_feature_space_api_refuses_a_made_up_gallery_or_parameter_before_any_work(market_space, key, k1, problem):
    import gradio as gr

    from pose2id.demo.retrieve import DATA

    with pytest.raises(gr.Error) as raised:
        market_space.plots(DATA if key is None else key, "+NFC", k1, 2, 2.0, 20)
    assert problem in str(raised.value.message)
    assert market_space.galleries._locks == {}  # nothing opened, nothing kept for the made-up key


def test_feature_space_api_names_an_unopenable_gallery_without_the_server_path(tmp_path, monkeypatch):
    import gradio as gr

    from pose2id.demo.retrieve import DATA, Galleries

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(gr.Error) as raised:
        fs.FeatureSpace(Galleries(data=str(tmp_path / "empty"))).plots(DATA, "+NFC", 2, 2, 2.0, 20)
    assert raised.value.message and str(tmp_path) not in str(raised.value.message)


def test_feature_space_api_draws_an_allowed_after(market_space):
    from pose2id.demo.retrieve import DATA

    bars, tsne, message = market_space.plots(DATA, "+NFC", 2, 2, 2.0, 20)
    assert [trace.name.split(" ")[0] for trace in bars.data] == ["Base", "+NFC"] and "<svg" in tsne and "p2-ok" in message
