import os
import shutil
import tempfile
from pathlib import Path

# Set before anything imports huggingface_hub, matplotlib or gradio (they read these once).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# Every cache the code and its libraries write goes to one temporary folder for the run, never
# to the user's ~/.cache: pose2id's own (datasets, extracted archives, features), the Hugging Face
# Hub, matplotlib, torch, and anything else that follows XDG. Subprocesses (the app in the
# browser tests) inherit them. Individual tests still point POSE2ID_CACHE at their own tmp_path
# where they need an empty cache.
TEST_CACHE = Path(tempfile.mkdtemp(prefix="pose2id-test-cache-"))
CACHE_ENV = {
    "POSE2ID_CACHE": TEST_CACHE / "pose2id",
    "HF_HOME": TEST_CACHE / "huggingface",
    "MPLCONFIGDIR": TEST_CACHE / "matplotlib",
    "TORCH_HOME": TEST_CACHE / "torch",
    "XDG_CACHE_HOME": TEST_CACHE / "xdg",
}
for _name, _path in CACHE_ENV.items():
    os.environ[_name] = str(_path)
for _name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):  # would override HF_HOME
    os.environ.pop(_name, None)

import pytest  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def test_cache():
    """The run's temporary cache folder (see ``CACHE_ENV``); removed when the run ends."""
    yield TEST_CACHE
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _caches_stay_temporary(monkeypatch):
    # A test may point a cache at its own tmp_path (monkeypatch restores it afterwards); one that
    # removes the variable would send the next tests to ~/.cache, so every test starts with them.
    for name, path in CACHE_ENV.items():
        if name not in os.environ:
            monkeypatch.setenv(name, str(path))


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.fail(f"shared reference material not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="module")
def tiny():
    """The tiny random-weight IPG pipeline (seed 0), one per test module (tests may reconfigure it)."""
    from pose2id.ipg import tiny_pipeline

    return tiny_pipeline(seed=0)
