"""Run a script component over a candle series: the entry point of a script node.

Algorithm: check the arguments, read the script's ``LOOKBACK`` and leading
imports statically, serialise the candles and inputs once
(:class:`~.environment.RunData`), run every candle on the worker pool
(:mod:`.pool`; ``isolation`` picks a process per chunk or per candle), then walk the per-candle
results in order applying the block rule -- candles before the first marked
block are warm-up; after it, a candle without a block is an error, as is a
run with no block at all -- and assemble the output: a float64 Series for an
indicator (the script's ``current`` per candle, NaN where none), a signal
frame for a signal (``bar`` = the candle at which the event was printed).
The earliest failure wins, so errors read as if candles ran one by one.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from candleflow.components.script.environment import RunData, script_imports, script_lookback
from candleflow.components.script.pool import RunOutcome, get_pool
from candleflow.components.script.protocol import missing_block_error, never_printed_error
from candleflow.components.script.worker import CandleResult, ScriptJob
from candleflow.errors import ComponentError
from candleflow.vocab import CANDLE_COLUMNS, empty_signal_frame, make_signal_frame

logger = logging.getLogger("candleflow.script")
PROGRESS_INTERVAL = 0.1  # seconds between progress callbacks


def run_script_component(
    path: Path,
    *,
    kind: Literal["indicator", "signal"],
    name: str,
    candles: pd.DataFrame,
    symbol: str,
    timeframe: str,
    inputs: Mapping[str, pd.Series] | None = None,
    params: Mapping[str, Any] | None = None,
    lookback: int | None = None,
    timeout: float = 10.0,
    workers: int | None = None,
    isolation: Literal["warm", "process"] = "warm",
    progress: Callable[[int], None] | None = None,
    verbose: bool = False,
    windows: Sequence[tuple[int, int]] | None = None,
) -> pd.Series | pd.DataFrame:
    """Run the script at ``path`` once per candle; see the module docstring.

    ``inputs`` become ``INDICATOR_DATA`` (keyed as given), ``params`` become
    ``COMPONENT_PARAMS``; ``lookback`` (else the script's ``LOOKBACK``) limits
    ``CANDLE_DATA`` to the last N candles.  ``timeout`` is per candle;
    ``workers`` caps the worker processes used (default: all of the pool);
    ``isolation`` is ``warm`` (a fresh process per chunk of candles, process
    state restored after each candle) or ``process`` (a fresh process per
    candle), see :mod:`.pool`; the script starts from this process's
    environment and working directory; ``progress(n_done)`` is called as candles complete; ``verbose`` logs every
    call with its duration and output on the ``candleflow.script`` logger.  ``windows`` (disjoint ``(lo, hi)``
    ranges, the look-ahead check's) runs only those candles, each range as one chunk: every candle sees what
    it sees in a whole run, the others are NaN or have no events, and the block rule holds per window (a
    window of warm-up candles without a block is no error).
    """
    if kind not in ("indicator", "signal"):
        raise ValueError(f"kind must be 'indicator' or 'signal', not {kind!r}")
    if timeout <= 0 or (lookback is not None and lookback < 1) or (workers is not None and workers < 1):
        raise ValueError("timeout must be > 0, lookback and workers >= 1")
    if windows is not None and not all(0 <= lo < hi <= len(candles) for lo, hi in windows):
        raise ValueError(f"windows must be ranges of candle positions, got {windows}")
    if isolation not in ("warm", "process"):
        raise ValueError(f"isolation must be 'warm' or 'process', not {isolation!r}")
    path = Path(path).resolve()
    if not path.is_file():
        raise ComponentError(f"script not found: {path}", component=name)
    missing = [column for column in CANDLE_COLUMNS if column not in candles.columns]
    if missing:
        raise ValueError(f"candles lack columns {missing}")
    for input_name, series in (inputs or {}).items():
        if len(series) != len(candles):
            raise ValueError(f"input '{input_name}' has {len(series)} values for {len(candles)} candles")
    script_default = script_lookback(path, component=name)
    lookback = lookback if lookback is not None else script_default
    n = len(candles)
    if n == 0:
        return _indicator_series([], candles.index, name) if kind == "indicator" else empty_signal_frame()

    data = RunData.build(candles, kind=kind, name=name, symbol=symbol, timeframe=timeframe,
                         inputs=inputs, params=params, lookback=lookback)
    job = ScriptJob(str(path), data, verbose, isolation=isolation, env=dict(os.environ), cwd=_cwd(),
                    preload=script_imports(path))
    started = time.perf_counter()
    outcome = get_pool().run(job, n, workers=workers, timeout=timeout,
                             on_candle=_Reporter(name, progress, verbose), chunks=windows)
    results = _checked(outcome, kind, name, windows)
    if progress is not None:
        progress(n)
    if verbose:
        logger.info("script %s '%s': %d candles in %.2f s on %d worker(s), lookback %s, isolation %s",
                    kind, name, n, time.perf_counter() - started, outcome.workers_used, lookback or "none",
                    isolation)
    if kind == "indicator":
        return _indicator_series(results, candles.index, name)
    return _signal_frame(results)


def _cwd() -> str | None:
    """This process's working directory; None if it was deleted (the workers keep the one they inherited,
    as a child process started now would)."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        return None


class _Reporter:
    """Per-candle callback: throttled progress, and the verbose log line."""

    def __init__(self, name: str, progress: Callable[[int], None] | None, verbose: bool) -> None:
        self.name, self.progress, self.verbose = name, progress, verbose
        self.done = 0
        self.last_report = time.monotonic()

    def __call__(self, i: int, result: CandleResult) -> None:
        self.done += 1
        if self.verbose:
            logger.info("%s candle %d: %.1f ms%s", self.name, i, result.seconds * 1e3,
                        f"\n{result.log}" if result.log else "")
        if self.progress is not None and time.monotonic() - self.last_report >= PROGRESS_INTERVAL:
            self.last_report = time.monotonic()
            self.progress(self.done)


def _checked(outcome: RunOutcome, kind: Literal["indicator", "signal"], name: str,
             windows: Sequence[tuple[int, int]] | None = None) -> list[CandleResult | None]:
    """Apply the block rule in candle order (in each window); raise the earliest error of the run."""
    error = outcome.error
    stop = len(outcome.results) if error is None else error.candle
    for lo, hi in sorted(windows) if windows is not None else [(0, stop)]:
        printed = False
        for i in range(lo, min(hi, stop)):
            result = outcome.results[i]
            if result.block:
                printed = True
            elif printed:
                raise missing_block_error(kind, component=name, candle=i, stdout=result.value)
    if error is not None:
        raise error
    if not printed and windows is None:
        raise never_printed_error(kind, component=name, n_candles=stop, last_stdout=outcome.results[-1].value)
    return outcome.results


def _indicator_series(results: list[CandleResult | None], index: pd.Index, name: str) -> pd.Series:
    values = np.array([r.value if r is not None and r.block and r.value is not None else np.nan for r in results],
                      dtype="float64")
    return pd.Series(values, index=index, name=name)


def _signal_frame(results: list[CandleResult | None]) -> pd.DataFrame:
    events = [(i, event) for i, r in enumerate(results) if r is not None and r.block for event in r.value]
    if not events:
        return empty_signal_frame()
    return make_signal_frame([i for i, _ in events], [e.signal_type for _, e in events],
                             [e.strength for _, e in events], [e.metadata for _, e in events])
