"""Each generation writes its pictures and zip to files of its own, written whole, that a later
generation neither rewrites nor removes."""

import hashlib
import threading
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from pose2id.demo import compositing
from pose2id.demo.generate import ORACLE, SYNTHPED_EXAMPLES, Generate, Generations

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def generate(monkeypatch, tmp_path):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    return Generate()


def _files(output):
    preview, gallery, archive = output[:3]
    return [preview, *[path for path, _ in gallery], archive]


def _oracle(generate, seed=7):
    *_, last = generate.generate(None, ["1", "3"], False, None, ORACLE, SYNTHPED_EXAMPLES[0], 2, 3.5, seed, False,
                                 2.0, Generations())
    return last


def _digests(paths):
    return {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in paths}


def test_every_output_is_a_file_of_its_own_call(generate):
    first = _files(_oracle(generate))
    assert all(isinstance(path, str) and Path(path).is_file() for path in first)
    assert len(set(first)) == len(first)
    before = _digests(first)
    second = _files(_oracle(generate))  # the same inputs: the same content, other files
    assert not set(first) & set(second)
    assert _digests(first) == before  # the first call's files were not rewritten or removed
    with zipfile.ZipFile(first[-1]) as opened:
        assert opened.testzip() is None and "settings.json" in opened.namelist()


def test_concurrent_calls_write_separate_complete_files(generate):
    outputs, errors = [None] * 4, []

    def one(k):
        try:
            outputs[k] = _files(_oracle(generate))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(outputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    paths = [path for files in outputs for path in files]
    assert len(set(paths)) == len(paths)
    for files in outputs:
        with zipfile.ZipFile(files[-1]) as opened:
            assert opened.testzip() is None
    # the same inputs give the same bytes in every call's own files
    assert len({tuple(_digests(files).values()) for files in outputs}) == 1


def test_an_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    compositing.write_atomically(target, b"old")

    with pytest.raises(TypeError):
        compositing.write_atomically(target, object())  # fails while writing
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_refused_call_yields_its_status_then_raises(generate):
    stream = generate.generate(None, [], False, None, ORACLE, SYNTHPED_EXAMPLES[0], 2, 3.5, 7, False, 2.0,
                               Generations())
    first = next(stream)
    assert "no pose selected" in first[3]
    with pytest.raises(gr.Error, match="no pose selected"):
        next(stream)
