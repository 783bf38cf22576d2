"""Where the app runs: local, a CPU Space, ZeroGPU, a dedicated GPU Space (simulated with the
environment variables Hugging Face sets and a stand-in ``spaces`` module)."""

import sys
import types

import pytest

from pose2id.demo import generate as gen
from pose2id.demo import ipg_runner
from pose2id.demo.generate import IPG, ORACLE, Generate
from pose2id.demo.ipg_runner import CPU_SPACE, GPU_SPACE, LOCAL, ZERO_GPU, GenerateConfig, gpu_duration, hosting

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def space(monkeypatch, tmp_path):
    """Set up one kind of host: ``space(kind)``; CUDA is reported present on GPU kinds only."""
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))

    def make(kind):
        import torch

        for name in ("SPACE_ID", "SPACES_ZERO_GPU", "POSE2ID_CPU"):
            monkeypatch.delenv(name, raising=False)
        if kind != LOCAL:
            monkeypatch.setenv("SPACE_ID", "someone/pose2id")
        if kind == ZERO_GPU:
            monkeypatch.setenv("SPACES_ZERO_GPU", "true")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: kind == GPU_SPACE)
        return kind

    return make


class StandInSpaces(types.ModuleType):
    """A ``spaces`` module that records what ``spaces.GPU`` is asked for."""

    def __init__(self):
        super().__init__("spaces")
        self.asked = []

    def GPU(self, task=None, *, duration=None, size=None):  # noqa: N802  (the real name)
        def wrap(fn):
            def run(*args, **kwargs):
                self.asked.append(duration(*args, **kwargs) if callable(duration) else duration)
                yield from fn(*args, **kwargs)

            return run

        return wrap if task is None else wrap(task)


@pytest.mark.parametrize("kind", [LOCAL, CPU_SPACE, ZERO_GPU, GPU_SPACE])
def test_the_kind_of_host_is_told_from_the_environment(space, kind):
    expected = space(kind)
    assert hosting() == expected


def test_a_cpu_space_starts_with_the_oracle_and_says_why(space):
    space(CPU_SPACE)
    generate = Generate(GenerateConfig())
    note = generate.ipg_note()
    assert "CPU" in note and "POSE2ID_CPU=1" in note
    photo, pid, message = generate.start_state()
    assert pid is not None and photo and "SynthPed" in message


def test_a_cpu_space_runs_ipg_on_the_cpu_only_when_its_owner_asks(space, tmp_path):
    space(CPU_SPACE)
    generate = Generate(GenerateConfig(allow_cpu=True, ckpt_dir=None))
    assert "POSE2ID_CPU" not in generate.ipg_note()
    assert "on the CPU" in generate.generator_label()


@pytest.fixture
def weights_present(monkeypatch):
    """The official weights are in the Hub cache (as ``preload_from_hub`` puts them there)."""
    from pose2id.ipg import weights

    monkeypatch.setattr(weights, "resolve_files", lambda ckpt_dir=None, vae=None, local_files_only=None: {})


@pytest.mark.parametrize("kind", [ZERO_GPU, GPU_SPACE])
def test_gpu_spaces_offer_ipg_from_the_start(space, kind, weights_present):
    space(kind)
    generate = Generate(GenerateConfig())
    assert generate.ipg_note() == ""
    assert generate.start_state() == (None, None, "")
    assert "CPU" not in generate.generator_label()


@pytest.mark.parametrize("kind", [ZERO_GPU, GPU_SPACE])
def test_gpu_spaces_without_their_weights_start_with_the_oracle_and_say_why(space, kind, tmp_path):
    # a --ckpt-dir (POSE2ID_CKPT_DIR) folder without the weights cannot be helped by a download
    space(kind)
    (tmp_path / "empty").mkdir()
    generate = Generate(GenerateConfig(ckpt_dir=str(tmp_path / "empty")))
    assert "weights" in generate.ipg_note()
    assert "preload_from_hub" in generate.ipg_note()  # a Space fetches them as it is built
    photo, pid, _ = generate.start_state()
    assert photo and pid in gen.SYNTHPED_EXAMPLES


def test_a_failed_preload_is_told_in_the_log(space, monkeypatch, caplog):
    space(ZERO_GPU)

    def unavailable(config):
        raise ipg_runner.IPGUnavailable("IPG weights are missing")

    monkeypatch.setattr(ipg_runner, "load_pipeline", unavailable)
    with caplog.at_level("WARNING"):
        assert ipg_runner.preload_pipeline(GenerateConfig()) is None
    assert any("IPG weights are missing" in record.getMessage() for record in caplog.records)


def test_zero_gpu_asks_for_a_time_slot_sized_by_steps_and_poses(space, monkeypatch):
    space(ZERO_GPU)
    stand_in = StandInSpaces()
    monkeypatch.setitem(sys.modules, "spaces", stand_in)
    generate = Generate(GenerateConfig(test_pipeline=True))

    photo = gen.Path(gen.__file__).resolve().parents[2] / "assets" / "examples"
    example = str(sorted(photo.glob("*.jpg"))[0])

    def run_with(steps, poses):
        *_, last = generate.generate(example, poses, False, None, IPG, None, steps, 3.5, 1, False, 2.0)
        return last

    first = run_with(2, ["1"])
    second = run_with(3, ["1", "2", "3"])
    assert "image(s)" in first[3] and "image(s)" in second[3]
    assert len(stand_in.asked) == 2
    assert stand_in.asked[0] == gpu_duration(None, None, [0], 2, 3.5, 1)
    assert stand_in.asked[1] == gpu_duration(None, None, [0, 0, 0], 3, 3.5, 1)


def test_gpu_duration_grows_with_the_work_within_bounds():
    short = gpu_duration(None, None, [0], 1, 3.5, 1)
    assert short == ipg_runner.GPU_SECONDS_MIN
    assert gpu_duration(None, None, [0] * 4, 20, 3.5, 1) < gpu_duration(None, None, [0] * 8, 50, 3.5, 1)
    assert gpu_duration(None, None, [0] * 9, 200, 3.5, 1) == ipg_runner.GPU_SECONDS_MAX


def test_zero_gpu_loads_the_pipeline_at_start_up_and_moves_it_to_cuda(space, monkeypatch):
    space(ZERO_GPU)
    moves = []

    class Pipeline:
        def to(self, device, dtype=None):
            moves.append(device)
            return self

    monkeypatch.setattr(ipg_runner, "load_pipeline", lambda config: Pipeline())
    assert isinstance(ipg_runner.preload_pipeline(GenerateConfig()), Pipeline)
    assert moves == ["cuda"]


def test_preloading_where_ipg_cannot_run_leaves_the_tab_to_say_why(space, monkeypatch):
    space(LOCAL)

    def unavailable(config):
        raise ipg_runner.IPGUnavailable("IPG needs a CUDA GPU")

    monkeypatch.setattr(ipg_runner, "load_pipeline", unavailable)
    assert ipg_runner.preload_pipeline(GenerateConfig()) is None


def test_the_oracle_needs_no_gpu_slot(space, monkeypatch):
    space(ZERO_GPU)
    stand_in = StandInSpaces()
    monkeypatch.setitem(sys.modules, "spaces", stand_in)
    generate = Generate(GenerateConfig(test_pipeline=True))
    pid = gen.SYNTHPED_EXAMPLES[0]
    *_, last = generate.generate(None, ["1"], False, None, ORACLE, pid, 2, 3.5, 1, False, 2.0)
    assert "SynthPed oracle" in last[3] and stand_in.asked == []


@pytest.mark.parametrize("value, zero_gpu", [("true", True), ("false", False)])
def test_app_imports_spaces_first_exactly_when_the_host_is_zero_gpu(value, zero_gpu):
    # ZeroGPU's `spaces` must be imported before torch: app.py does so where hosting() says ZeroGPU
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys, types; sys.modules['spaces'] = types.ModuleType('spaces')\n"
            "import app\n"
            "from pose2id.demo.ipg_runner import ZERO_GPU, hosting\n"
            "print('spaces' in vars(app), hosting() == ZERO_GPU)")
    env = {**os.environ, "SPACES_ZERO_GPU": value}
    env.pop("SPACE_ID", None)
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-2:] == [str(zero_gpu), str(zero_gpu)]


@pytest.mark.parametrize("value, zero_gpu", [("true", True), ("1", True), ("", False), ("0", False), ("false", False),
                                             ("No", False), ("off", False)])
def test_zero_gpu_is_read_from_its_variable_as_the_apps_switches_are(monkeypatch, value, zero_gpu):
    monkeypatch.setenv("SPACES_ZERO_GPU", value)
    assert ipg_runner.on_zero_gpu() is zero_gpu
