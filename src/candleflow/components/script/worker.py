"""The script worker: a template process that forks a fresh process per chunk (or per candle).

One worker is a long-lived process (a fresh interpreter started by :mod:`.pool`,
leading its own session and process group) talking to the parent over a duplex
pipe.  It is a *template*: it never runs a script itself, and imports only the
standard library and candleflow's light script modules (no pandas, no
pydantic: parsing happens in the parent), so it is small and fast to fork.
Its state:

* a code cache ``path -> (mtime_ns, size, code object)``: a script is compiled
  once and recompiled only when the file changes;
* the current :class:`ScriptJob` (the run's :class:`~.environment.RunData`,
  shipped once per run with a ``load`` message);
* the modules it has imported: candleflow's worker modules, and the job's
  ``preload`` (the script's leading imports found outside its folder), which
  it imports at ``load`` -- never code from the script's folder.

Per ``chunk`` message it forks a *chunk process* (:func:`.processes.fork_child`)
and waits for it.  The chunk process sets the job's state
(:mod:`.baseline`: environment, working directory, ``sys.argv``/``sys.path``)
and runs the candles of the chunk:

``warm`` isolation
    in itself, one after the other: per candle it sets the candle's variables,
    ``exec``s the code object in a fresh ``__main__`` module, then
    restores the baseline state and ends every process the script left
    (:mod:`.baseline`, :func:`.processes.end_descendants`).  Module state
    lasts for the chunk, never longer: the next chunk is a new fork.
``process`` isolation
    each candle in a *candle process* forked from the chunk process, which
    itself never runs the script: every candle starts from the same template
    state, as if it were a fresh process; at its end the interpreter's exit
    steps run (non-daemon threads are joined, ``atexit`` handlers run).

In both, ``sys.stdout``/``sys.stderr`` go to capped in-memory buffers
(:data:`OUTPUT_CAP` characters each); the worker cuts the marked block out of
the stdout (:func:`.protocol.extract_block`) and sends its *text*, which the
parent parses (so a script cannot change how output is read), one message
per candle, so the parent can enforce a per-candle timeout.  A copy of the
worker that a script forks leaves with ``os._exit`` the moment it returns
from the script, before it can touch the pipe.

Messages, worker -> parent::

    ("hello", pid, modules)                        once, when warm (top-level names of its modules)
    ("candle", i, CandleResult)                    per candle
    ("error", i, ComponentError)                   the chunk stopped at candle i
    ("end", chunk_id)                              chunk finished or cancelled

parent -> worker: ``("load", ScriptJob)``, ``("chunk", chunk_id, lo, hi)``,
``("cancel", chunk_id)`` (checked between candles) and ``("stop",)``.

File descriptors: 0 and 1 are ``/dev/null`` (a script's child process that
writes to fd 1 never reaches candleflow's output); 2 is an unlinked file the
parent also holds open: ``faulthandler`` writes a crash traceback there, and
the process running the script dumps its stack on ``SIGUSR1``, which the
parent sends to the worker before killing a timed-out one and each level
forwards to the process it waits for.  SIGTERM makes the worker end every
process below it, then exit.  The process running a script has the signal
dispositions of a fresh interpreter (:func:`.baseline.become_script_process`).  A chunk or candle process that dies
without finishing takes its parent down the same way (exit code or signal),
so the pool sees the worker die and replaces it.  The worker exits when its
parent dies (EOF on the pipe, or checked every
:data:`.processes.WATCH_INTERVAL` while a chunk runs), and its forks die with
it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import builtins
import faulthandler
import importlib
import io
import os
import signal
import sys
import threading
import time
import traceback
import types
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import CodeType
from typing import Any, Literal, Mapping, NamedTuple

from candleflow.components.script import processes
from candleflow.components.script.baseline import Baseline, become_script_process, enter_job
from candleflow.components.script.blocks import SNIPPET, NoBlockError, extract_block, missing_block_error, stdout_tail
from candleflow.components.script.environment import RunData
from candleflow.errors import ComponentError

Isolation = Literal["warm", "process"]
OUTPUT_CAP = 1 << 20  # characters of stdout (and of stderr) per candle
TAIL_LINES = 6  # traceback/stderr lines kept in an error's detail
BLOCK, NO_BLOCK, ERROR, DONE = b"B", b"N", b"E", b"."  # status bytes of chunk and candle processes


@dataclass(frozen=True)
class ScriptJob:
    """One run of one script: sent to each worker it uses, once.

    ``env`` and ``cwd`` are the environment and working directory the script
    starts from (None: the worker's own); ``preload`` names modules the
    worker imports before forking (see the module docstring).
    """

    path: str
    data: RunData
    verbose: bool
    isolation: Isolation = "warm"
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    preload: tuple[str, ...] = ()


class CandleResult(NamedTuple):
    """What one candle produced.

    ``block`` False means the stdout held no marked block (``value`` is then
    the stdout tail); otherwise ``value`` is, as sent by the worker, the
    block's text, and once the pool has parsed it the indicator's current
    value (None = none yet) or the list of signal events.  ``log`` (stdout
    outside the block, then stderr) is only sent when the job is verbose.
    """

    block: bool
    value: Any
    seconds: float
    log: str | None


class _OutputTooLarge(BaseException):
    """Raised inside the script by a capped buffer (BaseException: not caught by ``except Exception``)."""


class _CappedBuffer(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.size = 0
        self.overflow: str | None = None  # the start of the write that crossed the cap

    def write(self, text: str) -> int:
        self.size += len(text)
        if self.size > OUTPUT_CAP:
            if self.overflow is None:
                self.overflow = text[:SNIPPET]
            raise _OutputTooLarge
        return super().write(text)


def main(conn_fd: int, parent_pid: int) -> None:
    """Process entry point (see :data:`.pool.BOOT`): serve ``load``/``chunk`` messages until ``stop`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    signal.signal(signal.SIGUSR1, processes.forward_to_child)  # the process running the script dumps its stack
    signal.signal(signal.SIGTERM, _terminate)
    faulthandler.enable(all_threads=False)
    processes.become_subreaper()
    conn = Connection(conn_fd)
    template = _Template(conn, parent_pid)
    conn.send(("hello", os.getpid(), frozenset(name.partition(".")[0] for name in list(sys.modules))))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "load":
            template.load(message[1])
        elif message[0] == "chunk":
            template.chunk(*message[1:])
        elif message[0] == "stop":
            return
        # a ("cancel", id) arriving after its chunk ended is stale: ignore it


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (the pool stopping a busy worker): end every process below this one, then exit."""
    processes.end_descendants()
    os._exit(1)


class _Template:
    """The worker's own state; see the module docstring."""

    def __init__(self, conn: Connection, parent_pid: int) -> None:
        self.conn, self.parent_pid = conn, parent_pid
        self.base_path = list(sys.path)
        self.codes: dict[str, tuple[int, int, CodeType]] = {}
        self.job: ScriptJob | None = None

    def load(self, job: ScriptJob) -> None:
        self.job = job
        for name in job.preload:
            if name not in sys.modules:
                try:
                    importlib.import_module(name)
                except BaseException:  # noqa: BLE001 -- not preloaded: the script's own import reports it
                    pass

    def chunk(self, chunk_id: int, lo: int, hi: int) -> None:
        os.ftruncate(2, 0)  # the stderr file only ever holds this chunk's crash output
        job = self.job
        try:
            code = _compiled(job.path, self.codes, component=job.data.name, candle=lo)
        except ComponentError as exc:
            self.conn.send(("error", lo, exc))
            return
        status, wait_status = processes.fork_child(
            lambda: _run_chunk(self.conn, job, code, self.base_path, chunk_id, lo, hi),
            parent_alive=lambda: os.getppid() == self.parent_pid)
        if not status:
            processes.exit_like(wait_status)


def _run_chunk(conn: Connection, job: ScriptJob, code: CodeType, base_path: list[str],
               chunk_id: int, lo: int, hi: int) -> bytes:
    """The chunk process: run candles ``lo..hi-1`` (see the module docstring); return DONE."""
    processes.become_subreaper()
    _reseed()
    data = job.data
    try:
        enter_job(path=job.path, base_path=base_path, env=job.env, cwd=job.cwd, static_env=data.static_env,
                  keep_indicator_data=data.with_indicator_data, component=data.name, candle=lo)
    except ComponentError as exc:
        conn.send(("error", lo, exc))
        return DONE
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nobody but the worker ends this process politely
    strict = job.isolation == "process"
    if not strict:
        become_script_process()
        baseline = Baseline()
    printed_block = False
    for i in range(lo, hi):
        if conn.poll() and conn.recv() == ("cancel", chunk_id):
            break
        if strict:
            status = _candle_process(conn, job, code, i, printed_block)
        else:
            baseline.candle_started(data.candle_env(i))
            status = _candle(conn, job, code, i, printed_block, exit_steps=False)
            baseline.restore()
            processes.end_descendants()
        if status == ERROR:
            return DONE
        printed_block = printed_block or status == BLOCK
    conn.send(("end", chunk_id))
    return DONE


def _candle_process(conn: Connection, job: ScriptJob, code: CodeType, i: int, printed_block: bool) -> bytes:
    """Run candle ``i`` in a fresh fork of this (clean) chunk process; its status byte."""

    def body() -> bytes:
        _reseed()
        become_script_process()
        atexit._clear()  # only the handlers the script registers run at its end, as in a fresh process
        os.environ.update(job.data.candle_env(i))
        return _candle(conn, job, code, i, printed_block, exit_steps=True)

    status, wait_status = processes.fork_child(body)
    if not status:
        processes.exit_like(wait_status)
    return status


def _candle(conn: Connection, job: ScriptJob, code: CodeType, i: int, printed_block: bool, *,
            exit_steps: bool) -> bytes:
    """Run the script for candle ``i`` (its variables are set), send the candle's message; its status."""
    data = job.data
    started = time.perf_counter()
    try:
        stdout, stderr = _execute(code, job.path, component=data.name, candle=i, exit_steps=exit_steps)
        try:
            block, log = extract_block(stdout, data.kind, component=data.name, candle=i)
        except NoBlockError:
            if printed_block:
                raise missing_block_error(data.kind, component=data.name, candle=i, stdout=stdout) from None
            result = CandleResult(False, stdout_tail(stdout), time.perf_counter() - started,
                                  _log(stdout, stderr) if job.verbose else None)
        else:
            result = CandleResult(True, block, time.perf_counter() - started,
                                  _log(log, stderr) if job.verbose else None)
    except ComponentError as exc:
        conn.send(("error", i, exc))
        return ERROR
    conn.send(("candle", i, result))
    return BLOCK if result.block else NO_BLOCK


def _reseed() -> None:
    """Fresh entropy for numpy's global generator in a new fork, as a fresh process gets (``random`` does it itself)."""
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        np_random.seed()


def _execute(code: CodeType, path: str, *, component: str, candle: int, exit_steps: bool) -> tuple[str, str]:
    """Run the script once; its (stdout, stderr), or a ComponentError on failure.

    ``exit_steps``: then do what a finishing interpreter does (join non-daemon
    threads, run ``atexit`` handlers), still capturing the output.
    """
    out, err = _CappedBuffer(), _CappedBuffer()
    main = types.ModuleType("__main__")  # a real module, as for `python script.py`: pickle finds its functions
    main.__file__, main.__builtins__ = path, builtins
    namespace = main.__dict__
    worker_main, sys.modules["__main__"] = sys.modules.get("__main__"), main
    owner = os.getpid()
    failure: str | None = None
    detail: str | None = None
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                exec(code, namespace)
            finally:
                if os.getpid() != owner:
                    os._exit(0)  # a copy the script forked: it must never run worker code or use the pipe
                if exit_steps:
                    _interpreter_exit()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            failure, detail = "script exited with an error message", exc.code
        elif exc.code not in (None, 0):
            failure, detail = f"script exited with code {exc.code}", _tail(err.getvalue())
    except _OutputTooLarge:
        pass
    except BaseException as exc:  # noqa: BLE001 -- anything the script raises is its failure
        text = " ".join(str(exc).split())
        text = text if len(text) <= 200 else text[:200] + "..."
        failure = f"script raised {type(exc).__name__}: {text}{_script_line(exc, path)}"
        detail = _tail(err.getvalue())  # the exception and its line are in `failure`; add what it printed
    finally:
        sys.modules["__main__"] = worker_main
        namespace.clear()  # break function <-> globals cycles so the candle's data is freed now
    for stream, buffer in (("stdout", out), ("stderr", err)):
        if buffer.overflow is not None:
            raise ComponentError(f"printed more than the {OUTPUT_CAP // (1 << 20)} MiB ({OUTPUT_CAP} characters) "
                                 f"allowed on {stream} per candle", component=component, candle=candle,
                                 detail=stdout_tail(buffer.getvalue() + buffer.overflow))
    if failure is not None:
        raise ComponentError(failure, component=component, candle=candle, detail=detail or None)
    return out.getvalue(), err.getvalue()


def _interpreter_exit() -> None:
    """The exit steps of an interpreter: wait for non-daemon threads, then run ``atexit`` handlers."""
    shutdown = getattr(threading, "_shutdown", None)  # CPython: what Py_Finalize calls
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()


def _compiled(path: str, codes: dict[str, tuple[int, int, CodeType]], *, component: str, candle: int) -> CodeType:
    try:
        stat = os.stat(path)
        cached = codes.get(path)
        if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        with open(path, "rb") as handle:
            code = compile(handle.read(), path, "exec", dont_inherit=True)
    except OSError as exc:
        raise ComponentError(f"cannot read script: {exc.strerror}", component=component, candle=candle) from None
    except SyntaxError as exc:
        raise ComponentError(f"script has a syntax error at line {exc.lineno}: {exc.msg}",
                             component=component, candle=candle) from None
    codes[path] = (stat.st_mtime_ns, stat.st_size, code)
    return code


def _script_line(exc: BaseException, path: str) -> str:
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == path:
            line = lineno
    return f" (line {line})" if line is not None else ""


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-TAIL_LINES:])


def _log(stdout: str, stderr: str) -> str | None:
    text = "\n".join(part for part in (stdout.strip(), stderr.strip()) if part)
    return text or None
