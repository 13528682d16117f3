"""Atomic file writes and directory locks: write a uniquely named temp file beside the target, then rename it."""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def temp_beside(path: str | Path) -> Path:
    """A new, empty, uniquely named file beside `path` (created exclusively: never an existing file or symlink)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)   # the permissions a plain open() would give, not mkstemp's 0600
    os.close(fd)
    return Path(name)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Readers see the old file or the complete new one, never a partial write; a symlink at `path` is replaced,
    not followed."""
    tmp = temp_beside(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def lock_directory(directory: str | Path, name: str, what: str):
    """Hold an exclusive lock on `directory/name` for the life of the returned handle (or the process); a second
    holder is refused with a one-line error naming `what` holds it."""
    from data_prep.errors import UserError
    fh = open(Path(directory) / name, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise UserError(f"{directory} is in use by another {what}; wait for it to finish or choose another "
                        "directory") from None
    return fh
