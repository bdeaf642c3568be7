"""Result files of a run, and reading them back for the report.

``write_results`` renders every file in memory first, writes each to a temp
file, then renames them all into place (:func:`~candleflow._atomic.write_files_atomic`),
so a failed or interrupted run leaves no half-written file and no partial set.  Files:

===================  =====================================================
``metrics.json``     metrics (NaN/inf written as null/"inf"), run info
``trades.csv``       one row per trade
``equity.csv``       time, equity, drawdown, position
``signals.csv``      every signal event: node, bar, time, type, strength
``indicators.csv``   time + every indicator output column
``candles.csv``      the candles the run used
``nodes.json``       per-node stats (time, cache hit/miss, status, error)
``strategy.yaml``    the (rendered) strategy text
``graph.svg``        the annotated graph (only where graphviz's ``dot`` is installed)
===================  =====================================================
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from candleflow._atomic import write_files_atomic

if TYPE_CHECKING:
    from candleflow.backtest import BacktestResult

FILES = ("metrics.json", "trades.csv", "equity.csv", "signals.csv", "indicators.csv", "candles.csv",
         "nodes.json", "strategy.yaml")


def json_safe(value: Any) -> Any:
    """Floats that JSON cannot hold become None (NaN) or "inf"/"-inf"."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return json_safe(value.item())
    return value


def render_files(result: "BacktestResult") -> dict[str, str]:
    """Every result file's text, keyed by file name."""
    strategy = result.strategy
    equity = result.equity
    drawdown = equity / equity.cummax() - 1.0
    equity_frame = pd.DataFrame({"equity": equity, "drawdown": drawdown,
                                 "position": result.simulation.position}, index=equity.index)
    signal_rows = []
    for name, frame in result.signals().items():
        rows = frame.assign(node=name, time=result.candles.index[frame["bar"].to_numpy()])
        signal_rows.append(rows[["node", "bar", "time", "signal_type", "strength"]])
    signals = pd.concat(signal_rows, ignore_index=True) if signal_rows else pd.DataFrame(
        columns=["node", "bar", "time", "signal_type", "strength"])
    indicator_columns = {}
    for name, value in result.indicators().items():
        if isinstance(value, pd.DataFrame):
            for column in value.columns:
                indicator_columns[f"{name}.{column}"] = value[column]
        else:
            indicator_columns[name] = value
    indicators = pd.DataFrame(indicator_columns, index=result.candles.index)
    info = {"strategy": strategy.name, "symbol": strategy.symbol, "timeframe": strategy.timeframe,
            "file": result.compiled.file, "candles": len(result.candles),
            "start": result.candles.index[0].isoformat(), "end": result.candles.index[-1].isoformat()}
    files = {
        "metrics.json": json.dumps({"metrics": json_safe(dict(result.metrics)), "run": info}, indent=2) + "\n",
        "trades.csv": _csv(result.trades, index=False),
        "equity.csv": _csv(equity_frame, index=True),
        "signals.csv": _csv(signals, index=False),
        "indicators.csv": _csv(indicators, index=True),
        "candles.csv": _csv(result.candles, index=True),
        "nodes.json": json.dumps(json_safe([asdict(s) for s in result.stats.values()]), indent=2) + "\n",
        "strategy.yaml": result.source_text or "",
    }
    graph = _graph_svg(result)
    if graph is not None:
        files["graph.svg"] = graph
    return files


def _graph_svg(result: "BacktestResult") -> str | None:
    """The run's annotated graph as SVG, or None when graphviz's ``dot`` is not installed."""
    import shutil

    if shutil.which("dot") is None:
        return None
    from candleflow.visualize.graph import build_graph

    return build_graph(result.compiled, result.stats).pipe(format="svg").decode("utf-8")


def write_results(result: "BacktestResult", out_dir: str | Path) -> Path:
    out = Path(out_dir)
    files = render_files(result)  # everything rendered before the first byte is written
    write_files_atomic({out / name: text for name, text in files.items()})  # all files, or none
    return out


def _csv(frame: pd.DataFrame, *, index: bool) -> str:
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if index and isinstance(frame.index, pd.DatetimeIndex):
        frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame.index.name = "time"
    return frame.to_csv(index=index, float_format="%.10g")


def read_results(out_dir: str | Path) -> dict[str, Any]:
    """Load a results folder back (for ``candleflow report``)."""
    from candleflow.errors import DataError

    out = Path(out_dir)
    missing = [name for name in FILES if not (out / name).is_file()]
    if missing:
        raise DataError(f"not a candleflow results folder: missing {', '.join(missing)}", file=str(out))

    def frame(name: str, index: bool) -> pd.DataFrame:
        data = pd.read_csv(out / name, index_col=0 if index else None)
        if index:
            data.index = pd.to_datetime(data.index, utc=True)
        for column in ("entry_time", "exit_time", "time"):
            if column in data.columns:
                data[column] = pd.to_datetime(data[column], utc=True)
        return data

    return {
        "metrics": json.loads((out / "metrics.json").read_text()),
        "trades": frame("trades.csv", False),
        "equity": frame("equity.csv", True),
        "signals": frame("signals.csv", False),
        "indicators": frame("indicators.csv", True),
        "candles": frame("candles.csv", True),
        "nodes": json.loads((out / "nodes.json").read_text()),
        "strategy_text": (out / "strategy.yaml").read_text(),
    }
