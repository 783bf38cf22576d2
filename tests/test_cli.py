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


def test_generate_with_a_non_image_reference(tmp_path, capsys):
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    code = main(["generate", "--ref", str(not_an_image), "--out", str(tmp_path / "out"), "--cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "notes.txt" in err and "Traceback" not in err


def test_module_entry_point_starts_without_importing_diffusers():
    # `python -m pose2id --help` must stay quick: diffusers is imported only to generate.
    code = "import sys, runpy; sys.argv=['pose2id','--help']\n" \
           "try:\n    runpy.run_module('pose2id', run_name='__main__')\nexcept SystemExit: pass\n" \
           "assert 'diffusers' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
