"""Process-tree control for script workers: forks that cannot outlive their candle.

A worker's processes form a tree (see :mod:`.pool` for why):

    template (spawned; never runs a script)
     └── chunk process (forked per chunk; runs the script in ``warm`` mode)
          └── candle process (forked per candle in ``process`` mode)
               └── whatever the script starts or forks

Every forking level is a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``,
Linux): a process orphaned below it -- a daemon that double-forked, a
``Popen`` child of a candle process that exited -- is re-parented to it rather
than to ``init``, so it stays findable.  :func:`end_descendants` then kills
the whole subtree: it reads the children of every process below this one
from ``/proc/<pid>/task/<tid>/children`` (or, without that file, from every
``/proc/<pid>/stat``), sends them ``SIGKILL`` and reaps, repeating until this
process has no child left (a fork racing the kill re-parents to us and is
caught in the next round).  The common case -- no child at all -- costs one
``waitpid`` that fails with ``ECHILD``.

Each forked level also asks for ``SIGKILL`` when its parent dies
(``PR_SET_PDEATHSIG``), so killing the template takes its tree down.  A
forked level reports a clean finish by writing a status byte to a pipe
(:func:`fork_child`); one that died without it is *mirrored* by its parent
(:func:`exit_like`: same exit code, or killed by the same signal), up to the
template, whose death the pool reads as today ("was killed by SIGSEGV").

Without Linux's ``prctl`` and ``/proc`` (:data:`SUPPORTED` is False)
leftover processes cannot be found and are left running; the pool warns once.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import resource
import select
import signal
import time
import traceback
from typing import Callable, NoReturn

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
ROUNDS = 1000  # bound on kill-and-reap rounds in end_descendants (two or three normally do)
WATCH_INTERVAL = 0.5  # seconds between checks that our own parent is alive while we wait for a child
POLL = 0.005  # seconds between waitpid polls where pidfd_open is missing

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux/glibc
    _prctl = None
SUPPORTED = _prctl is not None and os.path.isdir("/proc/self/task")
_CHILDREN_FILE = os.path.exists(f"/proc/self/task/{os.getpid()}/children")  # needs CONFIG_PROC_CHILDREN


def become_subreaper() -> None:
    """Orphaned descendants re-parent to this process (Linux; not inherited by forks)."""
    if _prctl is not None:
        _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def die_with_parent(parent: int) -> None:
    """Ask for SIGKILL when the parent dies; exit now if it already has (the fork raced its death)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def end_descendants() -> None:
    """SIGKILL every process below this one and reap them all; return when there is no child left."""
    me = os.getpid()
    for _ in range(ROUNDS):
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass  # reap every child that has already ended
        except ChildProcessError:
            return  # no child, hence (we are a subreaper) no descendant
        if not SUPPORTED:
            return  # cannot find the others: leave them (the pool has warned)
        for victim in _descendants(me):
            try:
                os.kill(victim, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.waitpid(-1, 0)  # one of them is dying now (SIGKILL cannot be caught); the others next round
        except ChildProcessError:
            return


def _descendants(root: int) -> list[int]:
    found, todo = [], [root]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _children(pid: int) -> list[int]:
    if not _CHILDREN_FILE:
        return _scan_children(pid)
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # it has just died
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                children += [int(field) for field in handle.read().split()]
        except OSError:
            continue  # the thread or the process has just ended
    return children


def _scan_children(pid: int) -> list[int]:
    """Children of ``pid`` from every ``/proc/<n>/stat`` (slower; for kernels without the children file)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            children.append(int(entry))
    return children


_child: int | None = None  # the child fork_child is waiting for, if any


def forward_to_child(signum: int, frame: object) -> None:
    """A signal handler: pass the signal on to the child being waited for (SIGUSR1: its stack dump)."""
    if _child is not None:
        try:
            os.kill(_child, signum)
        except ProcessLookupError:
            pass


def fork_child(body: Callable[[], bytes], *, parent_alive: Callable[[], bool] | None = None) -> tuple[bytes, int]:
    """Run ``body`` in a forked child and wait for it; return (status byte, wait status).

    The child dies with this process (:func:`die_with_parent`), returns
    ``body()``'s one-byte status through a pipe and leaves with ``os._exit``
    (a Python exception there is printed on fd 2 and exits with code 1).  An
    empty status means the child died without finishing.  While waiting,
    ``parent_alive()`` is checked every :data:`WATCH_INTERVAL` seconds; when
    it turns false, the subtree is ended and this process exits.  After the
    wait every leftover descendant is ended.
    """
    global _child
    parent = os.getpid()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        code = 1
        try:
            _child = None
            os.close(read_end)
            die_with_parent(parent)
            status = body()
            os.write(write_end, status)
            code = 0
        except BaseException:  # noqa: BLE001 -- a bug in candleflow: show it, exit like a crashed worker
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_end)
    _child = pid
    try:
        wait_status = _wait(pid, parent_alive)
        os.set_blocking(read_end, False)  # a leftover descendant may still hold the write end
        try:
            status = os.read(read_end, 16)
        except BlockingIOError:
            status = b""
    finally:
        _child = None
        os.close(read_end)
    end_descendants()
    return status, wait_status


def _wait(pid: int, parent_alive: Callable[[], bool] | None) -> int:
    if parent_alive is None:
        return os.waitpid(pid, 0)[1]
    try:
        pidfd = os.pidfd_open(pid)  # Linux >= 5.3: readable once the child exits
    except (AttributeError, OSError):
        pidfd = None
    checked = time.monotonic()
    try:
        while True:
            select.select([] if pidfd is None else [pidfd], [], [], POLL if pidfd is None else WATCH_INTERVAL)
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                return wait_status
            if time.monotonic() - checked >= WATCH_INTERVAL:
                checked = time.monotonic()
                if not parent_alive():
                    end_descendants()
                    os._exit(1)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def exit_like(wait_status: int) -> NoReturn:
    """Leave the way a child did: with its exit code, or killed by its signal (no core file, no fault dump)."""
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        faulthandler.disable()
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
            signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        except (OSError, ValueError):
            pass  # SIGKILL cannot be handled; it needs no reset
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # a signal whose default is to be ignored
    os._exit(os.waitstatus_to_exitcode(wait_status))
