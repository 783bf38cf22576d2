"""Where the app keeps the galleries visitors upload, and how much it accepts.

An uploaded zip is extracted into a folder of its own under the system's temporary folder
(outside every path the app serves from disk: Gradio serves the images the page shows from
its cache, inline only when they are images). The folder is removed when the upload is
refused, when it is evicted to make room for newer ones, when the sessions that uploaded it
have ended, and when the process exits.

Limits, set by the host through environment variables:

``POSE2ID_MAX_UPLOAD_MB``
    what one upload may be and expand to, in megabytes (default 1024);
``POSE2ID_MAX_UPLOADS``
    how many uploaded galleries are kept at once (default 8; the least recently opened goes).
"""

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

ENV_MAX_MB = "POSE2ID_MAX_UPLOAD_MB"
ENV_MAX_UPLOADS = "POSE2ID_MAX_UPLOADS"
DEFAULT_MAX_MB = 1024
DEFAULT_MAX_UPLOADS = 8


@dataclass(frozen=True)
class UploadLimits:
    """max_bytes: what one upload may be and expand to; max_galleries: uploads kept at once."""

    max_bytes: int = DEFAULT_MAX_MB * 2**20
    max_galleries: int = DEFAULT_MAX_UPLOADS


def _positive(name, default, kind):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"environment variable {name}={text!r} must be a positive "
                         f"{'whole number' if kind is int else 'number'}")
    return value


def limits():
    """The :class:`UploadLimits` the environment sets (ValueError naming a bad variable)."""
    return UploadLimits(max_bytes=int(_positive(ENV_MAX_MB, DEFAULT_MAX_MB, float) * 2**20),
                        max_galleries=_positive(ENV_MAX_UPLOADS, DEFAULT_MAX_UPLOADS, int))


class UploadFolders:
    """One folder per uploaded gallery, under a folder of this process in the system's
    temporary folder (removed at exit)."""

    def __init__(self, parent=None):
        self._parent = parent
        self._root = None
        self._lock = threading.Lock()

    @property
    def root(self):
        with self._lock:
            if self._root is None or not self._root.is_dir():
                if self._parent is not None:
                    Path(self._parent).mkdir(parents=True, exist_ok=True)
                self._root = Path(tempfile.mkdtemp(prefix=f"pose2id-uploads-{os.getpid()}-", dir=self._parent))
                atexit.register(shutil.rmtree, self._root, ignore_errors=True)
            return self._root

    def new(self):
        """A new empty folder for one upload."""
        return Path(tempfile.mkdtemp(prefix="gallery-", dir=self.root))

    @staticmethod
    def remove(folder):
        """Remove an upload's folder (nothing happens if it is already gone)."""
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def size(self):
        """Bytes of all upload folders now."""
        if self._root is None or not self._root.is_dir():
            return 0
        return sum(f.stat().st_size for f in self._root.rglob("*") if f.is_file())
