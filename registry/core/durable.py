"""Files that survive a crash whole (written beside their place, synced, then renamed or linked in), and text read
only from a regular file."""

from __future__ import annotations

import os
from pathlib import Path


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
    import stat

    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
        raise OSError(kind)  # the caller names the file
    return path.read_text(encoding="utf-8")
