"""The app's gallery registry: SynthPed ranks from its originals first while its generated images
are made in the background, and the full benchmark then replaces the partial one."""

import numpy as np
import pytest

from pose2id.demo.galleries import ARRIVING, SYNTHPED, Galleries


@pytest.fixture
def galleries(monkeypatch, tmp_path):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))  # a fresh cache: SynthPed is drawn
    return Galleries()


def test_synthped_ranks_from_its_originals_first_then_completes(galleries):
    partial = galleries.benchmark(SYNTHPED, partial=True)
    assert galleries.is_ready(SYNTHPED)
    assert not partial.has_ipg and list(partial.methods) == ["Base", "+NFC"] and partial.ipg_note == ARRIVING

    full = galleries.benchmark(SYNTHPED)  # waits for the background work
    assert full.has_ipg and galleries.is_complete(SYNTHPED) and galleries.completion_error(SYNTHPED) is None
    assert galleries.benchmark(SYNTHPED, partial=True) is full  # the partial one is gone
    # the same originals, the same features: Base and +NFC do not change when +IPG arrives
    assert [im.name for im in partial.query] == [im.name for im in full.query]
    np.testing.assert_array_equal(partial.qf, full.qf)
    np.testing.assert_array_equal(partial.gf, full.gf)
    for method in ("Base", "+NFC"):
        before, after = partial.evaluate(method, k1=2, k2=2), full.evaluate(method, k1=2, k2=2)
        assert before.mAP == after.mAP
        np.testing.assert_array_equal(before.cmc, after.cmc)


def test_a_failure_of_the_generated_images_keeps_the_originals_ranked(galleries, monkeypatch):
    prepare = galleries._prepare

    def failing(key, progress, generated=True):
        if generated:
            raise OSError("disk full")
        return prepare(key, progress, generated=False)

    monkeypatch.setattr(galleries, "_prepare", failing)
    partial = galleries.benchmark(SYNTHPED, partial=True)
    with pytest.raises(RuntimeError, match="disk full"):
        galleries.benchmark(SYNTHPED)  # waits for the background work, which failed
    assert not galleries.is_complete(SYNTHPED) and "disk full" in galleries.completion_error(SYNTHPED)
    assert galleries.benchmark(SYNTHPED, partial=True) is partial and "disk full" in partial.ipg_note
