"""Errors with fields: the library says what is wrong with which value, the CLI words it with the
option the user typed, from the fields rather than by rewriting the message."""

import json

import pytest

from pose2id import ArgumentError
from pose2id.cli import in_option_terms
from pose2id.poses import PoseError, pose_from_openpose


def test_argument_error_fields_and_message(tmp_path):
    error = ArgumentError("must be >= 1, got 0", argument="k1", value=0)
    assert (error.problem, error.argument, error.value, error.file) == ("must be >= 1, got 0", "k1", 0, None)
    assert str(error) == "k1 must be >= 1, got 0"  # about the argument alone: the problem reads after its name
    assert error.worded("--k1") == "--k1 must be >= 1, got 0"
    assert isinstance(error, ValueError)
    in_file = ArgumentError("'people' is empty", argument="pose", file=tmp_path / "a.json")
    assert str(in_file) == f"{tmp_path / 'a.json'}: 'people' is empty"
    assert in_file.worded("--poses") == f"--poses {tmp_path / 'a.json'}: 'people' is empty"
    # an option that already names the file does not name it twice
    assert in_file.worded(f"--poses {tmp_path / 'a.json'}") == f"--poses {tmp_path / 'a.json'}: 'people' is empty"
    assert str(ArgumentError("no data", label="JSON text", argument="pose")) == "JSON text: no data"


@pytest.mark.parametrize("text, problem", [
    ('{"people": []}', "'people' is empty"),
    ('{"people": [', "not valid JSON"),
    (json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 51}]}), "has 51 values"),
])
def test_pose_errors_carry_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "pose.json"
    path.write_text(text)
    with pytest.raises(PoseError) as caught:
        pose_from_openpose(path)
    error = caught.value
    assert error.argument == "pose" and error.file == str(path) and problem in error.problem
    assert str(path) not in error.problem  # the problem does not repeat where it is
    assert in_option_terms(error, "--poses", ("pose",)) == f"--poses {path}: {error.problem}"
    with pytest.raises(PoseError) as caught:  # the same JSON given as text: no file, a label
        pose_from_openpose(text)
    assert caught.value.file is None and caught.value.label == "JSON text"
    assert in_option_terms(caught.value, "--pose-json", ("pose",)) == f"--pose-json: {caught.value.problem}"


def test_errors_without_fields_are_put_after_the_option_as_they_are():
    # no rewriting of the text: a message that happens to start with an argument's name keeps it
    assert in_option_terms(ValueError("spec: /x"), "--dataset", ("spec",)) == "--dataset: spec: /x"
    assert in_option_terms(ValueError("something else"), "--dataset", ("spec",)) == "--dataset: something else"
    # a field-carrying error about another argument is not taken for this option's
    other = ArgumentError("must be >= 1", argument="k1")
    assert in_option_terms(other, "--dataset", ("spec",)) == "--dataset: k1 must be >= 1"


def test_dataset_errors_are_worded_from_their_fields(tmp_path):
    from pose2id.data import DatasetError, open_dataset

    with pytest.raises(DatasetError) as caught:
        open_dataset(str(tmp_path / "nope"))
    error = caught.value
    assert in_option_terms(error, "--dataset", ("spec",)) == f"--dataset {tmp_path / 'nope'}: {error.problem}"
    # about a file inside the dataset (no argument of its own): worded under the option too
    inside = DatasetError("cannot read this image (not image data)", file=tmp_path / "a.jpg")
    assert in_option_terms(inside, "--dataset", ("spec",)) == f"--dataset {tmp_path / 'a.jpg'}: {inside.problem}"
    # a folder extracted from a zip is worded under the zip's name
    shown = DatasetError("there are no image files", argument="root", file=tmp_path / "x", shown_as="cams.zip")
    assert str(shown) == "cams.zip: there are no image files"
    assert in_option_terms(shown, "--dataset", ("root",)) == "--dataset cams.zip: there are no image files"
    assert shown.told("elsewhere") == "elsewhere: there are no image files"


def test_the_shard_and_a_pose_folder_are_worded_from_their_fields(tmp_path):
    from pose2id.ipg.dataset_generation import parse_shard, read_pose_folder

    with pytest.raises(ArgumentError) as caught:
        parse_shard("3/2")
    assert (caught.value.argument, caught.value.value) == ("shard", "3/2")
    assert in_option_terms(caught.value, "--shard", ("shard",)).startswith("--shard must be K/N")
    (tmp_path / "1.json").write_text("{")
    with pytest.raises(ArgumentError) as caught:
        read_pose_folder(tmp_path)
    assert (caught.value.argument, caught.value.file) == ("folder", str(tmp_path / "1.json"))
    worded = in_option_terms(caught.value, "--poses", ("folder",))
    assert worded == f"--poses {tmp_path / '1.json'}: not valid OpenPose JSON"


def test_the_generate_command_words_a_bad_pose_file_with_its_option(tmp_path):
    from pose2id.ipg.cli import load_poses

    path = tmp_path / "empty.json"
    path.write_text('{"people": []}')
    with pytest.raises(ValueError) as caught:
        load_poses(str(path))
    message = str(caught.value)
    assert message.startswith(f"--poses {path}: ") and "'people' is empty" in message
    assert message.count(str(path)) == 1


def _failing_command(error):
    def run(args):
        raise error

    return run


@pytest.mark.parametrize("make_error, user", [
    (lambda torch: ValueError("--dataset: /x does not exist"), True),
    (lambda torch: FileNotFoundError("weights missing"), True),
    (lambda torch: RuntimeError("generate needs a CUDA GPU"), True),
    (lambda torch: torch.OutOfMemoryError("CUDA out of memory"), True),
    (lambda torch: torch.AcceleratorError("CUDA error: an illegal memory access was encountered"), False),
    (lambda torch: KeyError("a bug"), False),
])
def test_user_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys, make_error, user):
    import argparse

    import torch

    from pose2id import cli

    error = make_error(torch)
    monkeypatch.delenv("POSE2ID_DEBUG", raising=False)
    monkeypatch.setattr(cli.argparse.ArgumentParser, "parse_args",
                        lambda self, argv=None: argparse.Namespace(func=_failing_command(error)))
    if user:
        assert cli.main([]) == 1
        assert capsys.readouterr().err.strip() == f"error: {error}"
    else:
        with pytest.raises(type(error)):
            cli.main([])


def _eval_error(monkeypatch, capsys, tmp_path, features):
    """What ``pose2id eval`` prints for ``--features features`` on a tiny Market-1501 folder."""
    from test_data_market1501 import make_market

    from pose2id import cli

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("POSE2ID_DEBUG", raising=False)
    root = make_market(tmp_path / "Market", gen_for_distractors=False)
    assert cli.main(["eval", "--dataset", str(root), "--features", features]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1  # one line
    return err.strip()


def test_a_missing_features_file_is_worded_with_the_option_and_the_file_once(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "missing.npz"
    err = _eval_error(monkeypatch, capsys, tmp_path, f"npz:{missing}")
    assert err.startswith(f"error: --features {missing}: ")  # the option, then the file, from the fields
    assert err.count(str(missing)) == 1 and "features file" in err and "does not exist" in err
    assert "spec:" not in err


def test_weights_that_are_not_transreid_are_told_with_the_file_once(monkeypatch, capsys, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    err = _eval_error(monkeypatch, capsys, tmp_path, f"transreid:{junk}")
    assert err.startswith(f"error: --features {junk}: ") and "cannot be used as TransReID weights" in err
    assert err.count(str(junk)) == 1 and "path:" not in err
