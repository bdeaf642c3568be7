"""Atomic writes: a file through a temp file and a rename, a folder through a staged copy and a swap.

A file is written to a temporary file beside its target, then renamed onto it: a crash or Ctrl-C
mid-write leaves either the old file or none, never half of one.

A folder (a run's results, :func:`staged_folder`) is written in full under a hidden name beside its
target, ``.<name>.<random>.candleflow-new``, flushed to disk, and switched in with one system call:

* the target does not exist yet (or is an empty folder): ``rename(staged, target)``;
* it exists: Linux's ``renameat2(staged, target, RENAME_EXCHANGE)`` swaps the two folders atomically
  (ext4, xfs, btrfs, tmpfs, ...); the staged name then holds the old set, which is deleted;
* where the exchange is not supported (other kernels and systems, some network file systems) the
  fallback, with a warning, is two renames: the target is moved aside to ``.<name>.<random>.candleflow-old``,
  then the staged folder is renamed onto it.  A process killed between the two leaves no target; the
  next write, or :func:`candleflow.results.read_results`, moves the ``-old`` folder back
  (:func:`clean_stale`), so the target again holds the complete old set.

So after a kill at any point the target holds the complete old set or the complete new one (once
:func:`clean_stale` has run, in the fallback).  Hidden folders left by a killed run are removed by
:func:`clean_stale` on the next write.  A live writer holds an ``flock`` on its staged folder (and on
the target while it switches), which the kernel drops when the process dies, so :func:`clean_stale`
never touches a folder that another run is still writing.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
>>> write_text_atomic(target, "hello")
>>> target.read_text()
'hello'
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so clean_stale may remove a folder another live run is writing
    fcntl = None


def _temp_beside(path: Path) -> Path:
    """A new empty temp file in ``path``'s folder (created if needed), with ordinary file permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
    tmp_path = _temp_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


_HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Delay SIGINT/SIGTERM until the block is done, then deliver them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in _HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in pending:
            signal.raise_signal(sig)


# --- folders -----------------------------------------------------------------------------------------------------

TAG = ".candleflow-"  # staged folders end in TAG + "new", moved-aside old ones in TAG + "old"
_RENAME_EXCHANGE = 2  # from <linux/fs.h>
_AT_FDCWD = -100
_warned_no_exchange: set[Path] = set()


@contextlib.contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``target``; when the block succeeds it replaces ``target`` atomically.

    A symlink ``target`` is followed: the folder it points to is replaced.  On an error or Ctrl-C in
    the block the staged folder is removed and ``target`` is left as it was.
    """
    target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    staged = Path(tempfile.mkdtemp(prefix=f".{_stem(target)}.", suffix=f"{TAG}new", dir=target.parent))
    lock = _lock(staged, wait=True)
    try:
        os.chmod(staged, _folder_mode(target))  # mkdtemp makes 0700; keep the old folder's mode
        yield staged
        _fsync_tree(staged)
        with signals_held():
            _switch(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # the failed staged folder, or the old set after an exchange
        os.close(lock)


def _switch(staged: Path, target: Path) -> None:
    """Put ``staged`` at ``target`` in one step: a rename, an exchange, or (fallback) two renames."""
    if not os.path.lexists(target):
        try:
            os.rename(staged, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise  # else another run created the target meanwhile: swap with it below
        else:
            _fsync_dir(target.parent)
            return
    held = _lock_target(target)
    try:
        if _exchange(staged, target):
            _fsync_dir(target.parent)
            return
        if target not in _warned_no_exchange:
            _warned_no_exchange.add(target)
            _warn(f"{target}: this file system cannot swap folders atomically (renameat2 RENAME_EXCHANGE); "
                  "switching by two renames, a run killed between them is undone by the next one")
        aside = target.parent / f".{_stem(target)}.{secrets.token_hex(4)}{TAG}old"
        os.rename(target, aside)
        os.rename(staged, target)
        _fsync_dir(target.parent)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        os.close(held)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths with Linux's renameat2(RENAME_EXCHANGE); False where that is not supported."""
    import ctypes  # only here: the one system call the os module does not offer

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without it
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # kernel or file system without RENAME_EXCHANGE
    raise OSError(code, os.strerror(code), str(b))


def clean_stale(target: str | Path) -> None:
    """Remove the hidden folders killed runs left beside ``target``; move a set they moved aside back.

    A folder some live process holds locked is left alone.  Without ``target``, the newest
    ``-old`` folder (the complete old set of a run killed mid-switch) is renamed back to it.
    """
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(_stem(target))}\.[a-z0-9_]{{8}}{re.escape(TAG)}(new|old)")
    try:
        names = [n for n in os.listdir(target.parent) if pattern.fullmatch(n)]
    except OSError:
        return
    paths = sorted((target.parent / n for n in names), key=_mtime, reverse=True)  # newest -old first
    for path in paths:
        lock = _lock(path, wait=False)
        if lock is None:
            continue  # a live run's, or gone
        try:
            if path.name.endswith(f"{TAG}old") and not os.path.lexists(target):
                os.rename(path, target)
                _warn(f"{target}: put back the previous results, which a run killed while switching had moved aside")
            else:
                shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(lock)


def _lock(path: Path, *, wait: bool) -> int | None:
    """An open descriptor of folder ``path`` holding an exclusive flock; None if busy (``wait=False``) or gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
    return fd


def _lock_target(target: Path) -> int:
    """Lock the folder at ``target`` (waiting for another run's switch), checking it is still the one there."""
    while True:
        fd = _lock(target, wait=True)
        if fd is None:
            raise OSError(errno.ENOENT, "the folder disappeared while switching", str(target))
        held, now = os.fstat(fd), os.stat(target)
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return fd
        os.close(fd)  # another run swapped it meanwhile: lock the new one


def _stem(target: Path) -> str:
    """``target``'s name, shortened (with a hash) so that hidden names beside it stay under 255 bytes."""
    name = target.name
    if len(os.fsencode(name)) <= 180:
        return name
    return f"{name[:40]}~{hashlib.sha1(os.fsencode(name)).hexdigest()[:10]}"


def _folder_mode(target: Path) -> int:
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o777 & ~umask


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, so the switch never shows empty files after a crash."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the data itself was flushed
    finally:
        os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
