"""`python -m pose2id`: the commands are wired, and user errors read as one message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pose2id.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("eval", "sweep", "generate", "download"):
        assert command in out


def test_missing_dataset_is_one_line_not_a_traceback(tmp_path, capsys):
    code = main(["eval", "--dataset", f"market1501:{tmp_path / 'nowhere'}"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and "does not exist" in err
    assert "Traceback" not in err


def _error(argv, capsys, code=1):
    """What the user sees on stderr when ``argv`` fails with exit status ``code``."""
    try:
        assert main(argv) == code
    except SystemExit as exit_info:  # argparse refuses a value before any command runs
        assert exit_info.code == code
    return capsys.readouterr().err


def test_unknown_device_is_refused_with_the_choices(capsys):
    err = _error(["eval", "--device", "banana"], capsys, code=2)
    assert "argument --device: unknown device 'banana'; choose cpu, cuda, cuda:N (the GPU numbered N) or mps" in err


def test_cuda_without_cuda_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = _error(["eval", "--device", "cuda", "--dataset", str(tmp_path / "nowhere")], capsys)
    assert err == ("error: --device cuda: CUDA is not available on this machine (no NVIDIA GPU, or a CPU-only torch "
                   "build); use --device cpu\n")


@pytest.mark.parametrize("command", ["eval", "sweep"])
@pytest.mark.parametrize("option", ["--k1", "--k2"])
def test_k_must_be_positive_in_the_users_words(command, option, capsys):
    err = _error([command, option, "0"], capsys, code=2)
    assert f"argument {option}: {option[2:]} must be a positive integer, got 0" in err
    assert "_positive_int" not in err and "invalid" not in err


def test_eta_must_not_be_negative(capsys):
    assert "argument --eta: eta must be a number >= 0, got -1" in _error(["eval", "--eta", "-1"], capsys, code=2)


def test_dataset_errors_name_the_option_not_the_library_argument(tmp_path, capsys):
    broken = tmp_path / "broken.zip"
    broken.write_text("not a zip")
    (tmp_path / "photos").mkdir()
    # the option, then the path the user typed, then what is wrong with it (from the error's fields)
    expected = {
        str(tmp_path / "nowhere"): (f"error: --dataset {tmp_path / 'nowhere'}: ", "does not exist"),
        str(broken): (f"error: --dataset {broken}: ", "not a readable zip archive"),
        str(tmp_path / "photos"): (f"error: --dataset {tmp_path / 'photos'}: ", "no image files"),
        "synthped:x": ("error: --dataset must be 'synthped:SEED'", "got 'synthped:x'"),
    }
    for dataset, (start, problem) in expected.items():
        err = _error(["eval", "--dataset", dataset], capsys)
        assert err.startswith(start) and problem in err, err
        assert err.count("\n") == 1 and err.count(dataset) == 1, err
        assert not any(prefix in err for prefix in ("spec", "zip_path", "root:")), err


def test_features_errors_name_the_option(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("pose2id.data.open_dataset", lambda spec, progress=None: None)  # no dataset needed
    err = _error(["eval", "--features", "bogus"], capsys)
    assert err.startswith("error: --features must be 'handcrafted', 'transreid:PATH', 'transreid-global:PATH', "
                          "'vit' or 'vit:PATH', got 'bogus'")
    err = _error(["eval", "--features", "transreid"], capsys)
    assert err.startswith("error: --features 'transreid' ") and "checkpoint" in err and "spec" not in err


def test_json_folder_is_checked_before_the_benchmark(tmp_path, capsys):
    err = _error(["eval", "--dataset", str(tmp_path / "nowhere"), "--json", str(tmp_path / "no" / "t.json")], capsys)
    assert err == f"error: --json {tmp_path / 'no' / 't.json'}: the folder {tmp_path / 'no'} does not exist\n"


def test_sweep_of_base_says_there_is_nothing_to_tune(tmp_path, monkeypatch, capsys):
    from test_data_market1501 import make_market

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    assert main(["sweep", "--method", "Base", "--dataset", str(make_market(tmp_path / "Market"))]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("Base has no k1, k2 or eta to sweep: mAP ") and not last.endswith("at")


def test_help_texts(capsys):
    for command in ("eval", "sweep"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "'vit:PATH'" in out and "cpu, cuda, cuda:N or mps" in out
    for command, words in (("generate", "Draw the person of a reference photo in new poses"),
                           ("download", "Download the five Pose2ID weight files")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert words in " ".join(capsys.readouterr().out.split())


def test_generate_with_a_non_image_reference(tmp_path, capsys):
    not_an_image = tmp_path / "fake.jpg"
    not_an_image.write_text("hello")
    code = main(["generate", "--ref", str(not_an_image), "--out", str(tmp_path / "out"), "--cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"error: --ref {not_an_image}: not a readable image; give a JPEG, PNG or WebP photo\n"


def test_module_entry_point_starts_without_importing_diffusers():
    # `python -m pose2id --help` must stay quick: diffusers is imported only to generate.
    code = "import sys, runpy; sys.argv=['pose2id','--help']\n" \
           "try:\n    runpy.run_module('pose2id', run_name='__main__')\nexcept SystemExit: pass\n" \
           "assert 'diffusers' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("argv", [["eval", "--k1", "1000"], ["sweep", "--k2", "2", "999"]])
def test_k_too_large_for_the_dataset_is_refused_before_its_features(argv, tmp_path, capsys, monkeypatch):
    from tiny_market import market_folder

    import pose2id.experiments as experiments

    monkeypatch.setattr(experiments, "prepare_benchmark", lambda *a, **k: pytest.fail("features were computed"))
    market = market_folder(tmp_path / "market")
    err = _error([*argv, "--dataset", str(market)], capsys)
    value = argv[-1]
    assert err.startswith(f"error: --k{argv[1][-1]} {value} is too large for ") and "at most" in err
    assert "queries and" in err and "gallery images" in err
