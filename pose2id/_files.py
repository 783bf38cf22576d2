"""Writing a file so that a reader never sees it partly written."""

import os
import tempfile
from pathlib import Path


def replace_atomically(target, write, staging=None):
    """Make ``target`` by ``write(staging_path)`` and ``os.replace`` onto it: ``target`` is then
    whole or as it was, never partial, even if the process dies meanwhile.

    Parameters
    ----------
    target : str or Path; its folder is created if missing.
    write : callable taking the staging path (a Path) and writing the whole file there.
    staging : the staging path, in ``target``'s folder (a name a resumable job knows, so it can
        clear a stale one); default a new unique name, so concurrent writers of one target do
        not meet.

    Returns
    -------
    str, the target's path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if staging is None:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
        staging = name
    staging = Path(staging)
    try:
        write(staging)
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return str(target)
