"""``generate --dataset``: plan, shards, resume, atomic writes, bad input, launchers, then eval."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pose2id import cli as main_cli
from pose2id.data import open_dataset
from pose2id.ipg import cli, tiny_pipeline
from pose2id.ipg import dataset_generation as gen

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STEPS = "2"


def _photo(path, colour, rng):
    pixels = np.clip(np.asarray(colour) + rng.normal(0, 12, (128, 64, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def market(root, pids=3):
    """query/ one image per identity (camera 1), bounding_box_test/ one per identity (camera 2),
    a distractor (0000), a junk image (-1) and a corrupt file with a valid name."""
    rng = np.random.default_rng(0)
    for split in ("query", "bounding_box_test"):
        (root / split).mkdir(parents=True)
    for pid in range(1, pids + 1):
        colour = rng.integers(40, 215, 3)
        _photo(root / "query" / f"{pid:04d}_c1s1_000451_00.jpg", colour, rng)
        _photo(root / "bounding_box_test" / f"{pid:04d}_c2s1_000451_00.jpg", colour, rng)
    _photo(root / "bounding_box_test" / "0000_c3s1_000100_00.jpg", (128, 128, 128), rng)
    _photo(root / "bounding_box_test" / "-1_c1s1_000200_00.jpg", (20, 20, 20), rng)
    (root / "bounding_box_test" / f"{pids + 1:04d}_c2s1_000999_00.jpg").write_bytes(b"not a jpeg")
    return root


def pose_folder(path, shared_dir, count=2):
    """The first ``count`` of the authors' standard pose renders (1.jpg, 2.jpg, ...)."""
    path.mkdir()
    for k in range(1, count + 1):
        Image.open(shared_dir / "data" / "standard_pose_images" / f"{k}.jpg").save(path / f"{k}.png")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _generated(root):
    return [name for name in _files(root) if "_gen/" in name]


# ---------------------------------------------------------------------------- plan, shards, atomic writes
def test_plan_follows_the_published_layout(tmp_path):
    dataset = open_dataset(str(market(tmp_path / "m")))
    plan = gen.plan_dataset(dataset, ["1", "2"])
    assert [job.name for job in plan.jobs] == [f"{p:04d}_c1s1_000451_00.jpg" for p in (1, 2, 3)] + [
        f"{p:04d}_c2s1_000451_00.jpg" for p in (1, 2, 3)]
    root = tmp_path / "m"
    assert plan.jobs[0].targets == (root / "query_gen/pose1/0001_c1s1_000451_00.jpg",
                                    root / "query_gen/pose2/0001_c1s1_000451_00.jpg")
    assert plan.jobs[3].targets[1] == root / "bounding_box_test_gen/pose2/0001_c2s1_000451_00.jpg"
    # the published sets: real identities only; junk never; the corrupt file listed with its reason
    assert plan.distractors == 1
    assert [(p.name, why) for p, why in plan.unreadable] == [("0004_c2s1_000999_00.jpg", "not image data")]
    everyone = gen.plan_dataset(dataset, ["1"], splits=["gallery"], all_identities=True, out=tmp_path / "o")
    assert [job.pid for job in everyone.jobs] == [0, 1, 2, 3]
    assert everyone.gen_dirs == {"gallery": tmp_path / "o" / "bounding_box_test_gen"}


def test_a_set_in_bare_number_pose_folders_is_completed_in_those_folders(tmp_path):
    root = market(tmp_path / "m")
    for k in (1, 2):  # a downloaded set laid out as query_gen/1/NAME, query_gen/2/NAME, for one query only
        (root / "query_gen" / str(k)).mkdir(parents=True)
        shutil.copy(root / "query" / "0001_c1s1_000451_00.jpg", root / "query_gen" / str(k))
    plan = gen.plan_dataset(open_dataset(str(root)), ["1", "2"])
    query_job = next(job for job in plan.jobs if job.split == "query" and job.pid == 2)
    assert query_job.targets == (root / "query_gen/1/0002_c1s1_000451_00.jpg", root / "query_gen/2/0002_c1s1_000451_00.jpg")
    assert plan.jobs[0].missing() == ()  # what the set has is found, not drawn again
    gallery_job = next(job for job in plan.jobs if job.split == "gallery")
    assert gallery_job.targets[0].parent == root / "bounding_box_test_gen" / "pose1"  # a new set: poseK/
    gen.check_writable(plan)
    assert sorted(p.name for p in (root / "query_gen").iterdir()) == ["1", "2"]


def test_a_flat_folder_has_no_split_folders_to_write_next_to(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "flat").mkdir()
    for cam in (1, 2):
        _photo(tmp_path / "flat" / f"0001_c{cam}s1_000001_00.jpg", (100, 50, 50), rng)
    with pytest.raises(ValueError, match="query/"):
        gen.plan_dataset(open_dataset(str(tmp_path / "flat")), ["1"])


@pytest.mark.parametrize("shards,world", [(1, 1), (1, 2), (3, 1), (2, 3), (4, 2)])
def test_workers_cover_every_reference_once(shards, world):
    jobs = list(range(23))
    shares = [gen.worker_jobs(jobs, (k, shards), (r, world)) for k in range(shards) for r in range(world)]
    assert sorted(j for share in shares for j in share) == jobs
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_shards_run_with_different_numbers_of_processes_cover_every_reference_once():
    # one array task under torchrun --nproc_per_node 2, the other a plain run
    jobs = list(range(23))
    shares = [gen.worker_jobs(jobs, (0, 2), (r, 2)) for r in range(2)] + [gen.worker_jobs(jobs, (1, 2), (0, 1))]
    assert sorted(j for share in shares for j in share) == jobs
    # a shard's references do not depend on its number of processes
    for k in range(3):
        alone = gen.worker_jobs(jobs, (k, 3), (0, 1))
        assert sorted(j for r in range(4) for j in gen.worker_jobs(jobs, (k, 3), (r, 4))) == alone


@pytest.mark.parametrize("text", ["3/2", "0/4", "1/0", "2", "a/b", "1/2/3", ""])
def test_bad_shards_are_refused(text):
    with pytest.raises(ValueError, match="shard must be K/N"):
        gen.parse_shard(text)


def test_shard_counts_from_one():
    assert gen.parse_shard("1/4") == (0, 4) and gen.parse_shard("4/4") == (3, 4)


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "pose1" / "0001_c1s1_000451_00.jpg"

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        gen.write_atomic(Image.new("RGB", (8, 16), "red"), target)
    assert list(target.parent.iterdir()) == []
    monkeypatch.undo()
    gen.write_atomic(Image.new("RGB", (8, 16), "red"), target)
    assert list(target.parent.iterdir()) == [target]
    with Image.open(target) as written:
        assert written.format == "JPEG" and written.size == (8, 16)


def test_pose_folders(tmp_path, shared_dir):
    from pose2id.poses import load_standard_poses

    folder = pose_folder(tmp_path / "poses", shared_dir, count=2)
    (folder / "10.json").write_text(json.dumps(load_standard_poses()[2].to_openpose()))
    names, poses = gen.read_pose_folder(folder)
    assert names == ["1", "2", "10"]  # name order, numbers as numbers
    assert isinstance(poses[0], Image.Image) and poses[2].name == "10"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no pose files"):
        gen.read_pose_folder(tmp_path / "empty")


# ---------------------------------------------------------------------------- in-process generation
def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _same_image(a, b):
    """Two JPEG files of the same image up to float rounding: the pipeline's outputs agree to a
    grey level, and JPEG's re-quantisation turns that into a few levels at a few pixels."""
    difference = np.abs(_pixels(a) - _pixels(b))
    return difference.mean() < 0.5 and difference.max() <= 12


def test_batches_resume_and_skip_without_redoing(tmp_path, shared_dir):
    root = market(tmp_path / "m")
    names, poses = gen.read_pose_folder(pose_folder(tmp_path / "poses", shared_dir))
    plan = gen.plan_dataset(open_dataset(str(root)), names)
    pipeline = tiny_pipeline(seed=0)
    calls = []
    original = type(pipeline).__call__

    def counting(self, references, chosen, **kwargs):
        calls.append((len(references), len(chosen)))
        return original(self, references, chosen, **kwargs)

    type(pipeline).__call__, restore = counting, original
    try:
        written = []

        def crash_after_three(path):
            written.append(path)
            if len(written) == 3:
                raise RuntimeError("injected failure")

        with pytest.raises(RuntimeError, match="injected"):
            gen.generate_dataset(pipeline, plan, poses, steps=int(STEPS), batch_size=2, progress=False,
                                 on_written=crash_after_three)
        done_first = {p: p.stat().st_mtime_ns for p in written}
        assert len(_generated(root)) == 3
        # a temporary file left by a killed process is cleared by the next run
        stale = gen.part_path(plan.jobs[5].targets[0])
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"half an image")
        calls.clear()
        summary = gen.generate_dataset(pipeline, plan, poses, steps=int(STEPS), batch_size=2, progress=False)
        assert (summary.done, summary.skipped) == (9, 3)
        assert [why for _, why in summary.failed] == ["not image data"]  # the corrupt reference, listed
        # the half-done reference (one pose written) gets only its missing pose
        assert sorted(calls) == [(1, 1), (2, 2), (2, 2)]
        assert {p: p.stat().st_mtime_ns for p in written} == done_first
        assert not [p for p in _files(root) if p.endswith(gen.PART_SUFFIX)]
        assert len(_generated(root)) == 12

        again = gen.generate_dataset(pipeline, plan, poses, steps=int(STEPS), progress=False)
        assert (again.done, again.skipped) == (0, 12)

        # one reference per call, poses in another order: the same images (seeds per image)
        other = gen.plan_dataset(open_dataset(str(root)), names[::-1], out=tmp_path / "other")
        gen.generate_dataset(pipeline, other, poses[::-1], jobs=other.jobs[:3][::-1], steps=int(STEPS),
                             batch_size=1, progress=False)
    finally:
        type(pipeline).__call__ = restore
    for job, mirror in zip(plan.jobs[:3], other.jobs[:3]):
        assert job.name == mirror.name
        for k in range(2):
            assert _same_image(job.targets[k], mirror.targets[1 - k])
            assert not _same_image(job.targets[k], mirror.targets[k])  # the poses differ


# ---------------------------------------------------------------------------- CLI: bad input before the model
@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(cli, "load_pipeline", refuse)


def _run(argv, capsys):
    code = main_cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bad_input_is_reported_before_the_model_loads(tmp_path, shared_dir, capsys, no_model):
    root = market(tmp_path / "m")
    base = ["generate", "--cpu", "--steps", STEPS]
    (tmp_path / "nothing").mkdir()
    code, _, err = _run(base + ["--dataset", str(tmp_path / "nothing")], capsys)
    assert code == 1 and err.startswith("error: --dataset") and "no image files" in err

    (tmp_path / "badposes").mkdir()
    (tmp_path / "badposes" / "1.json").write_text("{not json")
    code, _, err = _run(base + ["--dataset", str(root), "--poses", str(tmp_path / "badposes")], capsys)
    assert code == 1 and "--poses" in err and "1.json" in err

    code, _, err = _run(base + ["--dataset", str(root), "--shard", "3/2"], capsys)
    assert code == 1 and "--shard" in err and "3/2" in err

    (tmp_path / "a-file").write_text("x")
    code, _, err = _run(base + ["--dataset", str(root), "--out", str(tmp_path / "a-file" / "gen")], capsys)
    assert code == 1 and "--out" in err and "cannot be written" in err

    code, _, err = _run(base + ["--dataset", str(root), "--seed", "-1", "--shard", "0/1"], capsys)
    assert code == 1 and "2 problems" in err and "--seed" in err and "--shard" in err

    code, _, err = _run(base + ["--dataset", str(root), "--model", str(tmp_path / "no-model")], capsys)
    assert code == 1 and "--model" in err and "no such folder" in err

    # a zip: its extracted copy in the cache is no place for images (replaced when the zip changes)
    archive = Path(shutil.make_archive(str(tmp_path / "market"), "zip", root.parent, root.name))
    code, _, err = _run(base + ["--dataset", f"market1501:{archive}"], capsys)
    assert code == 1 and "--dataset" in err and "--out" in err
    assert not (root / "query_gen").exists() or not _generated(root)


def test_ref_and_dataset_are_one_or_the_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main_cli.main(["generate", "--ref", "a.jpg", "--dataset", "x"])
    with pytest.raises(SystemExit):
        main_cli.main(["generate"])
    capsys.readouterr()
    Image.new("RGB", (64, 128)).save(tmp_path / "ref.png")
    code, _, err = _run(["generate", "--ref", str(tmp_path / "ref.png"), "--cpu"], capsys)
    assert code == 1 and "--out" in err


# ---------------------------------------------------------------------------- CLI end to end, launchers, eval
def _env(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(PROJECT_ROOT), POSE2ID_CACHE=str(tmp_path / "cache"))
    env.pop("POSE2ID_DEBUG", None)
    return env


def _launch(prefix, args, tmp_path):
    result = subprocess.run([*prefix, "-m", "pose2id", "generate", *args], cwd=PROJECT_ROOT, env=_env(tmp_path),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_cli_one_and_two_processes_write_the_same_images_then_eval(tmp_path, shared_dir, model_dir, capsys):
    root = market(tmp_path / "m")
    poses = pose_folder(tmp_path / "poses", shared_dir)
    common = ["--dataset", str(root), "--poses", str(poses), "--model", str(model_dir), "--cpu", "--steps", STEPS]

    # one process, in-process through the CLI, next to the split folders
    code, out, err = _run(["generate", *common], capsys)
    assert code == 0, err
    assert "done 12" in out and "failed 1" in out and "0004_c2s1_000999_00.jpg" in out
    assert "1 distractor" in out
    single = _generated(root)
    assert single == sorted(f"{split}_gen/pose{k}/{p:04d}_c{c}s1_000451_00.jpg"
                            for split, c in (("query", 1), ("bounding_box_test", 2)) for k in (1, 2) for p in (1, 2, 3))

    # two processes under torchrun (gloo on the CPU), and sharded again with --shard
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = _launch(torchrun, [*common, "--out", str(tmp_path / "two")], tmp_path)
    assert "worker 1/2" in result.stderr and "worker 2/2" in result.stderr
    for k in ("1", "2"):
        _launch([sys.executable], [*common, "--out", str(tmp_path / "shards"), "--shard", f"{k}/2"], tmp_path)
    for other in (tmp_path / "two", tmp_path / "shards"):
        assert _files(other) == single
        for name in single:
            assert _same_image(root / name, other / name), name

    # a second run next to the splits finds everything done
    code, out, _ = _run(["generate", *common], capsys)
    assert code == 0 and "done 0" in out and "skipped 12" in out

    code, out, err = _run(["eval", "--dataset", str(root), "--json", str(tmp_path / "eval.json")], capsys)
    assert code == 0, err
    payload = json.loads((tmp_path / "eval.json").read_text())
    assert [row["method"] for row in payload["rows"]] == ["Base", "+NFC", "+IPG", "+NFC+IPG"]
    assert payload["ipg_coverage"]["query"] == {"with_generated": 3, "total": 3}
    assert payload["ipg_coverage"]["gallery"] == {"with_generated": 3, "total": 4}  # the distractor has none


@pytest.mark.slow
def test_runs_unchanged_under_accelerate_launch(tmp_path, shared_dir, model_dir):
    """accelerate launch on the CPU starts one process (its multi-CPU mode needs MPI); on GPUs
    --num_processes N starts N processes through torchrun, which the test above covers."""
    root = market(tmp_path / "m", pids=2)
    poses = pose_folder(tmp_path / "poses", shared_dir, count=1)
    common = ["--dataset", str(root), "--poses", str(poses), "--model", str(model_dir), "--cpu", "--steps", STEPS]
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    result = _launch(accelerate, [*common, "--out", str(tmp_path / "acc")], tmp_path)
    assert "done 4" in result.stdout and "failed 1" in result.stdout
    assert _files(tmp_path / "acc") == sorted(f"{split}_gen/pose1/{p:04d}_c{c}s1_000451_00.jpg"
                                              for split, c in (("query", 1), ("bounding_box_test", 2))
                                              for p in (1, 2))
