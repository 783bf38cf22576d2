"""Files the app writes for a visitor to download (generated zips, exported poses, SynthPed
pictures): one folder per process, removed when the process exits, with at most ``keep``
recent folders of each kind, so a long-running public server does not fill its disk.

Gradio copies a returned file into its own cache (cleaned by the app's ``delete_cache``); the
file written here is only needed until then, and the few most recent ones are kept in case a
page asks for one again.
"""

import atexit
import itertools
import os
import shutil
import tempfile
import threading
from pathlib import Path

KEEP = 32
_lock = threading.Lock()
_root = None
_folders = {}  # kind -> list of folders, oldest first
_numbers = itertools.count()


def root():
    """This process's scratch folder (created on first use, removed at exit)."""
    global _root
    with _lock:
        if _root is None or not _root.is_dir():
            _root = Path(tempfile.mkdtemp(prefix=f"pose2id-app-{os.getpid()}-"))
            atexit.register(shutil.rmtree, _root, ignore_errors=True)
        return _root


def folder(kind, keep=KEEP):
    """A new empty folder for one file of ``kind`` ("generated", "pose", ...): the folders of
    that kind beyond the ``keep`` most recent are removed.

    Parameters
    ----------
    kind : a short name, used as the folder's prefix.
    keep : how many folders of ``kind`` to keep (this one included); None keeps all.
    """
    base = root()
    path = base / f"{kind}-{next(_numbers):06d}"
    path.mkdir()
    with _lock:
        folders = _folders.setdefault(kind, [])
        folders.append(path)
        while keep is not None and len(folders) > max(1, keep):
            shutil.rmtree(folders.pop(0), ignore_errors=True)
    return path
