"""The fixed t-SNE frame: reference features embedded once, other features placed into it."""

import numpy as np
import pytest
from testkit import gaussian_identities

from pose2id import embedding


def _clusters():
    """(before, after, pids): 5 Gaussian identities of 12; after = halfway to the centres."""
    return gaussian_identities(ids=5, per_id=12)


def _spread(xy, pids):
    """Mean distance of each point to its identity's centroid."""
    centres = {pid: xy[pids == pid].mean(0) for pid in np.unique(pids)}
    return float(np.mean([np.linalg.norm(p - centres[pid]) for p, pid in zip(xy, pids)]))


@pytest.fixture(scope="module")
def fixed():
    before, after, pids = _clusters()
    return embedding.embed(before), before, after, pids


def test_the_map_is_made_once_per_reference_set(fixed):
    fixed_map, before, _, _ = fixed
    assert embedding.embed(before.copy()) is fixed_map  # cached by the features, not the array object
    assert fixed_map.xy.shape == (len(before), 2) and np.isfinite(fixed_map.xy).all()
    assert not fixed_map.xy.flags.writeable


def test_placing_other_features_does_not_change_the_reference_map(fixed):
    fixed_map, before, after, _ = fixed
    xy = np.array(fixed_map.xy)
    fixed_map.moved(after)
    fixed_map.moved(0.2 * before + 0.8 * after)
    np.testing.assert_array_equal(fixed_map.xy, xy)
    np.testing.assert_array_equal(embedding.embed(before).xy, xy)


def test_an_unchanged_feature_stays_where_it_is(fixed):
    fixed_map, before, after, _ = fixed
    mixed = np.array(before)
    mixed[::2] = after[::2]  # every other feature changed, the rest as they were
    moved = fixed_map.moved(mixed)
    np.testing.assert_array_equal(moved[1::2], fixed_map.xy[1::2])
    assert np.all(np.linalg.norm(moved[::2] - fixed_map.xy[::2], axis=1) > 0)
    np.testing.assert_array_equal(fixed_map.moved(before), fixed_map.xy)


def test_features_moved_towards_their_identity_come_closer_together_in_the_map(fixed):
    fixed_map, before, after, pids = fixed
    assert _spread(fixed_map.moved(after), pids) < 0.8 * _spread(fixed_map.xy, pids)


def test_a_point_is_placed_in_the_neighbourhood_its_feature_is_in(fixed):
    fixed_map, before, _, pids = fixed
    # the feature of an image of identity 1 replaced by one of identity 3's: its dot goes to identity 3
    i, j = int(np.flatnonzero(pids == 1)[0]), int(np.flatnonzero(pids == 3)[0])
    swapped = np.array(before)
    swapped[i] = before[j]
    xy = fixed_map.moved(swapped)
    centre = {pid: fixed_map.xy[pids == pid].mean(0) for pid in (1, 3)}
    assert np.linalg.norm(xy[i] - centre[3]) < np.linalg.norm(xy[i] - centre[1])


def test_affinities_are_distributions_over_the_nearest_reference_points(fixed):
    fixed_map, before, _, _ = fixed
    p = fixed_map.affinities(before[:5])
    assert p.shape == (5, len(before))
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.all((p > 0).sum(1) <= round(3 * fixed_map.perplexity))
    # the perplexity of each row is the map's
    nz = np.where(p > 0, p, 1.0)
    np.testing.assert_allclose(np.exp(-(p * np.log(nz)).sum(1)), fixed_map.perplexity, rtol=1e-3)


def test_placement_is_deterministic(fixed):
    fixed_map, _, after, _ = fixed
    np.testing.assert_array_equal(fixed_map.place(after[:7]), fixed_map.place(after[:7]))


def test_small_inputs_skip_pca():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(20, 6))
    fixed_map = embedding.embed(feats)
    assert fixed_map.components is None and fixed_map.perplexity == embedding.perplexity_for(20)
    assert fixed_map.moved(feats + 0.1).shape == (20, 2)


@pytest.mark.parametrize("bad, word", [
    (np.zeros((3, 8)), "at least 4 rows"),
    (np.zeros(8), "(N, D)"),
    (np.full((6, 4), np.nan), "NaN"),
])
def test_bad_reference_features_are_refused_by_name(bad, word):
    with pytest.raises(ValueError, match="feats") as error:
        embedding.embed(bad)
    assert word in str(error.value)


def test_moved_features_must_match_the_reference_rows(fixed):
    fixed_map, before, _, _ = fixed
    with pytest.raises(ValueError, match="rows"):
        fixed_map.moved(before[:-1])
    with pytest.raises(ValueError, match="feature dimension"):
        fixed_map.place(before[:, :-1])
