"""pose2id.retrieval: the app's ranked lists and metrics as a library, on a small benchmark."""

import html
import re

import numpy as np
import pytest
from PIL import Image

from pose2id.data.market1501 import ReIDImage
from pose2id.experiments import Benchmark
from pose2id.retrieval import Match, metrics_rows, photo_features, photo_ranked_list, ranked_list, rankings


@pytest.fixture
def bench(tmp_path):
    """6 identities x 2 cameras: 6 queries (camera 0), 24 gallery images, D = 8, 3 generated each."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8))

    def images(split, count, camera):
        out = []
        for k in range(count):
            pid = 1 + k % 6
            cam = camera if camera is not None else k // 6 % 2
            path = tmp_path / f"{pid:04d}_c{cam + 1}s1_{split}{k:03d}.jpg"
            Image.new("RGB", (8, 16), (40 * pid, 30 * cam, 90)).save(path)
            out.append(ReIDImage(path, pid, cam, path.name))
        return out

    query, gallery = images("q", 6, 0), images("g", 24, None)
    qf = (centres[[im.pid - 1 for im in query]] + 0.8 * rng.normal(size=(6, 8))).astype(np.float32)
    gf = (centres[[im.pid - 1 for im in gallery]] + 0.8 * rng.normal(size=(24, 8))).astype(np.float32)
    q_gen = (qf[:, None] + 0.3 * rng.normal(size=(6, 3, 8))).astype(np.float32)
    g_gen = (gf[:, None] + 0.3 * rng.normal(size=(24, 3, 8))).astype(np.float32)
    return Benchmark(query=query, gallery=gallery, qf=qf, gf=gf, q_gen=q_gen, g_gen=g_gen)


PARAMS = dict(k1=2, k2=2, eta=1.0)


@pytest.mark.parametrize("rerank", [False, True])
def test_each_list_is_sorted_by_distance_with_correct_flags_and_market_protocol(bench, rerank):
    for method in bench.methods:
        for index in range(len(bench.query)):
            items = ranked_list(bench, index, method, **PARAMS, rerank=rerank, top_k=30)
            assert all(isinstance(m, Match) for m in items)
            distances = [m.distance for m in items]
            assert distances == sorted(distances)
            query = bench.query[index]
            for m in items:
                assert m.correct == (m.pid == query.pid)
                assert m.name == bench.gallery[m.index].name and m.pid == bench.gallery[m.index].pid
                # the query identity's images from the query's camera are never ranked
                assert not (m.pid == query.pid and bench.gallery[m.index].camid == query.camid)
            # every other gallery image is ranked: 24 minus the 2 same-identity same-camera ones
            assert len(items) == 22


def test_top_k_bounds_the_list_and_keeps_the_smallest_distances(bench):
    full = ranked_list(bench, 2, "+NFC", **PARAMS, top_k=30)
    top = ranked_list(bench, 2, "+NFC", **PARAMS, top_k=5)
    assert len(top) == 5
    # whatever the order within exact ties, the top 5 are the 5 smallest distances
    assert [m.distance for m in top] == [m.distance for m in full[:5]]


def test_lists_read_the_distances_the_metrics_computed(bench):
    # before the metrics: a row of distances from the features; after: the metrics' own numbers
    before = ranked_list(bench, 1, "+NFC+IPG", **PARAMS, top_k=30)
    dist = bench.distances("+NFC+IPG", **PARAMS)
    after = ranked_list(bench, 1, "+NFC+IPG", **PARAMS, top_k=30)
    assert [m.distance for m in after] == [float(dist[1, m.index]) for m in after]
    np.testing.assert_allclose([m.distance for m in before], [m.distance for m in after], atol=1e-5)


def test_ipg_with_eta_0_equals_base(bench):
    for index in range(len(bench.query)):
        base = {m.index: m.distance for m in ranked_list(bench, index, "Base", k1=2, k2=2, eta=0.0, top_k=30)}
        ipg = {m.index: m.distance for m in ranked_list(bench, index, "+IPG", k1=2, k2=2, eta=0.0, top_k=30)}
        assert base.keys() == ipg.keys()
        np.testing.assert_allclose([ipg[i] for i in base], list(base.values()), atol=1e-5)


def test_metrics_rows_are_numbers_per_method_and_agree_with_the_lists(bench):
    rows = metrics_rows(bench, **PARAMS)
    assert [row["method"] for row in rows] == list(bench.methods)
    for row in rows:
        for key in ("mAP", "rank1", "rank5", "rank10", "mINP"):
            assert isinstance(row[key], float) and 0 <= row[key] <= 1
        assert row["rank1"] <= row["rank5"] <= row["rank10"]
        assert isinstance(row["id2"], float)
    # Base distances of random features have no exact ties: rank-1 is the share of correct first hits
    first = [ranked_list(bench, i, "Base", **PARAMS, top_k=1)[0].correct for i in range(len(bench.query))]
    assert rows[0]["rank1"] == pytest.approx(np.mean(first))


def test_rankings_are_json_data_of_the_same_lists(bench):
    import json

    data = rankings(bench, 3, **PARAMS, top_k=4)
    json.dumps(data)
    query = bench.query[3]
    assert data["query"] == {"index": 3, "name": query.name, "pid": query.pid, "camera": query.camid + 1}
    assert data["parameters"]["top_k"] == 4
    assert list(data["methods"]) == list(bench.methods)
    for method, items in data["methods"].items():
        listed = ranked_list(bench, 3, method, **PARAMS, top_k=4)
        assert [item["rank"] for item in items] == [1, 2, 3, 4]
        assert sorted((i["distance"], i["name"], i["correct"]) for i in items) == \
            sorted((m.distance, m.name, m.correct) for m in listed)


def _shown(text):
    """method -> sorted (name, distance as shown) of the app's rankings HTML."""
    shown = {}
    for method, body in re.findall(r'data-method="([^"]+)">(.*?)</div></div>', text):
        cells = re.findall(r'title="([^"]+)"><img[^>]*><figcaption>\d+\. ([\d.]+)</figcaption>', body)
        shown[html.unescape(method)] = sorted((html.unescape(name), distance) for name, distance in cells)
    return shown


def test_the_apps_view_shows_the_librarys_lists(bench):
    from pose2id.demo.retrieve import metrics_rows as shown_rows
    from pose2id.demo.retrieve import rankings_html

    text = rankings_html(bench, 1, 2, 2, 1.0, False, 6)
    expected = {method: sorted((m.name, f"{m.distance:.3f}") for m in ranked_list(bench, 1, method, **PARAMS, top_k=6))
                for method in bench.methods}
    assert _shown(text) == expected
    rows = metrics_rows(bench, **PARAMS)
    assert shown_rows(bench, 2, 2, 1.0, False) == [
        [r["method"], round(100 * r["mAP"], 2), round(100 * r["rank1"], 2), round(100 * r["rank5"], 2),
         round(100 * r["rank10"], 2), round(r["id2"], 4)] for r in rows]


def test_a_photo_is_ranked_with_every_method_and_eta_0_ipg_is_base(bench):
    photo, generated = bench.qf[0] * 2, bench.q_gen[0]
    feats = photo_features(bench, photo, generated, k1=2, k2=2, eta=0.0)
    assert list(feats) == list(bench.methods)
    np.testing.assert_allclose(feats["+IPG"], feats["Base"], atol=1e-6)
    for method, feature in feats.items():
        assert feature.shape == (8,)
        np.testing.assert_allclose(np.linalg.norm(feature), 1, atol=1e-5)
        items = photo_ranked_list(bench, feature, method, k1=2, k2=2, eta=0.0, top_k=30)
        assert len(items) == 24 and not any(m.correct for m in items)
        assert [m.distance for m in items] == sorted(m.distance for m in items)
    assert list(photo_features(bench, photo, None, **PARAMS)) == ["Base", "+NFC"]


def test_bad_input_names_the_argument(bench):
    no_ipg = Benchmark(query=bench.query, gallery=bench.gallery, qf=bench.qf, gf=bench.gf, ipg_note="no generator")
    with pytest.raises(ValueError, match="query_index"):
        ranked_list(bench, 6, "Base", **PARAMS)
    with pytest.raises(ValueError, match="top_k"):
        ranked_list(bench, 0, "Base", **PARAMS, top_k=0)
    with pytest.raises(ValueError, match="method"):
        ranked_list(no_ipg, 0, "+IPG", **PARAMS)
    with pytest.raises(ValueError, match="feature"):
        photo_features(bench, np.zeros(5), None, **PARAMS)
    with pytest.raises(ValueError, match="gen_feats"):
        photo_features(bench, bench.qf[0], np.zeros((2, 5)), **PARAMS)
    with pytest.raises(ValueError, match="gen_feats"):
        photo_features(no_ipg, bench.qf[0], bench.q_gen[0], **PARAMS)
