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

``read_results`` checks every file it reads back (JSON that parses into the
expected shape, CSVs with the columns the report uses, times that parse, numbers
that are numbers), so a damaged folder is one DataError naming the file and the
row or JSON path, never a traceback from deep inside the report.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd
from pydantic import BaseModel, ConfigDict, TypeAdapter

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
    """Load a results folder back (for ``candleflow report``), checking every file (see the module docstring)."""
    from candleflow.errors import DataError, check_no_nul
    from candleflow.portfolio.simulate import TRADE_COLUMNS

    check_no_nul(out_dir, "results folder path", DataError)
    out = Path(out_dir)
    missing = [name for name in FILES if not (out / name).is_file()]
    if missing:
        raise DataError(f"not a candleflow results folder: missing {', '.join(missing)}", file=str(out))
    return {
        "metrics": _checked_json(out / "metrics.json"),
        "trades": _checked_frame(out / "trades.csv", index=False, times=("entry_time", "exit_time"),
                                 numbers=[c for c in TRADE_COLUMNS if c not in ("side", "exit_reason", "entry_time",
                                                                               "exit_time")],
                                 required=TRADE_COLUMNS),
        "equity": _checked_frame(out / "equity.csv", index=True, numbers=("equity",)),
        "signals": _checked_frame(out / "signals.csv", index=False, times=("time",), required=("node", "time")),
        "indicators": _checked_frame(out / "indicators.csv", index=True, numbers=None),
        "candles": _checked_frame(out / "candles.csv", index=True, numbers=("open", "high", "low", "close")),
        "nodes": _checked_json(out / "nodes.json"),
        "strategy_text": _read_text(out / "strategy.yaml"),
    }


def _read_text(path: Path) -> str:
    from candleflow.errors import DataError

    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read: {exc}", file=str(path)) from None


def _checked_json(path: Path) -> Any:
    """The JSON in ``path``, if it parses and has its file's :func:`_shape`; returned as parsed."""
    from pydantic import ValidationError

    from candleflow.config.loader import format_loc
    from candleflow.errors import DataError

    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {str(exc).splitlines()[0][:200]}", file=str(path)) from None
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        raise DataError("not valid JSON: a number in it has more than 4300 digits", file=str(path)) from None
    try:
        _shape(path.name).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = "expected a JSON object" if first["type"] == "model_type" else first["msg"]
        raise DataError(message, file=str(path), path=format_loc(first["loc"]) or None) from None
    return data


def _checked_frame(path: Path, *, index: bool, times: tuple[str, ...] = (), numbers: Any = (),
                   required: Any = ()) -> pd.DataFrame:
    """A result CSV, with its index (if ``index``) and ``times`` columns parsed as UTC times, ``required`` columns
    present and ``numbers`` numeric (None: every column); a DataError naming the file and row otherwise."""
    from candleflow.errors import DataError

    try:
        data = pd.read_csv(path, index_col=0 if index else None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataError(f"cannot read CSV: {str(exc).splitlines()[0][:200]}", file=str(path)) from None
    missing = [c for c in dict.fromkeys((*required, *times, *(numbers or ()))) if c not in data.columns]
    if missing:
        raise DataError(f"missing column(s): {', '.join(missing)}", file=str(path))
    if index:
        data.index = pd.DatetimeIndex(_times(pd.Series(data.index), path, "time"), name=data.index.name)
    for column in times:
        data[column] = _times(data[column], path, column)
    for column in data.columns if numbers is None else numbers:
        values = pd.to_numeric(data[column], errors="coerce")
        bad = values.isna() & data[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(f"column '{column}' has a non-numeric value {str(data[column].iloc[row])[:50]!r}",
                            file=str(path), path=f"row {row + 2}")
        data[column] = values
    return data


def _times(column: pd.Series, path: Path, name: str) -> pd.DatetimeIndex | pd.Series:
    from candleflow.errors import DataError

    parsed = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna() & column.notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"'{name}' value {str(column.iloc[row])[:50]!r} is not a time", file=str(path),
                        path=f"row {row + 2}")
    return parsed


class _Run(BaseModel):
    """``metrics.json``'s ``run``: what the report's header shows (other keys are kept, unchecked)."""

    strategy: str
    symbol: str
    timeframe: str
    file: str
    candles: int
    start: datetime
    end: datetime


class _Metrics(BaseModel):
    metrics: dict[str, Optional[float]]  # NaN was written as null; "inf"/"-inf" parse as floats
    run: _Run


@functools.lru_cache(maxsize=None)
def _shape(name: str) -> TypeAdapter:
    """The expected shape of a results JSON file."""
    from candleflow.dag.executor import NodeStats

    if name == "metrics.json":
        return TypeAdapter(_Metrics)
    return TypeAdapter(list[NodeStats], config=ConfigDict(extra="forbid"))  # the report builds NodeStats(**row)
