"""Files that survive a crash whole (written beside their place, synced, then renamed or linked in), and files read
or written only if they are regular files."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO, Any


def fsync_folder(folder: Path) -> None:
    """The folder's entries on disk (a new link in it), where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes) -> None:
    """``path`` holds ``data``, whole, on disk: a crash at any point leaves the old file or the new, never a part."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
    fsync_folder(path.parent)


def read_text_file(path: Path) -> str:
    """The UTF-8 text of the regular file ``path``. OSError for anything else, before it is opened: a FIFO (or a
    device) would block the read for as long as nothing writes to it, a folder is no file; UnicodeDecodeError for
    bytes that are not UTF-8."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
        raise OSError(kind)  # the caller names the file
    with path.open(encoding="utf-8", newline="") as f:  # as stored: a bare carriage return is not made a newline
        return f.read()


def open_regular(path: Path, mode: str) -> IO[Any]:
    """``path`` opened (``w`` or ``ab``, created if need be) only if it is a regular file: a FIFO in its place
    held ``open`` for good, waiting for a reader, and a signal could not end the wait (Python retries the call).
    Opened without blocking, then checked; OSError (``ENXIO`` for a FIFO with no reader) otherwise."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    fd = os.open(path, flags, 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise
