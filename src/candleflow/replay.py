"""Replay mode: feed recorded signal events to the evaluator instead of running components.

For debugging an evaluator setting against a fixed set of signals, or signals
produced elsewhere.  It is only ever used when chosen explicitly
(``candleflow run --replay-signals FILE``); nothing falls back to it.

Accepted files:

* CSV with columns ``time`` (ISO-8601, naive = UTC) or ``bar``, ``signal_type``,
  optional ``strength`` and ``node`` - e.g. the ``signals.csv`` a run writes;
* JSON: a list of ``{"timestamp"|"time", "signal_type", "strength"?, "node"?}``
  objects, as the script protocol prints them.

Each event's time must be a candle's time (events act like live ones: decided
on that candle's close).  Without a ``node`` column the strategy must have
exactly one signal node, which receives every event.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from candleflow.backtest import BacktestResult, run_compiled
from candleflow.dag.compiler import CompiledStrategy
from candleflow.dag.usage import signal_uses
from candleflow.errors import DataError
from candleflow.vocab import empty_signal_frame, make_signal_frame


def read_signal_file(path: Path) -> pd.DataFrame:
    """Recorded events as a frame with ``signal_type``, ``strength``, ``node`` and ``time`` or ``bar``."""
    file = str(path)
    if not path.is_file():
        raise DataError("replay file not found", file=file)
    try:
        if path.suffix.lower() == ".json":
            records = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise DataError("replay JSON must be a list of signal objects", file=file)
            frame = pd.DataFrame(records).rename(columns={"timestamp": "time"})
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError("replay file is empty", file=file) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read replay file: {str(exc).splitlines()[0]}", file=file) from None
    if "signal_type" not in frame.columns or not ({"time", "bar"} & set(frame.columns)):
        raise DataError("replay file needs a signal_type column and a time (or bar) column", file=file)
    if "strength" not in frame.columns:
        frame["strength"] = 1.0
    return frame


def replay_frames(compiled: CompiledStrategy, candles: pd.DataFrame, path: Path) -> dict[str, pd.DataFrame]:
    """Recorded events as signal frames keyed by the strategy's signal node names."""
    file = str(path)
    events = read_signal_file(path)
    signal_nodes = [n for n, plan in compiled.plans.items() if plan.kind == "signal"]
    if "node" not in events.columns:
        if len(signal_nodes) != 1:
            raise DataError(f"replay file has no 'node' column but the strategy has {len(signal_nodes)} signal "
                            f"nodes ({', '.join(signal_nodes)}); add a node column", file=file)
        events["node"] = signal_nodes[0]
    unknown = sorted(set(events["node"].astype(str)) - set(signal_nodes))
    if unknown:
        raise DataError(f"replay file names unknown signal node(s) {', '.join(unknown)} "
                        f"(signal nodes: {', '.join(signal_nodes)})", file=file)
    _check_used(compiled, events, file)
    if "bar" in events.columns and "time" not in events.columns:
        bars = pd.to_numeric(events["bar"], errors="coerce").to_numpy()
        bad = np.isnan(bars) | (bars < 0) | (bars >= len(candles))
    else:
        times = pd.to_datetime(events["time"], utc=True, errors="coerce", format="ISO8601")
        bars = candles.index.get_indexer(pd.DatetimeIndex(times)).astype("float64")
        bad = bars < 0
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = events["time"].iloc[row] if "time" in events.columns else events["bar"].iloc[row]
        raise DataError(f"event {what!r} is not a candle of the data", file=file, path=f"row {row + 2}")
    frames = {name: empty_signal_frame() for name in signal_nodes}
    for name, group in events.assign(_bar=bars.astype("int64")).groupby("node"):
        frames[str(name)] = make_signal_frame(group["_bar"].to_numpy(), group["signal_type"].astype(str).tolist(),
                                              group["strength"].to_numpy(dtype="float64"))
    return frames


def _check_used(compiled: CompiledStrategy, events: pd.DataFrame, file: str) -> None:
    """Refuse an event no rule or condition acts on (a typo like ``golden_krass`` would replay to 0 trades),
    unless its node's component declares that type (a run's own ``signals.csv`` replays as it is)."""
    uses = signal_uses(compiled)
    for row, (node, signal_type) in enumerate(zip(events["node"].astype(str), events["signal_type"].astype(str))):
        declared = compiled.plans[node].component.signal_types if compiled.plans[node].component else None
        if not any(use.matches(node, signal_type) for use in uses) and signal_type not in (declared or ()):
            acted = sorted({use.signal_type for use in uses if node in use.nodes})
            raise DataError(f"signal type '{signal_type}' of node '{node}' is used by no rule or condition "
                            f"(they use: {', '.join(acted) or 'none'})", file=file, path=f"row {row + 2}")


def replay_compiled(compiled: CompiledStrategy, candles: pd.DataFrame, path: Path, *,
                    source_text: str | None = None, scheduler: str = "threads") -> BacktestResult:
    """Evaluate the strategy's rules on recorded signals; indicators and signal components do not run.

    The recorded frames go through the same task builder and executor as a run
    (:func:`candleflow.backtest.run_compiled` with ``replay``), nothing is cached.
    """
    frames = replay_frames(compiled, candles, Path(path))
    return run_compiled(compiled, candles, scheduler=scheduler, replay=frames, source_text=source_text)
