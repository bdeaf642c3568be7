"""Where a command will write, checked before it does any work; write-time OS errors as one line.

Every command that writes calls :func:`check_file` (``--graph``, ``--report``, ``-o``, ``sweep --out``)
or :func:`check_folder` (``run --out``) on each output path before it starts, so a mistyped path
costs a second, not a finished backtest or sweep.  A check looks at three things and creates nothing:

* kind: an existing target must be what is asked for, a regular file or a folder;
* place: the nearest existing folder above the target must be a folder, not a file (missing
  folders in between are created when the output is written);
* room: a temp file is created and removed in that folder (a read-only file system, a folder
  without write permission), and the file system must have free blocks.

What cannot be known in advance (the disk filling up while writing) is caught by :func:`writing`,
which turns the ``OSError`` of the write into an :class:`~candleflow.errors.OutputError` naming the
path the user gave.  Every message starts with the option, e.g.
``error: out/r.html: --report: 'out' is a file, not a folder``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from candleflow.errors import OutputError


def check_file(path: str | Path, option: str) -> Path:
    """``path`` if a file can be written there (see the module docstring); else an OutputError."""
    path = Path(path)
    if os.path.isdir(path):
        raise OutputError(f"{option}: is a folder, not a file", file=str(path))
    if os.path.exists(path) and not os.path.isfile(path):  # a device, a FIFO: a rename would replace it
        raise OutputError(f"{option}: exists and is not a regular file", file=str(path))
    _check_room(path, _nearest_folder(path, option), option)
    return path


def check_folder(path: str | Path, option: str) -> Path:
    """``path`` if a folder can be written there, staged beside it (so its parent must take new files)."""
    path = Path(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{option}: is a file, not a folder", file=str(path))
    place = Path(os.path.realpath(path)) if os.path.islink(path) else path  # a symlink's target is replaced
    _check_room(path, _nearest_folder(place, option, shown=path), option)
    return path


@contextlib.contextmanager
def writing(path: str | Path, what: str) -> Iterator[None]:
    """Turn an OSError raised in the block (ENOSPC, EROFS, EACCES, EISDIR, ...) into one line naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {what} ({exc.strerror or exc})", file=str(path)) from exc


def _nearest_folder(path: Path, option: str, *, shown: Path | None = None) -> Path:
    """The nearest existing path above ``path``, which must be a folder (else: 'x' is a file)."""
    shown = path if shown is None else shown
    for parent in path.parents:
        if os.path.exists(parent):
            if not os.path.isdir(parent):
                raise OutputError(f"{option}: '{parent}' is a file, not a folder", file=str(shown))
            return parent
    return Path(path.anchor or ".")


def _check_room(path: Path, folder: Path, option: str) -> None:
    """Create and remove a temp file in ``folder``, and see that its file system has free blocks."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".candleflow-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
        free = _free_blocks(folder)
    except OSError as exc:
        raise OutputError(f"{option}: cannot write in '{folder}' ({exc.strerror or exc})", file=str(path)) from exc
    if free == 0:
        raise OutputError(f"{option}: the disk holding '{folder}' is full", file=str(path))


def _free_blocks(folder: Path) -> int | None:
    """Blocks this user may still fill (root may use the reserved ones); None where that is unknown."""
    if not hasattr(os, "statvfs"):
        return None
    stats = os.statvfs(folder)
    if not stats.f_blocks:
        return None  # a virtual file system without block counts
    return stats.f_bfree if os.geteuid() == 0 else stats.f_bavail
