"""Load candles from CSV or Parquet and check them.

The result is always the same shape: a DataFrame indexed by a UTC
``DatetimeIndex`` named ``time`` with float64 columns ``open, high, low, close,
volume``.  Checks, each a :class:`~candleflow.errors.DataError` naming the file
and the first offending row: required columns, parseable timestamps in one time
zone and inside pandas' nanosecond range (years 1677 to 2262), sorted unique
timestamps, numeric OHLC without NaN (a Parquet file's columns stored as numbers, not
text), ``high >= low``, open/close inside ``[low, high]`` and no negative volume.

Reading is bounded before pandas sees a byte: a file (a CSV's text once
decompressed) larger than ``max_bytes`` (default :data:`MAX_DATA_BYTES`, the
CLI's ``--max-data-size``) is refused, and a CSV streams to pandas through
:class:`_CheckedStream`, which refuses a NUL byte (binary data, or a file padded
with zeros) and a row longer than :data:`MAX_ROW_BYTES` in the chunk where they
first appear, so neither can grow pandas' parse buffers without bound.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.errors import OutOfBoundsDatetime

from candleflow._atomic import atomic_path
from candleflow.errors import DataError, check_no_nul
from candleflow.vocab import CANDLE_COLUMNS, PRICE_COLUMNS

TIME_COLUMNS = ("time", "timestamp", "datetime", "date")


MAX_DATA_BYTES = 1 << 30  # 1 GiB: a data file (a CSV's text) larger than this is refused unless the limit is raised
MAX_ROW_BYTES = 1 << 20  # 1 MiB: no candle row is anywhere near this long


def load_candles(path: str | Path, *, format: str | None = None, start: str | None = None,
                 end: str | None = None, max_bytes: int | None = None) -> pd.DataFrame:
    """Read ``path`` (``.csv``, ``.csv.gz``, ``.parquet``) into checked candles.

    ``max_bytes`` (default :data:`MAX_DATA_BYTES`) bounds the file, and a CSV's
    decompressed text; see the module docstring.
    """
    check_no_nul(path, "data file path", DataError)
    path = Path(path)
    file = str(path)
    if not path.exists():
        raise DataError("data file not found", file=file)
    limit = MAX_DATA_BYTES if max_bytes is None else max_bytes
    if path.stat().st_size > limit:
        raise DataError(f"data file is {format_size(path.stat().st_size)}, more than the {format_size(limit)} "
                        f"allowed; raise the limit with --max-data-size", file=file)
    kind = format or ("parquet" if path.suffix in (".parquet", ".pq") else "csv")
    try:
        raw = pd.read_parquet(path) if kind == "parquet" else _read_csv(path, limit=limit, file=file)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError("data file is empty", file=file) from None
    except pd.errors.ParserError as exc:
        fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if fields:
            expected, line, saw = fields.groups()
            raise DataError(f"expected {expected} fields (as in the header), saw {saw}", file=file,
                            path=f"row {line}") from None
        raise DataError(f"cannot read {kind} file: {str(exc).splitlines()[0]}", file=file) from None
    except Exception as exc:  # parser errors of every flavour: say what the reader said
        raise DataError(f"cannot read {kind} file: {str(exc).splitlines()[0]}", file=file) from None
    if kind == "parquet":
        _check_parquet_types(raw, file=file)
    candles = validate_candles(raw, file=file)
    return slice_candles(candles, start=start, end=end, file=file)


def _read_csv(path: Path, *, limit: int, file: str) -> pd.DataFrame:
    """``pd.read_csv`` through a :class:`_CheckedStream` (decompressing .gz, .bz2 and .xz ourselves, so the checks
    see the text); other compressions pandas reads directly, bounded only by the file's size."""
    import bz2  # compressed inputs only
    import gzip  # compressed inputs only
    import lzma  # compressed inputs only

    openers = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open, None: open}
    compression = pd.io.common.infer_compression(str(path), "infer")
    if compression not in openers:
        return pd.read_csv(path)
    with openers[compression](path, "rb") as raw:
        return pd.read_csv(io.BufferedReader(_CheckedStream(raw, limit=limit, file=file), buffer_size=MAX_ROW_BYTES))


class _CheckedStream(io.RawIOBase):
    """A CSV's bytes on their way to pandas, read at most MAX_ROW_BYTES at a time and checked chunk by chunk.

    State: bytes read so far (refused past ``limit``), newlines seen (to name the
    row), and the length of the row still open at the end of the last chunk.  As
    no chunk is longer than MAX_ROW_BYTES, a row too long must reach across a
    chunk boundary, where it is measured.
    """

    def __init__(self, raw: BinaryIO, *, limit: int, file: str) -> None:
        super().__init__()
        self._raw, self._limit, self._file = raw, limit, file
        self._read = self._newlines = self._open_row = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        data = self._raw.read(min(len(buffer), MAX_ROW_BYTES))
        self._check(data)
        buffer[:len(data)] = data
        return len(data)

    def _check(self, data: bytes) -> None:
        self._read += len(data)
        if self._read > self._limit:
            raise DataError(f"data file holds more than the {format_size(self._limit)} of text allowed; raise the "
                            f"limit with --max-data-size", file=self._file)
        nul = data.find(b"\0")
        if nul >= 0:
            row = self._newlines + data.count(b"\n", 0, nul) + 1
            raise DataError("NUL byte: this is not a CSV text file (binary data, or a file padded with zeros?)",
                            file=self._file, path=f"row {row}")
        first = data.find(b"\n")
        if self._open_row + (len(data) if first < 0 else first) > MAX_ROW_BYTES:
            raise DataError(f"row longer than {format_size(MAX_ROW_BYTES)}: this is not a candle CSV file",
                            file=self._file, path=f"row {self._newlines + 1}")
        if first < 0:
            self._open_row += len(data)
        else:
            self._newlines += data.count(b"\n")
            self._open_row = len(data) - data.rfind(b"\n") - 1


def _check_parquet_types(raw: pd.DataFrame, *, file: str) -> None:
    """A Parquet file is typed: a candle column stored as text (``"1.0712"``) is a broken file, not a number to
    guess (a CSV's text is parsed as numbers instead)."""
    for column in raw.columns:
        if str(column).strip().lower() in CANDLE_COLUMNS and not pd.api.types.is_numeric_dtype(raw[column]):
            values = raw[column]
            row = int(np.flatnonzero(values.notna().to_numpy())[0]) if values.notna().any() else 0
            raise DataError(f"column '{column}' is stored as {values.dtype} ({values.iloc[row]!r}), not as numbers",
                            file=file, path=_row(row))


def format_size(size: int) -> str:
    """``1073741824`` -> ``1 GiB``; ``1536`` -> ``1.5 KiB``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def parse_size(text: str) -> int:
    """``4G``, ``500M``, ``1.5GiB``, ``2000000`` -> bytes (K, M, G, T are powers of 1024); ValueError if not a size."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"'{text}' is not a size (e.g. 4G, 500M, 2000000)")
    number, unit = match.groups()
    return int(float(number) * (1 << (10 * " KMGT".index(unit.upper() or " "))))


def validate_candles(raw: pd.DataFrame, *, file: str = "<data>") -> pd.DataFrame:
    """Check and normalise a raw frame (time as a column or as the index)."""
    frame = raw.copy()
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    repeated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise DataError(f"duplicate column(s): {', '.join(repeated)} (column names are case-insensitive)", file=file)
    if isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.reset_index(names="time") if "time" not in frame.columns else frame.reset_index(drop=True)
    time_col = _check_columns(frame.columns, file=file)
    if len(frame) == 0:
        raise DataError("data file has no rows", file=file)
    if "volume" not in frame.columns:
        frame["volume"] = 0.0
    index = _parse_times(frame[time_col], file=file)
    values = {}
    for column in CANDLE_COLUMNS:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        bad = numeric.isna() & frame[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"column '{column}' has a non-numeric value {frame[column].iloc[row]!r}",
                            file=file, path=_row(row))
        values[column] = numeric.to_numpy(dtype="float64")
    candles = pd.DataFrame(values, index=index)
    _check_values(candles, file=file)
    return candles


def _check_columns(columns, *, file: str) -> str:
    """The time column's name among ``columns`` (lower case); a DataError naming the columns missing."""
    time_col = next((c for c in TIME_COLUMNS if c in columns), None)
    missing = [c for c in PRICE_COLUMNS if c not in columns]
    if time_col is None:
        missing.insert(0, "time")
    if missing:
        raise DataError(f"missing column(s): {', '.join(missing)} (need time, open, high, low, close[, volume])",
                        file=file)
    return time_col


def check_header(path: str | Path, *, format: str | None = None) -> None:
    """Read only the header of the data file ``path`` (a CSV's first line, a Parquet file's schema) and check that
    it names the candle columns; a DataError if it cannot be read or lacks one."""
    path = Path(path)
    file = str(path)
    kind = format or ("parquet" if path.suffix in (".parquet", ".pq") else "csv")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq  # Parquet only

            columns = pq.read_schema(path).names
        else:
            columns = list(pd.read_csv(path, nrows=0).columns)
    except pd.errors.EmptyDataError:
        raise DataError("data file is empty", file=file) from None
    except Exception as exc:  # any reader's failure: say what it said
        raise DataError(f"cannot read the {kind} file's header: {str(exc).splitlines()[0]}", file=file) from None
    _check_columns([str(c).strip().lower() for c in columns], file=file)


def _parse_times(column: pd.Series, *, file: str) -> pd.DatetimeIndex:
    if column.isna().any():
        raise DataError("missing timestamp", file=file, path=_row(int(np.flatnonzero(column.isna().to_numpy())[0])))
    if pd.api.types.is_datetime64_any_dtype(column):
        times = pd.DatetimeIndex(column)
        times = times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        unit = "ms" if column.abs().max() > 1e11 else "s"
        try:
            times = pd.DatetimeIndex(pd.to_datetime(column, unit=unit, utc=True))
        except (ValueError, OverflowError, OutOfBoundsDatetime):
            row = int(np.argmax(column.abs().to_numpy()))
            unit_name = "milliseconds" if unit == "ms" else "seconds"
            raise DataError(f"timestamp {column.iloc[row].item()!r} is out of range for epoch {unit_name}", file=file,
                            path=_row(row)) from None
    else:
        text = column.astype(str).str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise DataError(f"timestamp {text.iloc[row]!r} is not an ISO-8601 time (e.g. 2023-01-02T00:00:00Z)",
                            file=file, path=_row(row))
        _check_one_zone(text, file=file)
        times = pd.DatetimeIndex(parsed)
    outside = (times < _EARLIEST) | (times > _LATEST)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DataError(f"timestamp {times[row].isoformat()} is outside the range candleflow handles "
                        f"({_EARLIEST.date()} to {_LATEST.date()})", file=file, path=_row(row))
    times = times.as_unit("ns")
    diffs = np.diff(times.asi8)
    if (diffs == 0).any():
        row = int(np.flatnonzero(diffs == 0)[0]) + 1
        raise DataError(f"duplicate timestamp {times[row].isoformat()} (same as {_row(row - 1)})", file=file,
                        path=_row(row))
    if (diffs < 0).any():
        row = int(np.flatnonzero(diffs < 0)[0]) + 1
        raise DataError(f"timestamps not sorted: {times[row].isoformat()} comes after {times[row - 1].isoformat()}",
                        file=file, path=_row(row))
    return pd.DatetimeIndex(times, name="time")


def _check_one_zone(text: pd.Series, *, file: str) -> None:
    """A DataError naming the first row whose time zone (``Z``, ``+01:00``, ``+0100`` or none) differs from row 2's.

    Vectorized in Arrow (RE2 over the whole column); the offending row is looked for only once the check failed.
    """
    strings = pa.array(text.array, type=pa.string())
    if pc.all(pc.ends_with(strings, "Z")).as_py():  # the usual file: every time in UTC
        return
    zones = pc.struct_field(pc.extract_regex(strings, r"(?P<zone>Z|[+-]\d\d:?\d\d)$"), [0])
    zones = pc.replace_substring_regex(pc.fill_null(zones, "no zone"), r"^([+-]\d\d)(\d\d)$", r"\1:\2")
    zones = pc.if_else(pc.equal(zones, "Z"), "+00:00", zones)
    if pc.count_distinct(zones).as_py() <= 1:
        return
    first = zones[0].as_py()
    row = int(np.flatnonzero(pc.not_equal(zones, first).to_numpy(zero_copy_only=False))[0])
    raise DataError(f"mixed time zones ({first} in row 2, {zones[row].as_py()} here); use one zone, preferably UTC",
                    file=file, path=_row(row))


_EARLIEST, _LATEST = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")  # nanoseconds' range


def _check_values(candles: pd.DataFrame, *, file: str) -> None:
    for column in CANDLE_COLUMNS:
        values = candles[column].to_numpy()
        nan = np.isnan(values)
        if nan.any():
            raise DataError(f"column '{column}' has NaN (an empty or NaN cell)", file=file,
                            path=_row(int(np.flatnonzero(nan)[0])))
        inf = np.isinf(values)
        if inf.any():
            row = int(np.flatnonzero(inf)[0])
            raise DataError(f"column '{column}' has an infinite value {values[row]}", file=file, path=_row(row))
    o, h, l, c = (candles[col].to_numpy() for col in PRICE_COLUMNS)
    v = candles["volume"].to_numpy()
    checks = [
        (h < l, lambda i: f"high {_num(h[i])} < low {_num(l[i])}"),
        ((o > h) | (o < l), lambda i: f"open {_num(o[i])} outside [low {_num(l[i])}, high {_num(h[i])}]"),
        ((c > h) | (c < l), lambda i: f"close {_num(c[i])} outside [low {_num(l[i])}, high {_num(h[i])}]"),
        ((o <= 0) | (l <= 0), lambda i: f"non-positive price (open {_num(o[i])}, low {_num(l[i])})"),
        (v < 0, lambda i: f"negative volume {_num(v[i])}"),
    ]
    for bad, what in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(what(row), file=file, path=_row(row))


def _num(value: float) -> str:
    return repr(float(value))


def slice_candles(candles: pd.DataFrame, *, start: str | None, end: str | None, file: str) -> pd.DataFrame:
    """Keep candles with ``start <= time < end`` (either bound optional)."""
    if start is None and end is None:
        return candles
    lo = pd.Timestamp(start, tz="UTC") if start else None
    hi = pd.Timestamp(end, tz="UTC") if end else None
    kept = candles.loc[(candles.index >= lo if lo is not None else True) & (candles.index < hi if hi is not None else True)]
    if kept.empty:
        raise DataError(f"no candles between {start} and {end}", file=file)
    return kept


def _row(position: int) -> str:
    """Data rows are numbered as a spreadsheet shows them: header is line 1."""
    return f"row {position + 2}"


def write_candles(candles: pd.DataFrame, path: str | Path) -> None:
    """Write candles as CSV (ISO-8601 UTC times) or Parquet, atomically."""
    path = Path(path)
    out = candles.reset_index()
    with atomic_path(path) as tmp:
        if path.suffix in (".parquet", ".pq"):
            out.to_parquet(tmp, index=False)
        else:
            out["time"] = out["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            out.to_csv(tmp, index=False)  # floats as repr: exact
