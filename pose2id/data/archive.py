"""Safe extraction of an uploaded dataset archive (zip).

An uploaded zip is untrusted: an entry may try to escape the target folder (``../x``, ``/etc/x``),
be a symbolic link, or decompress to far more than it claims (a zip bomb). Every entry is checked
before anything is written, and the bytes actually written are counted again while extracting.
"""

import stat
import zipfile
from pathlib import Path, PurePosixPath

from pose2id.data.market1501 import DatasetError, find_dataset_root

MAX_TOTAL_BYTES = 8 * 1024**3
MAX_FILES = 500_000
MAX_RATIO = 200
# Small entries (text, tiny images) compress well for honest reasons; only judge bigger ones.
RATIO_MIN_BYTES = 1024**2
_CHUNK = 1024**2


def _refused(zip_path, problem):
    """A DatasetError about the archive ``zip_path``."""
    return DatasetError(problem, argument="zip_path", file=zip_path)


def _check_entry_name(zip_path, name):
    """Reject names that would land outside the target folder."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and posix.parts[0].endswith(":")) or name.startswith(("/", "\\")):
        raise _refused(zip_path, f"archive entry {name!r} has an absolute path; refusing to extract it")
    if ".." in posix.parts:
        raise _refused(zip_path, f"archive entry {name!r} points outside the archive ('..'); refusing to extract it")


def _is_symlink(info):
    return stat.S_ISLNK(info.external_attr >> 16)


def open_archive(zip_path, dest, max_total_bytes=MAX_TOTAL_BYTES, max_files=MAX_FILES, max_ratio=MAX_RATIO):
    """Extract a dataset zip into ``dest`` safely and return the dataset root inside it.

    Parameters
    ----------
    zip_path : path of the .zip file.
    dest : folder to extract into (created if missing).
    max_total_bytes : limit on the total uncompressed size.
    max_files : limit on the number of entries.
    max_ratio : limit on uncompressed/compressed size of any entry larger than 1 MiB.

    Returns
    -------
    Path of the folder holding ``query/`` and ``bounding_box_test/`` if there is exactly one,
    else ``dest``.

    Raises
    ------
    DatasetError : broken archive, unsafe entry (absolute path, ``..``, symbolic link) or a
        limit exceeded; nothing is extracted in that case (except for a lying entry found while
        writing, after which the partial output is removed). Its ``file`` is ``zip_path``.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if not zip_path.is_file():
        raise _refused(zip_path, "does not exist or is not a file")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        # an OSError's own text names the path again: its reason alone
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise _refused(zip_path, f"not a readable zip archive ({reason})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > max_files:
            raise _refused(zip_path, f"the archive has {len(infos)} entries, more than the limit of {max_files}")
        total = 0
        for info in infos:
            _check_entry_name(zip_path, info.filename)
            if _is_symlink(info):
                raise _refused(zip_path, f"archive entry {info.filename!r} is a symbolic link; refusing to extract it")
            total += info.file_size
            if info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
                raise _refused(
                    zip_path,
                    f"archive entry {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                    f"(limit {max_ratio}x); this looks like a zip bomb")
        if total > max_total_bytes:
            raise _refused(zip_path, f"the archive expands to {total / 1024**2:.1f} MiB, more than the limit of "
                                     f"{max_total_bytes / 1024**2:.1f} MiB")
        dest.mkdir(parents=True, exist_ok=True)
        resolved_dest = dest.resolve()
        try:
            for info in infos:
                _extract_entry(zip_path, archive, info, resolved_dest)
        except zipfile.BadZipFile as error:
            raise _refused(zip_path, f"the archive is damaged ({error})") from None
    return find_dataset_root(dest)


def _extract_entry(zip_path, archive, info, dest):
    target = (dest / info.filename).resolve()
    if not target.is_relative_to(dest):
        raise _refused(zip_path, f"archive entry {info.filename!r} resolves outside the folder it is extracted to")
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with archive.open(info) as source, open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            # The header's size is what the limits were checked against; a stream that
            # yields more is lying about it.
            if written > info.file_size:
                out.close()
                target.unlink()
                raise _refused(zip_path, f"archive entry {info.filename!r} decompresses to more than its declared "
                                         f"{info.file_size} bytes; refusing to continue")
            out.write(chunk)
