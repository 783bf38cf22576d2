"""The test suite writes its caches into a temporary folder, never into the user's ~/.cache.

An inner pytest run, with HOME pointed at an empty folder and no cache variables set, does what
the suite does to caches (extracts a dataset .zip into pose2id's default cache, loads
matplotlib's font cache, resolves the Hugging Face Hub cache); with tests/conftest.py loaded it
must leave HOME untouched, and without it the same run writes into HOME/.cache (so the check can
fail).
"""

import os
import subprocess
import sys
from pathlib import Path

# The variables tests/conftest.py points at its temporary folder.
CACHE_VARS = ("POSE2ID_CACHE", "HF_HOME", "MPLCONFIGDIR", "TORCH_HOME", "XDG_CACHE_HOME",
              "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
TESTS = Path(__file__).resolve().parent

INNER_TEST = '''
import zipfile
from pathlib import Path

from tiny_market import market_folder


def test_uses_the_default_caches(tmp_path):
    market_folder(tmp_path / "cams", pids=2, cams=2, with_gen=False)
    archive = tmp_path / "cams.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "cams").rglob("*.jpg")):
            zf.write(path, path.relative_to(tmp_path))
    from pose2id.data import open_dataset
    from pose2id.features import cache_root

    assert len(open_dataset(str(archive)).query) == 2
    assert any((cache_root() / "archives").iterdir())
    import matplotlib.font_manager  # noqa: F401  (writes its font list on first use)
    from huggingface_hub import constants

    Path(constants.HF_HUB_CACHE).mkdir(parents=True, exist_ok=True)
'''


def _inner_run(tmp_path, with_conftest):
    work = tmp_path / ("with" if with_conftest else "without")
    home = work / "home"
    home.mkdir(parents=True)
    (work / "pytest.ini").write_text("[pytest]\n")
    (work / "test_inner.py").write_text(INNER_TEST)
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"]
    if with_conftest:
        args[3:3] = ["-p", "conftest"]
    done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def test_this_run_caches_in_a_temporary_folder(test_cache):
    from huggingface_hub import constants

    from pose2id.features import cache_root

    home_cache = Path.home() / ".cache"
    for path in (cache_root(), Path(constants.HF_HUB_CACHE), Path(os.environ["MPLCONFIGDIR"])):
        assert path.is_relative_to(test_cache) and not path.is_relative_to(home_cache), path


def test_a_run_leaves_the_home_cache_untouched(tmp_path):
    assert _inner_run(tmp_path, with_conftest=True) == []
    written = _inner_run(tmp_path, with_conftest=False)
    assert ".cache/pose2id/archives" in written and ".cache/matplotlib" in written
