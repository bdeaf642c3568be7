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

The folder's schema is :data:`RESULT_FILES`, defined once as data: each file's name, format and what
it holds, and for a CSV its index and columns and which of them are UTC times.  :func:`render_files`
writes by it (the schema's columns, in its order, times as ``2023-01-02T00:00:00Z``) and
:func:`read_results` reads by it (times parsed back, metrics' null/"inf" back to NaN/inf); a file
missing or not as the schema says is one :class:`~candleflow.errors.DataError`.  The per-candle
series (equity, indicators, candles) are Parquet by default and CSV by choice (``--format csv``),
both written by Arrow; the reader reads either.  Every float is written exactly (Parquet's doubles,
CSV's shortest round-trip text), so what is read back equals what the run had.

:func:`read_results` checks every file it reads back (JSON of the expected shape, CSVs with the
schema's columns, times that parse, numbers that are numbers), so a damaged folder is one
DataError naming the file and the row or JSON path, never a traceback from deep in the report.
A column a later version added (:attr:`ResultFile.added`: trades' ``spread_slippage``) may be
absent, so a folder written before it still reads, with that column NaN (not known); an older
``metrics.json`` simply lacks the newer metrics.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from candleflow._atomic import clean_stale, staged_folder
from candleflow.config.loader import format_loc
from candleflow.dag.draw import build_graph, draw
from candleflow.errors import CandleflowError, ConfigError, DataError, OutputError, check_no_nul
from candleflow.output_paths import check_folder
from candleflow.portfolio.simulate import TRADE_COLUMNS
from candleflow.vocab import CANDLE_COLUMNS, PRICE_COLUMNS, NodeStats

if TYPE_CHECKING:
    from candleflow.backtest import BacktestResult

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SERIES_FORMATS = ("parquet", "csv")  # of the per-candle series files; the first is the default


@dataclass(frozen=True)
class ResultFile:
    """One file of a results folder; ``key`` (the name without its suffix) is what it is read back under."""

    name: str
    format: Literal["json", "csv", "text", "parquet"]
    holds: str
    index: str | None = None  # csv/parquet: the index column, a UTC time; None: no index
    columns: tuple[str, ...] | None = None  # csv: the columns in order; None: whatever the run has
    times: tuple[str, ...] = ()  # csv: the columns holding UTC times
    numbers: str | None = None  # json: the member mapping names to numbers (NaN as null, inf as "inf")
    numeric: tuple[str, ...] | Literal["all"] = ()  # csv: the columns that must hold numbers
    added: tuple[str, ...] = ()  # columns a later version added: absent from an older folder, read back as NaN
    optional: bool = False
    series: bool = False  # one row per candle: Parquet by default, CSV by choice (SERIES_FORMATS)

    @property
    def key(self) -> str:
        return self.name.split(".")[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the file may have: a series' in each of SERIES_FORMATS."""
        return tuple(f"{self.key}.{fmt}" for fmt in SERIES_FORMATS) if self.series else (self.name,)

    def as_format(self, fmt: str) -> "ResultFile":
        """A series file written as ``fmt``; any other file as it is."""
        return replace(self, name=f"{self.key}.{fmt}", format=fmt) if self.series else self


RESULT_FILES: tuple[ResultFile, ...] = (
    ResultFile("metrics.json", "json", "the metrics and the run's info (strategy, symbol, candles, start, end)",
               numbers="metrics"),
    ResultFile("trades.csv", "csv", "one row per trade", columns=tuple(TRADE_COLUMNS),
               times=("entry_time", "exit_time"), added=("spread_slippage",),
               numeric=tuple(c for c in TRADE_COLUMNS if c not in ("side", "exit_reason", "entry_time", "exit_time"))),
    ResultFile("equity.parquet", "parquet", "equity, drawdown and position after each candle", index="time",
               columns=("equity", "drawdown", "position"), numeric="all", series=True),
    ResultFile("signals.csv", "csv", "every signal event", columns=("node", "bar", "time", "signal_type", "strength"),
               times=("time",)),
    ResultFile("indicators.parquet", "parquet", "every indicator output, one column each (sma_fast, bb.upper)",
               index="time", numeric="all", series=True),
    ResultFile("candles.parquet", "parquet", "the candles the run used", index="time", columns=CANDLE_COLUMNS,
               numeric="all", series=True),
    ResultFile("nodes.json", "json", "per-node stats (time, cache hit/miss, status, error)"),
    ResultFile("strategy.yaml", "text", "the (rendered) strategy text"),
    ResultFile("graph.svg", "text", "the annotated graph (only where graphviz's dot is installed)", optional=True),
    ResultFile("manifest.json", "json", "every file the run wrote into the folder (relative paths)", optional=True),
)
SCHEMA: dict[str, ResultFile] = {file.key: file for file in RESULT_FILES}
FILES = tuple(file.name for file in RESULT_FILES if not file.optional)  # what every results folder has (by default)
GRAPH = SCHEMA["graph"].name
MANIFEST = SCHEMA["manifest"].name  # written by write_results, after the files render_files renders
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


def render_files(result: "BacktestResult", graph_path: str | Path = GRAPH, *,
                 format: str = SERIES_FORMATS[0]) -> dict[str, str | bytes]:
    """Every result file's text (a CSV or Parquet file's bytes), keyed by file name, as :data:`RESULT_FILES` says;
    the per-candle series in ``format`` (one of :data:`SERIES_FORMATS`).

    ``graph_path`` names the graph in a warning.
    """
    check_format(format)
    strategy = result.strategy
    equity = result.equity
    drawdown = equity / equity.cummax() - 1.0
    equity_frame = pd.DataFrame({"equity": equity, "drawdown": drawdown,
                                 "position": result.simulation.position}, index=equity.index)
    signal_rows = [frame.assign(node=name, time=result.candles.index[frame["bar"].to_numpy()])
                   for name, frame in result.signals().items()]
    signals = pd.concat(signal_rows, ignore_index=True) if signal_rows else pd.DataFrame(
        columns=SCHEMA["signals"].columns)
    indicator_columns = {}
    for name, value in result.indicators().items():
        if isinstance(value, pd.DataFrame):
            for column in value.columns:
                indicator_columns[f"{name}.{column}"] = value[column]
        else:
            indicator_columns[name] = value
    info = {"strategy": strategy.name, "symbol": strategy.symbol, "timeframe": strategy.timeframe,
            "file": result.compiled.file, "candles": len(result.candles),
            "start": result.candles.index[0].isoformat(), "end": result.candles.index[-1].isoformat()}
    contents = {
        "metrics": {"metrics": dict(result.metrics), "run": info},
        "trades": result.trades,
        "equity": equity_frame,
        "signals": signals,
        "indicators": pd.DataFrame(indicator_columns, index=result.candles.index),
        "candles": result.candles,
        "nodes": [asdict(s) for s in result.stats.values()],
        "strategy": result.source_text or "",
    }
    schema = {key: SCHEMA[key].as_format(format) for key in contents}
    files = {schema[key].name: _render(schema[key], content) for key, content in contents.items()}
    graph = _graph_svg(result, graph_path)
    if graph is not None:
        files[GRAPH] = graph
    return files


def check_format(format: str) -> None:
    if format not in SERIES_FORMATS:
        raise ConfigError(f"--format must be {' or '.join(SERIES_FORMATS)}, not '{format}'")


def _render(file: ResultFile, content: Any) -> str | bytes:
    """One file's text: JSON (non-finite numbers made JSON-safe) or the text itself; a table's bytes, Parquet
    (:func:`_parquet`) or CSV written by Arrow (times as :data:`TIME_FORMAT`).  Floats are written exactly."""
    if file.format == "json":
        return json.dumps(json_safe(content), indent=2) + "\n"
    if file.format == "text":
        return content
    frame = content
    if file.columns is not None:
        missing = [c for c in file.columns if c not in frame.columns]
        if missing:  # a bug, not bad input: the schema and the code producing the frame disagree
            raise ValueError(f"{file.name}: the frame lacks the schema's column(s) {', '.join(missing)}")
        frame = frame[list(file.columns)]
    if file.format == "parquet":
        return _parquet(file, frame)
    columns = {file.index: iso_seconds(pd.DatetimeIndex(frame.index))} if file.index is not None else {}
    for name in frame.columns:
        values = frame[name]
        columns[str(name)] = (iso_seconds(pd.DatetimeIndex(pd.to_datetime(values, utc=True))) if name in file.times
                              else pa.array(values.to_numpy(dtype="float64")) if file.series else pa.array(values))
    return _csv(pa.table(columns))


def _parquet(file: ResultFile, frame: pd.DataFrame) -> bytes:
    """A per-candle frame as Parquet: times as UTC timestamps; floats byte-stream-split and zstd-compressed (no
    dictionary), which writes 1M rows of 8 columns in ~0.2 s."""
    columns = {str(name): pa.array(frame[name].to_numpy(dtype="float64")) for name in frame.columns}
    times = pa.array(pd.DatetimeIndex(frame.index).tz_convert("UTC").as_unit("ns"))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({file.index: times, **columns}), sink, use_dictionary=False, compression="zstd",
                   compression_level=1, column_encoding=dict.fromkeys(columns, "BYTE_STREAM_SPLIT"))
    return sink.getvalue().to_pybytes()


def _csv(table: pa.Table) -> bytes:
    """``table`` as CSV by Arrow (floats as their shortest exact text, NaN as ``nan``; ~10x pandas' to_csv), values
    quoted only where some text needs it."""
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(table.column_names)
    sink = pa.BufferOutputStream()
    try:
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowInvalid:  # a text with a comma, quote or newline: quote every text
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False))
    return header.getvalue().encode("utf-8") + sink.getvalue().to_pybytes()


def iso_seconds(times: pd.DatetimeIndex) -> pa.Array:
    """Each UTC time as ``2023-01-02T00:00:00Z`` (:data:`TIME_FORMAT`, to the second), written digit by digit in
    numpy: strftime (pandas' or Arrow's) takes seconds for 1M times."""
    seconds = times.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")
    days = seconds.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    years = months.astype("datetime64[Y]")
    of_day = (seconds - days).astype("int64")
    fields = ((years.astype("int64") + 1970, 0, 4), ((months - years).astype("int64") + 1, 5, 2),
              ((days - months).astype("int64") + 1, 8, 2), (of_day // 3600, 11, 2), (of_day // 60 % 60, 14, 2),
              (of_day % 60, 17, 2))
    text = np.frombuffer(b"0000-00-00T00:00:00Z" * len(times), dtype=np.uint8).reshape(len(times), 20).copy()
    for value, start, width in fields:
        for digit in range(width):
            text[:, start + width - 1 - digit] += (value // 10 ** digit % 10).astype(np.uint8)
    offsets = np.arange(0, 20 * (len(times) + 1), 20, dtype=np.int32)
    strings = pa.StringArray.from_buffers(len(times), pa.py_buffer(offsets), pa.py_buffer(text))
    return pc.if_else(pa.array(times.isna()), pa.scalar(None, pa.string()), strings) if times.hasnans else strings


def _graph_svg(result: "BacktestResult", path: str | Path) -> str | None:
    """The run's annotated graph as SVG; None (with a warning if ``dot`` failed) when it cannot be drawn.

    The graph is a by-product of the results, so a failing ``dot`` does not stop them being written.
    """
    if shutil.which("dot") is None:
        return None
    try:
        return draw(build_graph(result.compiled, result.stats), "svg", path).decode("utf-8")
    except CandleflowError as exc:
        print(f"warning: {exc}; the results are written without it", file=sys.stderr)
        return None


def write_results(result: "BacktestResult", out_dir: str | Path, *,
                  extras: Mapping[str, Callable[[Path], Any]] | None = None, format: str = SERIES_FORMATS[0]) -> Path:
    """Write the result files as a new ``out_dir``, switched in atomically (see the module docstring); the
    per-candle series (equity, indicators, candles) as ``format``: ``parquet`` (default) or ``csv``.

    ``extras`` maps more paths inside the folder (e.g. a ``--report`` given inside ``--out``) to a
    function that writes that file; they become part of the same atomic set.
    """
    check_format(format)
    out = check_results_folder(out_dir)
    files = render_files(result, out / GRAPH, format=format)  # everything rendered before the first byte is written
    with staged_folder(out) as stage:
        for name, content in files.items():
            if isinstance(content, bytes):
                (stage / name).write_bytes(content)
            else:
                (stage / name).write_text(content, encoding="utf-8")
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
    owned = {name for file in RESULT_FILES for name in file.names}
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


def read_results(out_dir: str | Path) -> dict[str, Any]:
    """Load a results folder back (for ``candleflow report``), keyed by :attr:`ResultFile.key`.

    CSVs come back as frames with their time index and time columns parsed (UTC),
    JSON with its numbers member's null/"inf"/"-inf" as NaN/inf, text as text; an
    optional file that is absent is None.
    """
    check_no_nul(out_dir, "results folder path", DataError)
    out = Path(out_dir)
    if not os.path.lexists(out):
        clean_stale(Path(os.path.realpath(out)))  # a run killed mid-switch (fallback) moved the old set aside
    present = {file.key: _present(file, out) for file in RESULT_FILES}
    missing = [" or ".join(file.names) for file in RESULT_FILES if not file.optional and present[file.key] is None]
    if missing:
        raise DataError(f"not a candleflow results folder: missing {', '.join(missing)}", file=str(out))
    contents: dict[str, Any] = {}
    for file in RESULT_FILES:
        file = present[file.key] or file
        path = out / file.name
        if file.optional and not path.is_file():
            contents[file.key] = None
            continue
        try:
            contents[file.key] = _read(file, path)
        except _Bad as exc:
            raise DataError(exc.message, file=str(path), path=exc.where) from None
    return contents


def _present(file: ResultFile, out: Path) -> ResultFile | None:
    """``file`` as it is in ``out`` (a series in the first of SERIES_FORMATS there), None if it is absent."""
    for name in file.names:
        if (out / name).is_file():
            return file.as_format(name.rsplit(".", 1)[1])
    return None


class _Bad(Exception):
    """A results file is not as the schema says: what, and where in the file (a row or JSON path)."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message, self.where = message, where


def _read(file: ResultFile, path: Path) -> Any:
    """One file's content as the schema describes it (:class:`_Bad` when it is not)."""
    if file.format == "parquet":
        try:
            frame = pq.read_table(path).to_pandas()
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise _Bad(f"cannot read Parquet: {str(exc).splitlines()[0][:200]}") from None
        return _checked_frame(file, frame)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Bad(f"cannot read: {exc}") from None
    if file.format == "text":
        return text
    if file.format == "json":
        return _read_json(file, text)
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise _Bad(f"cannot read CSV: {str(exc).splitlines()[0][:200]}") from None
    return _checked_frame(file, frame)


def _checked_frame(file: ResultFile, frame: pd.DataFrame) -> pd.DataFrame:
    """A CSV or Parquet file's frame checked and typed as the schema says (times UTC, numbers numbers)."""
    expected = [*([file.index] if file.index else []), *(file.columns or ())]
    missing = [column for column in expected if column not in frame.columns]
    if any(column not in file.added for column in missing):
        raise _Bad(f"missing column(s): {', '.join(missing)}")
    for column in missing:  # a folder written before the column was added: unknown, in the schema's place
        frame.insert(min(expected.index(column), len(frame.columns)), column, np.nan)
    for column in file.times:
        frame[column] = _times(frame[column])
    for column in frame.columns if file.numeric == "all" else file.numeric:
        if column == file.index:
            continue
        if file.format == "parquet" and not pd.api.types.is_numeric_dtype(frame[column]):  # typed: no guessing
            raise _Bad(f"column '{column}' is stored as {frame[column].dtype}, not as numbers")
        frame[column] = _numbers(frame[column]).astype("float64") if file.series else _numbers(frame[column])
    if file.index is not None:
        frame = frame.set_index(pd.DatetimeIndex(_times(frame.pop(file.index)), name=file.index))
    return frame


def _read_json(file: ResultFile, text: str) -> Any:
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Bad(f"not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        raise _Bad("not valid JSON: a number in it has more than 4300 digits") from None
    shape = _shape(file.name)
    if shape is not None:
        try:
            shape.validate_python(content)
        except ValidationError as exc:
            first = exc.errors()[0]
            message = "expected a JSON object" if first["type"] == "model_type" else first["msg"]
            raise _Bad(message, format_loc(first["loc"]) or None) from None
    if file.numbers is not None:
        content[file.numbers] = {name: _json_number(name, v) for name, v in content[file.numbers].items()}
    return content


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
def _shape(name: str) -> TypeAdapter | None:
    """The expected shape of a results JSON file (None: any JSON)."""
    if name == "metrics.json":
        return TypeAdapter(_Metrics)
    if name == "nodes.json":
        return TypeAdapter(list[NodeStats], config=ConfigDict(extra="forbid"))  # the report builds NodeStats(**row)
    return None


def _times(column: pd.Series) -> pd.Series:
    """UTC times in nanoseconds, like the run's own (pandas 3 would parse text to microseconds)."""
    times = pd.to_datetime(column, utc=True, format="ISO8601", errors="coerce")
    bad = times.isna() & column.notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise _Bad(f"'{column.name}' value {str(column.iloc[row])[:50]!r} is not a time", f"row {row + 2}")
    return times.dt.as_unit("ns")


def _numbers(column: pd.Series) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise _Bad(f"column '{column.name}' has a non-numeric value {str(column.iloc[row])[:50]!r}", f"row {row + 2}")
    return values


def _json_number(name: str, value: Any) -> float | int:
    """The inverse of :func:`json_safe` for a number: null is NaN, "inf"/"-inf" are infinities."""
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"'{name}' is {value!r}, not a number")
    return value
