"""A pool of warm script worker processes, and the scheduler that runs a job on it.

Pool state: a fixed number of *slots* (default: one per usable core), each an
idle or busy :class:`WorkerHandle` (a ``spawn``-context process -- never
``fork``, the parent runs dask threads -- its pipe and its stderr file),
guarded by one condition variable, so several threads (dask's threaded
scheduler running two script nodes at once) can share it.  A worker that
times out or dies is killed and replaced; ``atexit`` stops them all, and each
worker also exits by itself if its parent dies.

Scheduling one job (:meth:`ScriptPool.run`, in the calling thread): the
candles are cut into contiguous chunks (about :data:`CHUNKS_PER_WORKER` per
worker, so cheap early candles and expensive late ones balance out),
dispatched in order to the workers the job holds; it takes the first worker
it can get (blocking), and more *warm* ones, up to ``workers``, as they
become free (a worker still starting up would only delay its chunk).  Each
worker gets the job's data once, then one message per chunk, and reports every
candle as it finishes.  The scheduler waits on all its pipes at once
(:func:`multiprocessing.connection.wait`) with a per-worker deadline of
``timeout`` seconds after the previous candle: a worker that misses it is
asked for a stack dump (``SIGUSR1``), killed and replaced.

Errors follow sequential semantics: the job reports the error at the
*earliest* candle.  When candle ``k`` fails, undispatched chunks are dropped
and running chunks starting after ``k`` are cancelled, while chunks before
``k`` run on (they may fail earlier).  A Ctrl-C (or any exception) in the
calling thread kills the job's busy workers before propagating.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import re
import signal
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Callable

from candleflow.components.script import worker
from candleflow.components.script.worker import CandleResult, ScriptJob
from candleflow.errors import ComponentError

CHUNKS_PER_WORKER = 8
STARTUP_TIMEOUT = 60.0  # a fresh worker must say hello within this many seconds
REFILL_INTERVAL = 0.1  # how often a job that wants more workers looks for a free one
DUMP_WAIT = 0.3  # seconds given to a timed-out worker to write its stack dump


def default_workers() -> int:
    """Usable cores of this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class WorkerHandle:
    """One worker process: its pipe, and a file holding its fd 2 (crash dumps)."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.stderr_fd, self.stderr_path = tempfile.mkstemp(prefix="candleflow-script-", suffix=".stderr")
        self.conn, child_conn = context.Pipe(duplex=True)
        self.process = context.Process(target=worker.main, args=(child_conn, self.stderr_path, os.getpid()),
                                       name="candleflow-script-worker", daemon=True)
        try:
            self.process.start()
        except BaseException:  # e.g. inside a daemonic process, which may not have children
            self.conn.close()
            os.close(self.stderr_fd)
            self._unlink()
            raise
        finally:
            child_conn.close()
        self.ready = False
        self.stopped = False
        self._stopping = threading.Lock()  # the pool's shutdown and a job may both stop it

    def warm(self) -> bool:
        """Started up: it said hello, or its hello is waiting in the pipe."""
        return self.ready or self.conn.poll()

    def on_hello(self) -> None:
        self.ready = True

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
            os.kill(self.process.pid, signal.SIGUSR1)
        except (ProcessLookupError, TypeError):
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
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        if code is None:
            return "stopped responding"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def stop(self, *, graceful: bool) -> None:
        """End the process (politely if ``graceful``), close our ends, delete the file; idempotent."""
        with self._stopping:
            if self.stopped:
                return
            self.stopped = True
            if graceful and self.process.is_alive():
                try:
                    self.conn.send(("stop",))
                except OSError:
                    pass
                self.process.join(timeout=1.0)
            if self.process.is_alive():
                self.process.kill()
            self.process.join(timeout=5.0)
            self.conn.close()
            os.close(self.stderr_fd)
            self._unlink()  # in case the worker died before it could
            self.process.close()

    def _unlink(self) -> None:
        try:
            os.unlink(self.stderr_path)
        except FileNotFoundError:
            pass


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

    When ``error`` is set, every candle before ``error.candle`` has a result.
    """

    results: list[CandleResult | None]
    error: ComponentError | None = None
    workers_used: int = 0


class ScriptPool:
    """Warm worker processes shared by every thread of this process."""

    def __init__(self, size: int | None = None, *, context: str = "spawn") -> None:
        if context == "fork":
            raise ValueError("script workers must not be forked from a multi-threaded parent")
        self._context = multiprocessing.get_context(context)
        self.size = size or default_workers()
        self._idle: list[WorkerHandle] = []
        self._busy: set[WorkerHandle] = set()
        self._changed = threading.Condition()
        self._closed = False

    # --- slots -------------------------------------------------------------

    def acquire(self, *, block: bool) -> WorkerHandle | None:
        """A worker for a job, warm if possible.

        ``block=True`` (a job's first worker) waits for one, taking a still
        starting worker, or starting one, when no warm worker is idle.
        ``block=False`` (a job's extra workers) returns a warm worker or None,
        starting a worker in an empty slot so that one is warm later.
        """
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the script worker pool is shut down")
                for handle in [h for h in self._idle if not h.process.is_alive()]:
                    self._idle.remove(handle)  # died while idle
                    handle.stop(graceful=False)
                handle = next((h for h in self._idle if h.warm()), None)
                if handle is None and block and self._idle:
                    handle = self._idle[0]
                if handle is not None:
                    self._idle.remove(handle)
                    self._busy.add(handle)
                    return handle
                if len(self._idle) + len(self._busy) < self.size:
                    handle = WorkerHandle(self._context)
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
        replacement = WorkerHandle(self._context) if replace and not self._closed else None
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
            return [h.process.pid for h in [*self._idle, *self._busy]]

    # --- scheduling ----------------------------------------------------------

    def run(self, job: ScriptJob, n_candles: int, *, workers: int | None = None, timeout: float = 10.0,
            on_candle: Callable[[int, CandleResult], None] | None = None) -> RunOutcome:
        """Run ``job`` on candles ``0..n_candles-1`` with up to ``workers`` workers (the pool
        grows to that many); ``on_candle(i, result)`` is called, in this thread, as candles
        complete.  See the module docstring for the scheduling and the error rule."""
        max_workers = max(1, min(workers or self.size, n_candles))
        self.grow(max_workers)
        return _Scheduler(self, job, n_candles, max_workers, timeout, on_candle).run()


class _Scheduler:
    """The state of one job on the pool: chunks, leases, results, earliest error."""

    def __init__(self, pool: ScriptPool, job: ScriptJob, n_candles: int, max_workers: int, timeout: float,
                 on_candle: Callable[[int, CandleResult], None] | None) -> None:
        self.pool, self.job, self.timeout, self.on_candle = pool, job, timeout, on_candle
        self.max_workers = max_workers
        size = math.ceil(n_candles / (max_workers * CHUNKS_PER_WORKER))
        self.chunks = [(lo, min(lo + size, n_candles)) for lo in range(0, n_candles, size)]
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
            handle = self.pool.acquire(block=not self.leases)
            if handle is None:
                return
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
            lease.handle.on_hello()
            self._reset_deadline(lease)
        elif kind == "candle":
            _, i, result = message
            self.outcome.results[i] = result
            lease.next_candle = i + 1
            self._reset_deadline(lease)
            if self.on_candle is not None:
                self.on_candle(i, result)
        elif kind == "error":
            self._release(lease)
            self._failed(message[1], message[2])
        elif kind == "end":
            self._dispatch(lease)

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
            if not lease.cancelled and self.chunks[lease.chunk][0] > candle:
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
