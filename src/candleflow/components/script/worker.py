"""The warm worker process that runs a script component candle after candle.

One worker is a long-lived ``spawn`` process (see :mod:`.pool`) talking to the
parent over a duplex pipe.  Its state:

* a code cache ``path -> (mtime_ns, size, code object)``: a script is compiled
  once and recompiled only when the file changes;
* the current :class:`ScriptJob` (the run's :class:`~.environment.RunData`,
  shipped once per run with a ``load`` message) and its code object;
* ``os.environ``, updated in-process per candle (no ``execve``, so no
  128 KiB ``MAX_ARG_STRLEN`` limit on ``CANDLE_DATA``).

Per candle of a ``chunk`` message it sets the candle's variables, ``exec``s the
code object in a fresh ``{"__name__": "__main__", "__file__": path}``
namespace with ``sys.stdout``/``sys.stderr`` redirected to capped in-memory
buffers (:data:`OUTPUT_CAP` characters each), parses the marked block with
:mod:`.protocol` and reports the candle at once, so the parent can enforce a
per-candle timeout while paying one message per candle, not a round trip.

Messages, worker -> parent::

    ("hello", pid)                                 once, when warm
    ("candle", i, CandleResult)                    per candle
    ("error", i, ComponentError)                   the chunk stopped at candle i
    ("end", chunk_id)                              chunk finished or cancelled

parent -> worker: ``("load", ScriptJob)``, ``("chunk", chunk_id, lo, hi)``,
``("cancel", chunk_id)`` (checked between candles) and ``("stop",)``.

The worker's file descriptor 2 is an unlinked file the parent also holds
open: ``faulthandler`` writes a crash traceback there, and dumps the stack on
``SIGUSR1`` (the parent asks for it before killing a timed-out worker).  A
watchdog thread exits the worker if its parent dies, so no worker outlives
the run.
"""

from __future__ import annotations

import builtins
import faulthandler
import io
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import CodeType
from typing import Any, NamedTuple

import pandas as pd

from candleflow.components.script.environment import RunData
from candleflow.components.script.protocol import (
    SNIPPET,
    NoBlockError,
    missing_block_error,
    parse_indicator_output,
    parse_signal_output,
    stdout_tail,
)
from candleflow.errors import ComponentError

OUTPUT_CAP = 1 << 20  # characters of stdout (and of stderr) per candle
TAIL_LINES = 6  # traceback/stderr lines kept in an error's detail


@dataclass(frozen=True)
class ScriptJob:
    """One run of one script: sent to each worker it uses, once."""

    path: str
    data: RunData
    verbose: bool


class CandleResult(NamedTuple):
    """What one candle produced.

    ``block`` False means the stdout held no marked block (``value`` is then
    the stdout tail); otherwise ``value`` is the indicator's current value
    (None = none yet) or the list of signal events.  ``log`` (stdout outside
    the block, then stderr) is only sent when the job is verbose.
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


def main(conn: Connection, stderr_path: str, parent_pid: int) -> None:
    """Process entry point: serve ``load``/``chunk`` messages until ``stop`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    log_fd = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
    os.unlink(stderr_path)  # the parent reads it through its own descriptor; nothing is left behind
    os.dup2(log_fd, 2)
    os.close(log_fd)
    faulthandler.enable(all_threads=False)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    base_path = list(sys.path)
    codes: dict[str, tuple[int, int, CodeType]] = {}
    job: ScriptJob | None = None
    conn.send(("hello", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "load":
            job = message[1]
            _enter_job(job, base_path)
        elif message[0] == "chunk":
            _run_chunk(conn, job, codes, *message[1:])
        elif message[0] == "stop":
            return
        # a ("cancel", id) arriving after its chunk ended is stale: ignore it


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def _enter_job(job: ScriptJob, base_path: list[str]) -> None:
    os.environ.update(job.data.static_env)
    if not job.data.with_indicator_data:
        os.environ.pop("INDICATOR_DATA", None)
    sys.argv[:] = [job.path]
    sys.path[:] = [str(Path(job.path).parent)] + base_path


def _run_chunk(conn: Connection, job: ScriptJob, codes: dict, chunk_id: int, lo: int, hi: int) -> None:
    os.ftruncate(2, 0)  # the stderr file only ever holds this chunk's crash output
    data = job.data
    try:
        code = _compiled(job.path, codes, component=data.name, candle=lo)
    except ComponentError as exc:
        conn.send(("error", lo, exc))
        return
    printed_block = False
    for i in range(lo, hi):
        if conn.poll() and conn.recv() == ("cancel", chunk_id):
            break
        os.environ.update(data.candle_env(i))
        started = time.perf_counter()
        try:
            stdout, stderr = _execute(code, job.path, component=data.name, candle=i)
            try:
                value, log = _parse(data, stdout, i)
            except NoBlockError:
                if printed_block:
                    raise missing_block_error(data.kind, component=data.name, candle=i, stdout=stdout) from None
                result = CandleResult(False, stdout_tail(stdout), time.perf_counter() - started,
                                      _log(stdout, stderr) if job.verbose else None)
            else:
                printed_block = True
                result = CandleResult(True, value, time.perf_counter() - started,
                                      _log(log, stderr) if job.verbose else None)
        except ComponentError as exc:
            conn.send(("error", i, exc))
            return
        conn.send(("candle", i, result))
    conn.send(("end", chunk_id))


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


def _execute(code: CodeType, path: str, *, component: str, candle: int) -> tuple[str, str]:
    """Run the script once; its (stdout, stderr), or a ComponentError on failure."""
    out, err = _CappedBuffer(), _CappedBuffer()
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": builtins}
    failure: str | None = None
    detail: str | None = None
    try:
        with redirect_stdout(out), redirect_stderr(err):
            exec(code, namespace)
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
        namespace.clear()  # break function <-> globals cycles so the candle's data is freed now
    for stream, buffer in (("stdout", out), ("stderr", err)):
        if buffer.overflow is not None:
            raise ComponentError(f"printed more than the {OUTPUT_CAP // (1 << 20)} MiB ({OUTPUT_CAP} characters) "
                                 f"allowed on {stream} per candle", component=component, candle=candle,
                                 detail=stdout_tail(buffer.getvalue() + buffer.overflow))
    if failure is not None:
        raise ComponentError(failure, component=component, candle=candle, detail=detail or None)
    return out.getvalue(), err.getvalue()


def _parse(data: RunData, stdout: str, i: int) -> tuple[Any, str]:
    if data.kind == "indicator":
        return parse_indicator_output(stdout, component=data.name, candle=i)
    candle_time = pd.Timestamp(data.times[i], unit="s", tz="UTC")
    return parse_signal_output(stdout, component=data.name, candle=i, candle_time=candle_time)


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
