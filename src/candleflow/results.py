"""Result files of a run, and reading them back for the report.

``write_results`` renders every file in memory first, writes them into a hidden folder beside
``--out`` and switches that folder in with one atomic step (:func:`~candleflow._atomic.staged_folder`:
a rename, or Linux's ``renameat2(RENAME_EXCHANGE)`` when ``--out`` exists), so after an error, Ctrl-C
or even SIGKILL at any moment ``--out`` holds the complete old set or the complete new one.

A run replaces the whole folder.  So that it never deletes anything else, an existing ``--out`` must
be empty or a results folder holding only what candleflow wrote there: the files below, the files
listed in its ``manifest.json`` (e.g. a ``--report`` written inside it), and temp files of a killed
older version; otherwise :func:`check_results_folder` refuses it before the run starts.  ``--out``
may not be the current folder (or hold it), which the switch would leave deleted under the shell.
Files:

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
``manifest.json``    every file the run wrote into the folder (relative paths)
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
import os
import re
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import pandas as pd
from pydantic import BaseModel, ConfigDict, TypeAdapter

from candleflow._atomic import clean_stale, staged_folder
from candleflow.errors import CandleflowError, OutputError
from candleflow.output_paths import check_folder

if TYPE_CHECKING:
    from candleflow.backtest import BacktestResult

FILES = ("metrics.json", "trades.csv", "equity.csv", "signals.csv", "indicators.csv", "candles.csv",
         "nodes.json", "strategy.yaml")
GRAPH = "graph.svg"
MANIFEST = "manifest.json"
_OLD_TEMP = re.compile(r"\.[^/]+\.[a-z0-9_]{8}\.tmp")  # a file's temp left by a killed run of an older version


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


def render_files(result: "BacktestResult", graph_path: str | Path = GRAPH) -> dict[str, str]:
    """Every result file's text, keyed by file name (``graph_path`` names the graph in a warning)."""
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
    graph = _graph_svg(result, graph_path)
    if graph is not None:
        files[GRAPH] = graph
    return files


def _graph_svg(result: "BacktestResult", path: str | Path) -> str | None:
    """The run's annotated graph as SVG; None (with a warning if ``dot`` failed) when it cannot be drawn.

    The graph is a by-product of the results, so a failing ``dot`` does not stop them being written.
    """
    import shutil

    if shutil.which("dot") is None:
        return None
    from candleflow.visualize.graph import build_graph, draw

    try:
        return draw(build_graph(result.compiled, result.stats), "svg", path).decode("utf-8")
    except CandleflowError as exc:
        print(f"warning: {exc}; the results are written without it", file=sys.stderr)
        return None


def write_results(result: "BacktestResult", out_dir: str | Path, *,
                  extras: Mapping[str, Callable[[Path], Any]] | None = None) -> Path:
    """Write the result files as a new ``out_dir``, switched in atomically (see the module docstring).

    ``extras`` maps more paths inside the folder (e.g. a ``--report`` given inside ``--out``) to a
    function that writes that file; they become part of the same atomic set.
    """
    out = check_results_folder(out_dir)
    files = render_files(result, out / GRAPH)  # everything rendered before the first byte is written
    with staged_folder(out) as stage:
        for name, text in files.items():
            (stage / name).write_text(text, encoding="utf-8")
        for name, write in (extras or {}).items():
            _write_extra(write, stage / name, out / name)
        written = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        (stage / MANIFEST).write_text(json.dumps({"files": written}, indent=2) + "\n", encoding="utf-8")
    return out


def _write_extra(write: Callable[[Path], Any], staged: Path, final: Path) -> None:
    """``write(staged)``; an error names the file where the user will look for it, not the staged folder."""
    try:
        write(staged)
    except CandleflowError as exc:
        if exc.file == str(staged):
            exc.file = str(final)
        raise


def check_results_folder(out_dir: str | Path, option: str = "--out") -> Path:
    """``out_dir`` if a run may replace it (module docstring); called before the run starts.

    Also removes what killed earlier runs left beside it (:func:`~candleflow._atomic.clean_stale`).
    """
    out = check_folder(out_dir, option)
    real = Path(os.path.realpath(out))
    if real.parent == real:
        raise OutputError(f"{option}: cannot replace the root folder", file=str(out))
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == cwd or real in cwd.parents:
        raise OutputError(f"{option}: is the current folder or holds it; a run replaces the whole folder, "
                          "so run it from outside", file=str(out))
    clean_stale(real)
    foreign = _foreign_files(real) if real.is_dir() else []
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"{option}: not a candleflow results folder (it holds {shown}); a run replaces the "
                          "whole folder, so give a new or empty one", file=str(out))
    return out


def _foreign_files(folder: Path) -> list[str]:
    """What in ``folder`` candleflow did not write there (relative paths, folders with a trailing /)."""
    owned = {*FILES, GRAPH, MANIFEST}
    try:
        owned |= set(json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no manifest (an older version's folder, or not a results folder): only the known names
    foreign = []
    for root, dirs, names in os.walk(folder):
        base = Path(root).relative_to(folder)
        for name in names:
            rel = (base / name).as_posix()
            if rel not in owned and not _OLD_TEMP.fullmatch(name):
                foreign.append(rel)
        for name in list(dirs):
            rel = (base / name).as_posix()
            if not any(o.startswith(rel + "/") for o in owned):
                foreign.append(rel + "/")
                dirs.remove(name)
    return sorted(foreign)


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
    if not os.path.lexists(out):
        clean_stale(Path(os.path.realpath(out)))  # a run killed mid-switch (fallback) moved the old set aside
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
