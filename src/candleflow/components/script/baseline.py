"""The process state a script starts every candle from, and its restoration (``warm`` mode).

In ``warm`` mode one process (a chunk process, see :mod:`.worker`) runs a
script candle after candle.  :class:`Baseline` sets up the job's state once
per chunk -- ``os.environ`` (candleflow's environment plus the protocol's
constant variables), the working directory, ``sys.argv``, ``sys.path`` -- and
records what else a candle may change; :meth:`Baseline.restore` puts back,
after every candle, whatever the script changed among:

* ``os.environ`` (compared through its encoded dict: ~1 us when untouched);
* the working directory, ``sys.argv``, ``sys.path``, ``sys.stdin``, the
  recursion limit, ``warnings.filters``, the umask;
* file descriptors 0, 1, 2 (``/dev/null``, ``/dev/null``, the crash log);
* signal handlers, the signal mask and interval timers (``alarm``);

and ends every process the script started (:func:`.processes.end_descendants`).
State kept inside modules (a patched ``json.loads``, a module-level cache,
``sys.modules``, threads left running) is *not* restored: it lasts until the
chunk ends.  The whole check costs ~20 us a candle.
"""

from __future__ import annotations

import _signal  # getsignal() without signal.py's enum conversion: 0.1 us instead of 3 us a signal
import faulthandler
import os
import signal
import stat
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping

from candleflow.errors import ComponentError

_TIMERS = tuple(getattr(signal, name) for name in ("ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF")
                if hasattr(signal, name))


def install_fault_handlers() -> None:
    """Crash tracebacks on fd 2, and a stack dump on SIGUSR1 (the pool asks for it on a timeout)."""
    faulthandler.enable(all_threads=False)
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def become_script_process() -> None:
    """Signal dispositions of a fresh interpreter (the worker's own are for the worker), then the fault handlers.

    SIGTERM and SIGUSR1 back to their defaults, SIGINT to ``KeyboardInterrupt``
    -- the script and whatever it forks see what ``python script.py`` would --
    except that SIGUSR1 dumps the stack (Python's table still says default).
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    install_fault_handlers()


def enter_job(*, path: str, base_path: list[str], env: Mapping[str, str] | None, cwd: str | None,
              static_env: Mapping[str, str], keep_indicator_data: bool, component: str, candle: int) -> None:
    """Set the process state every candle of a job starts from."""
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    os.environ.update(static_env)
    if not keep_indicator_data:
        os.environ.pop("INDICATOR_DATA", None)
    if cwd is not None:
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise ComponentError(f"cannot enter the working directory {cwd}: {exc.strerror}",
                                 component=component, candle=candle) from None
    sys.argv = [path]
    sys.path = [str(Path(path).parent)] + base_path


class Baseline:
    """A snapshot of the job's process state, taken after :func:`enter_job`; restored after each candle."""

    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        self.argv, self.path = list(sys.argv), list(sys.path)
        self.stdin = sys.stdin
        self.recursion_limit = sys.getrecursionlimit()
        self.warning_filters = list(warnings.filters)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.fds = {fd: os.dup(fd) for fd in (0, 1, 2)}  # non-inheritable copies to restore from
        self.fd_ids = {fd: _identity(fd) for fd in self.fds}
        self.handlers = {}
        for signum in signal.valid_signals():
            handler = _handler(signum)
            if handler is not None:  # None: set outside Python (faulthandler), re-installed below
                self.handlers[signum] = handler
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self._expected: dict[Any, Any] | None = None

    def candle_started(self, env: Mapping[str, str]) -> None:
        """Set the candle's variables; remember the environment as it is when the script leaves it be."""
        os.environ.update(env)
        self._expected = _environ_view()

    def restore(self) -> None:
        """Undo what the candle changed in the state listed in the module docstring."""
        self._restore_environ()
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        if sys.argv != self.argv or not isinstance(sys.argv, list):
            sys.argv = list(self.argv)
        if sys.path != self.path or not isinstance(sys.path, list):
            sys.path = list(self.path)
        if sys.stdin is not self.stdin or self.stdin is None or self.stdin.closed:
            sys.stdin = self.stdin if self.stdin is not None and not self.stdin.closed else open(os.devnull)
            self.stdin = sys.stdin
        if sys.getrecursionlimit() != self.recursion_limit:
            sys.setrecursionlimit(self.recursion_limit)
        if warnings.filters != self.warning_filters:
            warnings.filters[:] = self.warning_filters
            mutated = getattr(warnings, "_filters_mutated", None)  # what simplefilter() calls (CPython <= 3.13)
            if mutated is not None:
                mutated()
        os.umask(self.umask)
        for fd, copy in self.fds.items():
            if _identity(fd) != self.fd_ids[fd]:
                os.dup2(copy, fd)
        self._restore_signals()

    def _restore_environ(self) -> None:
        if self._expected is not None and _environ_view() == self._expected:
            return  # untouched: the next candle overwrites its own variables
        os.environ.clear()
        os.environ.update(self.environ)

    def _restore_signals(self) -> None:
        changed = False
        for signum, handler in self.handlers.items():
            if _signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)
                changed = True
        if changed:
            install_fault_handlers()  # signal.signal() replaced faulthandler's own handler
        for timer in _TIMERS:
            if signal.getitimer(timer) != (0.0, 0.0):
                signal.setitimer(timer, 0)
        if signal.pthread_sigmask(signal.SIG_BLOCK, []) != self.mask:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)


def _environ_view() -> dict:
    """A copy of the environment; CPython's encoded dict when there is one (no decoding: ~1 us)."""
    data = getattr(os.environ, "_data", None)
    return dict(data) if data is not None else dict(os.environ)


def _handler(signum: int) -> Any:
    try:
        return _signal.getsignal(signum)
    except (OSError, ValueError):
        return None


def _identity(fd: int) -> tuple[int, int, int] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino, stat.S_IFMT(info.st_mode)
