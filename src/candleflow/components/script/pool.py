"""A pool of script worker processes, and the scheduler that runs a job on it.

Isolation (why the processes are laid out as they are).  A worker is a
*template* (:mod:`.worker`): a fresh interpreter (``subprocess``, never a fork
of this process, which runs dask threads) that imports the standard library
and candleflow's light worker modules once and never runs a script.  Every chunk of candles runs in a fresh fork of it,
and in ``process`` isolation every candle in a fresh fork of that.  We chose
forking from a warm template over a pool of workers per component because it
gives the stronger guarantee for no more cost: a fork costs a few ms per chunk
(not per candle), while a pool per component would pay a full interpreter
start-up per component and per worker, and its workers would still carry one
run's module state into the next run of the same component.  So:

* nothing a script does can reach another component, another run, or
  another chunk: each starts from a template that no script ever ran in;
* ``warm`` (default): within a chunk, the process state a script can change
  outside its modules is restored after every candle (:mod:`.baseline`:
  environment, working directory, ``sys.argv``/``sys.path``, stdin, signal
  handlers, ...) and every process it started is killed
  (:mod:`.processes`); state inside modules lasts until the chunk ends;
* ``process``: each candle is a fresh fork of a template that never ran the
  script, i.e. a process per candle, as the seed runs scripts.

A template may hold *preloaded* modules: the leading third-party imports of
the scripts it served (never modules from a script's folder), imported in the
template so that each fork need not import them again.  A template that
preloaded modules only serves jobs whose scripts import all of them
(:meth:`ScriptPool.acquire`); otherwise it is replaced by a fresh one.  So
what a script's process starts from depends only on that script.

Pool state: a fixed number of *slots* (default: one per usable core), each an
idle or busy :class:`WorkerHandle` (a process, its pipe, its stderr file and
the modules it preloaded; idle workers of other scripts are kept, up to
:data:`IDLE_PER_SLOT` workers a slot), guarded by one condition variable, so several
threads (dask's threaded scheduler running two script nodes at once) can
share it.  A worker that times out or dies is killed with its process group
and replaced; ``atexit`` stops them all, and each worker also exits by itself
if its parent dies.

Scheduling one job (:meth:`ScriptPool.run`, in the calling thread): the
candles are cut into contiguous chunks (about :data:`CHUNKS_PER_WORKER` per
worker, so cheap early candles and expensive late ones balance out, and at
least :data:`MIN_CHUNK` candles: the chunking depends only on the number of
candles and ``workers``),
dispatched in order to the workers the job holds; it takes the first worker
it can get (blocking), and more *warm* ones, up to ``workers``, as they
become free (a worker still starting up would only delay its chunk).  Each
worker gets the job's data once, then one message per chunk, and reports every
candle as it finishes; the scheduler parses each candle's block
(:func:`.protocol.parse_block`) as it arrives.  It waits on all its pipes at
once (:func:`multiprocessing.connection.wait`) with a per-worker deadline of
``timeout`` seconds after the previous candle: a worker that misses it is
asked for a stack dump (``SIGUSR1``), killed and replaced.

Errors follow sequential semantics: the job reports the error at the
*earliest* candle.  When candle ``k`` fails, undispatched chunks are dropped
and running chunks starting after ``k`` are cancelled (and the failing
chunk, when the parent found the error), while chunks before ``k`` run on
(they may fail earlier).  A Ctrl-C (or any exception) in the calling thread
kills the job's busy workers before propagating.
"""

from __future__ import annotations

import atexit
import json
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Callable, Sequence

import pandas as pd

from candleflow.components.script import processes, worker
from candleflow.components.script.protocol import parse_block
from candleflow.components.script.worker import CandleResult, ScriptJob
from candleflow.errors import ComponentError

CHUNKS_PER_WORKER = 8
MIN_CHUNK = 50  # candles: each chunk is a fork (a few ms, and the script's first candle in it is slower)
IDLE_PER_SLOT = 2  # workers kept per slot, counting idle ones that preloaded other scripts' modules
STARTUP_TIMEOUT = 60.0  # a fresh worker must say hello within this many seconds
REFILL_INTERVAL = 0.1  # how often a job that wants more workers looks for a free one
DUMP_WAIT = 0.3  # seconds given to a timed-out worker to write its stack dump
STOP_WAIT = 1.0  # seconds given to a worker to end its processes before its process group is killed
STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))  # preloading these does not tie a worker to a script
# The worker's command: candleflow's sys.path, then worker.main(pipe fd, parent pid).  A plain interpreter
# rather than multiprocessing's spawn, which would also import this process's __main__ module in it.
BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
        "from candleflow.components.script.worker import main; main(int(sys.argv[2]), int(sys.argv[3]))")


def default_workers() -> int:
    """Usable cores of this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class WorkerHandle:
    """One worker process: its pipe, and a file holding its fd 2 (crash dumps)."""

    def __init__(self) -> None:
        self.stderr_fd, stderr_path = tempfile.mkstemp(prefix="candleflow-script-", suffix=".stderr")
        self.conn, child_conn = multiprocessing.Pipe(duplex=True)
        try:
            with open(stderr_path, "ab") as stderr:  # O_APPEND: the worker truncates it per chunk
                self.process = subprocess.Popen(
                    [sys.executable, *subprocess._args_from_interpreter_flags(),  # type: ignore[attr-defined]
                     "-c", BOOT, json.dumps([os.fspath(entry) for entry in sys.path]), str(child_conn.fileno()),
                     str(os.getpid())],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                    pass_fds=(child_conn.fileno(),), start_new_session=True)
        except BaseException:
            self.conn.close()
            os.close(self.stderr_fd)
            raise
        finally:
            child_conn.close()
            os.unlink(stderr_path)  # we read it through our own descriptor; nothing is left behind
        self.ready = False
        self.stopped = False
        self.base_modules: frozenset[str] | None = None  # top-level modules it had at start-up
        self.requested: set[str] = set()  # every module a job asked it to preload
        self._stopping = threading.Lock()  # the pool's shutdown and a job may both stop it

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def _join(self, timeout: float) -> None:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def warm(self) -> bool:
        """Started up: it said hello, or its hello is waiting in the pipe."""
        return self.ready or self.conn.poll()

    def on_hello(self, modules: frozenset[str]) -> None:
        self.ready = True
        self.base_modules = modules

    def fits(self, preload: tuple[str, ...]) -> bool:
        """It preloaded nothing beyond the standard library that the job's script does not import itself."""
        extra = self.requested - (self.base_modules or frozenset()) - STDLIB
        return extra <= set(preload)

    def stderr_tail(self, limit: int = 4000) -> str:
        if self.stopped:
            return ""
        size = os.fstat(self.stderr_fd).st_size
        return os.pread(self.stderr_fd, limit, max(0, size - limit)).decode("utf-8", "replace")

    def dump_stack(self) -> str:
        """Ask the worker's faulthandler for a stack dump; return the stderr file's tail."""
        if self.stopped:
            return ""
        try:
            os.kill(self.pid, signal.SIGUSR1)  # passed down to the process running the script
        except ProcessLookupError:
            return self.stderr_tail()
        deadline = time.monotonic() + DUMP_WAIT
        size = -1
        while time.monotonic() < deadline:  # until the dump stops growing
            time.sleep(0.05)
            new_size = os.fstat(self.stderr_fd).st_size
            if new_size == size and size > 0:
                break
            size = new_size
        return self.stderr_tail()

    def death(self) -> str:
        """How the process ended, e.g. ``was killed by SIGSEGV`` or ``exited with code 1``."""
        if self.stopped:
            return "was stopped by the pool's shutdown"
        self._join(1.0)
        code = self.process.returncode
        if code is None:
            return "stopped responding"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def stop(self, *, graceful: bool) -> None:
        """End the process and every process below it (politely if ``graceful``: it is idle), close our
        ends, delete the file; idempotent."""
        with self._stopping:
            if self.stopped:
                return
            self.stopped = True
            if self.alive():
                try:
                    if graceful:
                        self.conn.send(("stop",))
                    else:
                        self.process.terminate()  # SIGTERM: it ends the processes below it, then itself
                except OSError:
                    pass
                self._join(STOP_WAIT)
            try:
                os.killpg(self.pid, signal.SIGKILL)  # whatever is left in its process group
            except (ProcessLookupError, PermissionError):
                pass
            if self.alive():
                self.process.kill()
            self._join(5.0)
            self.conn.close()
            os.close(self.stderr_fd)


@dataclass
class _Lease:
    """A worker held by a running job, and what it is doing."""

    handle: WorkerHandle
    chunk: int = -1
    next_candle: int = 0
    deadline: float = 0.0
    cancelled: bool = False


@dataclass
class RunOutcome:
    """Per-candle results (None where not run) and the earliest error, if any.

    When ``error`` is set, every candle before ``error.candle`` has a result (of those run: see ``chunks``).
    """

    results: list[CandleResult | None]
    error: ComponentError | None = None
    workers_used: int = 0


class ScriptPool:
    """Warm worker processes shared by every thread of this process."""

    def __init__(self, size: int | None = None) -> None:
        if not processes.SUPPORTED:
            warnings.warn(f"script components: processes a script starts cannot be tracked on {sys.platform} "
                          f"(needs Linux's prctl and /proc); they may outlive their candle", RuntimeWarning,
                          stacklevel=2)
        self.size = size or default_workers()
        self._idle: list[WorkerHandle] = []
        self._busy: set[WorkerHandle] = set()
        self._changed = threading.Condition()
        self._closed = False

    # --- slots -------------------------------------------------------------

    def acquire(self, *, block: bool, preload: tuple[str, ...] = ()) -> WorkerHandle | None:
        """A worker for a job whose script preloads ``preload``, warm if possible.

        ``block=True`` (a job's first worker) waits for one, taking a still
        starting worker, or starting one, when no warm worker is idle.
        ``block=False`` (a job's extra workers) returns a warm worker or None,
        starting a worker so that one is warm later.  Only workers that
        preloaded nothing the script does not import serve the job; at most
        ``size`` workers are busy, and idle workers of other scripts are kept
        up to :data:`IDLE_PER_SLOT` per slot (the oldest unfit one is stopped
        to make room), so a strategy mixing scripts does not restart workers
        on every run.
        """
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the script worker pool is shut down")
                for handle in [h for h in self._idle if not h.alive()]:
                    self._idle.remove(handle)  # died while idle
                    handle.stop(graceful=False)
                fitting = [h for h in self._idle if h.fits(preload)]
                handle = next((h for h in fitting if h.warm()), None)
                if handle is None and block and fitting:
                    handle = fitting[0]
                if handle is not None:
                    self._idle.remove(handle)
                    self._busy.add(handle)
                    return handle
                if not fitting and len(self._busy) < self.size:
                    if len(self._idle) + len(self._busy) >= IDLE_PER_SLOT * self.size:
                        victim = self._idle.pop(0)  # unfit (nothing idle fits); an idle worker stops in ms
                        victim.stop(graceful=True)
                    handle = WorkerHandle()
                    if block:
                        self._busy.add(handle)
                        return handle
                    self._idle.append(handle)  # warms up for a later acquire
                if not block:
                    return None
                self._changed.wait()

    def release(self, handle: WorkerHandle) -> None:
        with self._changed:
            self._busy.discard(handle)
            if self._closed:
                handle.stop(graceful=True)
            else:
                self._idle.append(handle)
            self._changed.notify_all()

    def discard(self, handle: WorkerHandle, *, replace: bool) -> None:
        """Kill a worker in an unknown state; start a replacement if ``replace``."""
        handle.stop(graceful=False)
        replacement = WorkerHandle() if replace and not self._closed else None
        with self._changed:
            self._busy.discard(handle)
            if replacement is not None and self._closed:
                replacement.stop(graceful=False)
            elif replacement is not None:
                self._idle.append(replacement)
            self._changed.notify_all()

    def grow(self, size: int) -> None:
        with self._changed:
            self.size = max(self.size, size)
            self._changed.notify_all()

    def shutdown(self) -> None:
        """Stop every worker (busy ones are killed); the pool is unusable afterwards."""
        with self._changed:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle, self._busy = [], set()
            self._changed.notify_all()
        for handle in idle:
            handle.stop(graceful=True)
        for handle in busy:
            handle.stop(graceful=False)

    def pids(self) -> list[int]:
        with self._changed:
            return [h.pid for h in [*self._idle, *self._busy]]

    # --- scheduling ----------------------------------------------------------

    def run(self, job: ScriptJob, n_candles: int, *, workers: int | None = None, timeout: float = 10.0,
            on_candle: Callable[[int, CandleResult], None] | None = None,
            chunks: Sequence[tuple[int, int]] | None = None) -> RunOutcome:
        """Run ``job`` on candles ``0..n_candles-1`` (or only the given ``chunks``, disjoint ``(lo, hi)`` ranges
        of candles, each run as one chunk; other candles' results stay None) with up to ``workers`` workers
        (the pool grows to that many); ``on_candle(i, result)`` is called, in this thread, as candles
        complete.  See the module docstring for the scheduling and the error rule."""
        max_workers = max(1, min(workers or self.size, n_candles if chunks is None else len(chunks)))
        self.grow(max_workers)
        return _Scheduler(self, job, n_candles, max_workers, timeout, on_candle, chunks).run()


class _Scheduler:
    """The state of one job on the pool: chunks, leases, results, earliest error."""

    def __init__(self, pool: ScriptPool, job: ScriptJob, n_candles: int, max_workers: int, timeout: float,
                 on_candle: Callable[[int, CandleResult], None] | None,
                 chunks: Sequence[tuple[int, int]] | None = None) -> None:
        self.pool, self.job, self.timeout, self.on_candle = pool, job, timeout, on_candle
        self.max_workers = max_workers
        size = max(MIN_CHUNK, math.ceil(n_candles / (max_workers * CHUNKS_PER_WORKER)))
        self.chunks = [(lo, min(lo + size, n_candles)) for lo in range(0, n_candles, size)] if chunks is None \
            else sorted(chunks)
        self.pending = deque(range(len(self.chunks)))
        self.leases: dict[Connection, _Lease] = {}
        self.outcome = RunOutcome([None] * n_candles)

    def run(self) -> RunOutcome:
        try:
            while self.pending or self.leases:
                self._lease_workers()
                if not self.leases:
                    continue
                now = time.monotonic()
                wait_for = min(lease.deadline for lease in self.leases.values()) - now
                if self.pending and len(self.leases) < self.max_workers:
                    wait_for = min(wait_for, REFILL_INTERVAL)
                for conn in wait(list(self.leases), timeout=max(0.0, wait_for)):
                    while conn in self.leases and conn.poll():  # drain: a worker reports every candle
                        self._receive(self.leases[conn])
                now = time.monotonic()
                for lease in [lease for lease in self.leases.values() if lease.deadline < now]:
                    self._timed_out(lease)
        except BaseException:
            for lease in self.leases.values():
                self.pool.discard(lease.handle, replace=False)
            self.leases.clear()
            raise
        return self.outcome

    def _lease_workers(self) -> None:
        while self.pending and len(self.leases) < self.max_workers:
            handle = self.pool.acquire(block=not self.leases, preload=self.job.preload)
            if handle is None:
                return
            handle.requested.update(self.job.preload)
            lease = _Lease(handle)
            self.leases[handle.conn] = lease
            self.outcome.workers_used += 1
            if self._send(lease, ("load", self.job)):
                self._dispatch(lease)

    def _dispatch(self, lease: _Lease) -> None:
        """Give the lease the next chunk, or return its worker to the pool."""
        if not self.pending:
            self._release(lease)
            return
        lease.chunk = self.pending.popleft()
        lo, hi = self.chunks[lease.chunk]
        lease.next_candle = lo
        if self._send(lease, ("chunk", lease.chunk, lo, hi)):
            self._reset_deadline(lease)

    def _receive(self, lease: _Lease) -> None:
        try:
            message = lease.handle.conn.recv()
        except (EOFError, OSError):
            self._died(lease)
            return
        kind = message[0]
        if kind == "hello":
            lease.handle.on_hello(message[2])
            self._reset_deadline(lease)
        elif kind == "candle":
            _, i, result = message
            lease.next_candle = i + 1
            self._reset_deadline(lease)
            if result.block:
                try:
                    result = result._replace(value=self._parse(result.value, i))
                except ComponentError as exc:
                    self._failed(i, exc)
                    self._cancel(lease)
                    return
            self.outcome.results[i] = result
            if self.on_candle is not None:
                self.on_candle(i, result)
        elif kind == "error":
            self._release(lease)
            self._failed(message[1], message[2])
        elif kind == "end":
            self._dispatch(lease)

    def _parse(self, block: str, i: int) -> object:
        data = self.job.data
        candle_time = pd.Timestamp(data.times[i], unit="s", tz="UTC") if data.kind == "signal" else None
        return parse_block(data.kind, block, component=data.name, candle=i, candle_time=candle_time)

    def _send(self, lease: _Lease, message: tuple) -> bool:
        try:
            lease.handle.conn.send(message)
            return True
        except OSError:
            self._died(lease)
            return False

    def _reset_deadline(self, lease: _Lease) -> None:
        allowance = self.timeout if lease.handle.ready else STARTUP_TIMEOUT + self.timeout
        lease.deadline = time.monotonic() + allowance

    def _release(self, lease: _Lease) -> None:
        del self.leases[lease.handle.conn]
        self.pool.release(lease.handle)

    def _drop(self, lease: _Lease) -> None:
        del self.leases[lease.handle.conn]
        self.pool.discard(lease.handle, replace=True)

    def _timed_out(self, lease: _Lease) -> None:
        dump = lease.handle.dump_stack()
        where = _script_line(dump, self.job.path)
        self._drop(lease)
        if not lease.handle.ready:
            error = ComponentError(f"the worker process did not start within {STARTUP_TIMEOUT:g} s",
                                   component=self.job.data.name, candle=lease.next_candle)
        else:
            error = ComponentError(f"timed out after {self.timeout:g} s{where}",
                                   component=self.job.data.name, candle=lease.next_candle)
        self._failed(lease.next_candle, error)

    def _died(self, lease: _Lease) -> None:
        how = lease.handle.death()
        tail = lease.handle.stderr_tail()
        self._drop(lease)
        error = ComponentError(f"the worker process running the script {how}{_script_line(tail, self.job.path)}",
                               component=self.job.data.name, candle=lease.next_candle, detail=_crash_detail(tail))
        self._failed(lease.next_candle, error)

    def _failed(self, candle: int, error: ComponentError) -> None:
        """Keep the earliest error; stop work that can only find later ones."""
        if self.outcome.error is None or candle < self.outcome.error.candle:
            self.outcome.error = error
        self.pending.clear()
        for lease in list(self.leases.values()):
            if self.chunks[lease.chunk][0] > candle:
                self._cancel(lease)

    def _cancel(self, lease: _Lease) -> None:
        if not lease.cancelled and lease.handle.conn in self.leases:
            lease.cancelled = True
            self._send(lease, ("cancel", lease.chunk))


def _crash_detail(stderr: str) -> str | None:
    """The fatal-error line of a faulthandler report, else the stderr tail."""
    for line in stderr.splitlines():
        if line.startswith("Fatal Python error"):
            return line
    return "\n".join(stderr.strip().splitlines()[-worker.TAIL_LINES:]) or None


def _script_line(dump: str, path: str) -> str:
    """`` (at line N)`` for the innermost frame of ``path`` in a faulthandler dump."""
    match = re.search(rf'File "{re.escape(path)}", line (\d+)', dump)
    return f" (at line {match.group(1)})" if match else ""


_pool: ScriptPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> ScriptPool:
    """The process-wide pool, started on first use and stopped at interpreter exit."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ScriptPool()
            atexit.register(shutdown_pool)
        return _pool


def shutdown_pool() -> None:
    """Stop the process-wide pool's workers (the next :func:`get_pool` starts a new one)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown()
