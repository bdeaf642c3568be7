"""Node outputs as Arrow IPC streams plus JSON, rebuilt exactly; decoding can never run code.

The on-disk node cache (:mod:`candleflow.dag.cache`) stores what nodes output
(see :mod:`candleflow.nodes.outputs` and :mod:`candleflow.portfolio.simulate`):

* ``"series"``: a pandas Series (an indicator: float64 on the candles' UTC DatetimeIndex);
* ``"frame"``: a DataFrame (a multi-output indicator, or a signal frame whose ``metadata``
  column holds dicts or None);
* ``"simulation"``: the evaluator's :class:`~candleflow.portfolio.simulate.Simulation`
  (trades frame, equity series, position array, metrics and notes dicts).

:func:`encode` turns one into a JSON-able description (dtypes, names, index, metrics) and a
list of Arrow IPC streams (one table per frame, series or array, its columns named by
position); :func:`decode` rebuilds the same object from both: same values bit for bit, same
dtypes, index class, tz, freq, names.  A column is stored by one of these codecs:

* ``numeric``: a native-endian numpy bool/int/uint/float column, copied as is (NaN and its
  payload, inf and -0.0 survive);
* ``datetime`` / ``timedelta``: the int64 ticks, rebuilt with the dtype's unit and tz;
* ``str``: an object column of Python ``str`` only, as an Arrow string column;
* ``json``: any other object column whose values are plain JSON (None, bool, int, float
  incl. NaN/inf, str, lists, dicts with str keys -- checked by type, so a tuple or a numpy
  scalar does not silently come back as a list or a float), kept as a list in the JSON
  description rather than in Arrow (a NaN there comes back as Python's NaN, without a
  payload or sign bit it may have had);
* ``string``: a pandas string dtype (``str``), NA kept.

Anything else (another dtype, a MultiIndex, an object that is not plain JSON, a subclass,
``attrs``) raises :class:`Unencodable` and the cache keeps that value in memory only.  There is
deliberately no pickle fallback: unpickling a file from a cache folder can run any code.
Decoding reads Arrow buffers and JSON; the data only picks among the codecs and index classes
above and names dtypes for pandas to parse -- nothing is imported or called by a name it holds.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import pandas as pd

from candleflow.portfolio.simulate import Simulation

SCALARS = (str, int, float, bool, type(None))


class Unencodable(ValueError):
    """The value cannot be stored without pickle; the cache keeps it in memory only."""


def encode(value: Any) -> tuple[str, dict, list]:
    """``(type, description, Arrow IPC streams)`` of a node output; raises :class:`Unencodable`."""
    if type(value) is pd.Series:
        meta, table = _encode_series(value)
        return "series", meta, [_ipc(table)]
    if type(value) is pd.DataFrame:
        meta, table = _encode_frame(value)
        return "frame", meta, [_ipc(table)]
    if type(value) is Simulation:
        if [f.name for f in dataclasses.fields(Simulation)] != ["trades", "equity", "position", "metrics", "notes"]:
            raise Unencodable("Simulation has fields this codec does not know")  # a new field must not be lost
        if type(value.trades) is not pd.DataFrame or type(value.equity) is not pd.Series:
            raise Unencodable("Simulation holds unexpected types")
        for name in ("metrics", "notes"):
            mapping = getattr(value, name)
            problem = _impure(mapping) if type(mapping) is dict else f"a {_type_name(mapping)}"
            if problem:
                raise Unencodable(f"the {name} hold {problem}, not plain JSON")
        trades, trades_table = _encode_frame(value.trades)
        equity, equity_table = _encode_series(value.equity)
        position, position_table = _encode_array(value.position)
        meta = {"trades": trades, "equity": equity, "position": position, "metrics": value.metrics,
                "notes": value.notes}
        return "simulation", meta, [_ipc(trades_table), _ipc(equity_table), _ipc(position_table)]
    raise Unencodable(f"a {_type_name(value)}")


def decode(value_type: str, meta: dict, streams: list) -> Any:
    """Rebuild what :func:`encode` described; raises on anything unexpected (the entry is then damaged)."""
    if value_type == "series" and len(streams) == 1:
        return _decode_series(meta, _read(streams[0]))
    if value_type == "frame" and len(streams) == 1:
        return _decode_frame(meta, _read(streams[0]))
    if value_type == "simulation" and len(streams) == 3:
        metrics, notes = meta["metrics"], meta["notes"]
        if type(metrics) is not dict or type(notes) is not dict:
            raise ValueError("metrics or notes are not a mapping")
        return Simulation(trades=_decode_frame(meta["trades"], _read(streams[0])),
                          equity=_decode_series(meta["equity"], _read(streams[1])),
                          position=_decode_array(meta["position"], _read(streams[2])), metrics=metrics, notes=notes)
    raise ValueError(f"unknown value type {value_type!r} with {len(streams)} streams")


# --- containers -------------------------------------------------------------------------------------------------


def _encode_series(series: pd.Series) -> tuple[dict, Any]:
    _check_plain_object(series, "series")
    index_meta, columns = _encode_index(series.index)
    values_meta = _encode_column(series, "values", columns)
    return {"name": _label(series.name), "values": values_meta, "index": index_meta}, _table(columns)


def _decode_series(meta: dict, table) -> pd.Series:
    index = _decode_index(meta["index"], table)
    values = _decode_column(table, "values", meta["values"])
    return pd.Series(values, index=index, name=meta["name"], dtype=values.dtype, copy=False)


def _encode_frame(frame: pd.DataFrame) -> tuple[dict, Any]:
    _check_plain_object(frame, "frame")
    index_meta, columns = _encode_index(frame.index)
    dtypes = []
    for i, (label, column) in enumerate(frame.items()):
        dtypes.append(_encode_column(column, f"c{i}", columns, what=f"column {label!r}"))
    meta = {"columns": _encode_labels(frame.columns), "dtypes": dtypes, "index": index_meta}
    return meta, _table(columns)


def _decode_frame(meta: dict, table) -> pd.DataFrame:
    index = _decode_index(meta["index"], table)
    columns = _decode_labels(meta["columns"])
    if len(columns) != len(meta["dtypes"]):
        raise ValueError("column names and dtypes disagree")
    data = {}
    for i, column_meta in enumerate(meta["dtypes"]):
        values = _decode_column(table, f"c{i}", column_meta)
        # pandas >= 3 reads a bare object array of str as a str column: a Series keeps it object
        data[i] = pd.Series(values, index=index, dtype=object, copy=False) if values.dtype == object else values
    frame = pd.DataFrame(data, index=index, copy=False) if data else pd.DataFrame(index=index)
    frame.columns = columns
    return frame


def _encode_array(array: np.ndarray) -> tuple[dict, Any]:
    if type(array) is not np.ndarray or array.ndim != 1:
        raise Unencodable("an array that is not a 1-D numpy array")
    columns: dict = {}
    meta = _encode_column(array, "values", columns)
    return meta, _table(columns)


def _decode_array(meta: dict, table) -> np.ndarray:
    values = _decode_column(table, "values", meta)
    if not isinstance(values, np.ndarray):
        raise ValueError("array entry is not numeric")
    return values


def _check_plain_object(value: pd.Series | pd.DataFrame, what: str) -> None:
    if value.attrs:
        raise Unencodable(f"the {what} has attrs")
    if not value.flags.allows_duplicate_labels:
        raise Unencodable(f"the {what} disallows duplicate labels")


# --- index and labels -------------------------------------------------------------------------------------------

_INDEX_CLASSES = {"Index": pd.Index, "DatetimeIndex": pd.DatetimeIndex, "TimedeltaIndex": pd.TimedeltaIndex}


def _encode_index(index: pd.Index) -> tuple[dict, dict]:
    """The index's description, and its values as an Arrow column (none for a RangeIndex)."""
    if type(index) is pd.RangeIndex:
        return {"type": "range", "start": index.start, "stop": index.stop, "step": index.step,
                "name": _label(index.name)}, {}
    if type(index) not in _INDEX_CLASSES.values():
        raise Unencodable(f"the index is a {type(index).__name__}")
    freq = getattr(index, "freq", None)
    if freq is not None and pd.tseries.frequencies.to_offset(freq.freqstr) != freq:
        raise Unencodable(f"the index frequency {freq!r} does not survive its name")
    columns: dict = {}
    meta = _encode_column(index, "index", columns)
    return {"type": type(index).__name__, "values": meta, "name": _label(index.name),
            "freq": None if freq is None else freq.freqstr}, columns


def _decode_index(meta: dict, table) -> pd.Index:
    if meta["type"] == "range":
        bounds = [meta["start"], meta["stop"], meta["step"]]
        if any(type(b) is not int for b in bounds):
            raise ValueError("range index bounds are not integers")
        return pd.RangeIndex(*bounds, name=meta["name"])
    cls = _INDEX_CLASSES[meta["type"]]
    values = _decode_column(table, "index", meta["values"])
    if cls is pd.Index:
        index = pd.Index(values, dtype=values.dtype, name=meta["name"], copy=False)
    else:
        index = cls(values, name=meta["name"], freq=meta["freq"], copy=False)
    if type(index) is not cls:
        raise ValueError(f"index rebuilt as {type(index).__name__}, not {meta['type']}")
    return index


def _encode_labels(labels: pd.Index) -> dict:
    """Column labels as JSON: a range, or the names with the dtype of their Index."""
    if type(labels) is pd.RangeIndex:
        return _encode_index(labels)[0]
    if type(labels) is not pd.Index:
        raise Unencodable(f"the columns are a {type(labels).__name__}")
    meta = {"type": "labels", "names": [_label(v) for v in labels.tolist()], "dtype": str(labels.dtype),
            "name": _label(labels.name)}
    rebuilt = _decode_labels(meta)
    if rebuilt.dtype != labels.dtype or not rebuilt.equals(labels):
        raise Unencodable(f"the column labels {labels!r} do not survive JSON")
    return meta


def _decode_labels(meta: dict) -> pd.Index:
    if meta["type"] == "range":
        return _decode_index(meta, None)
    if meta["type"] != "labels" or type(meta["names"]) is not list:
        raise ValueError("bad column labels")
    return _labels(tuple(meta["names"]), meta["dtype"], meta["name"]).copy()  # a copy: its name may be set


@functools.lru_cache(maxsize=256)
def _labels(names: tuple, dtype: str, name: Any) -> pd.Index:
    """Memoized: the same few column labels come back for every entry (an Index is immutable, so shared)."""
    return pd.Index(list(names), dtype=_dtype(dtype), name=name)


@functools.lru_cache(maxsize=256)
def _dtype(name: str) -> Any:
    return pd.api.types.pandas_dtype(name)


def _label(value: Any) -> Any:
    if type(value) not in SCALARS:
        raise Unencodable(f"the label {value!r} is a {type(value).__name__}")
    return value


# --- columns ----------------------------------------------------------------------------------------------------


def _encode_column(values: pd.Series | pd.Index | np.ndarray, name: str, columns: dict, *,
                   what: str | None = None) -> dict:
    """Store one column as Arrow array ``columns[name]`` (or, for JSON values, in the returned description)."""
    import pyarrow as pa  # a dependency, imported only where a cache entry is written or read

    what = what or name
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf" and dtype.isnative:
        columns[name] = pa.array(np.asarray(values))
        return {"codec": "numeric", "dtype": dtype.str}
    if (isinstance(dtype, np.dtype) and dtype.kind in "Mm") or isinstance(dtype, pd.DatetimeTZDtype):
        _check_dtype_name(dtype, what)
        columns[name] = pa.array(values.view("i8") if isinstance(values, np.ndarray) else values.array.asi8)
        return {"codec": "datetime" if dtype.kind == "M" else "timedelta", "dtype": str(dtype)}
    if isinstance(dtype, pd.StringDtype):
        _check_dtype_name(dtype, what)
        columns[name] = pa.array([None if v is pd.NA or v != v else v for v in values.tolist()], type=pa.string())
        return {"codec": "string", "dtype": str(dtype)}
    if dtype == object:
        items = values.tolist()
        if all(type(v) is str for v in items):
            columns[name] = pa.array(items, type=pa.string())
            return {"codec": "str"}
        problem = next(filter(None, map(_impure, items)), None)
        if problem:
            raise Unencodable(f"{what} holds {problem}, not plain JSON")
        return {"codec": "json", "values": items}  # in the JSON header: one encode and one parse for all rows
    raise Unencodable(f"{what} has dtype {dtype}")


def _decode_column(table, name: str, meta: dict) -> Any:
    """The numpy array (or pandas array for tz-aware datetimes and strings) that :func:`_encode_column` stored."""
    codec = meta["codec"]
    if codec == "json":
        items = meta["values"]
        if type(items) is not list:
            raise ValueError("JSON column without a list of values")
        return np.fromiter(items, dtype=object, count=len(items))
    column = table.column(name)
    if codec == "numeric":
        return _numpy(column, np.dtype(meta["dtype"]))
    if codec in ("datetime", "timedelta"):
        dtype = _dtype(meta["dtype"])
        ticks = _numpy(column, np.dtype("i8"))
        if isinstance(dtype, pd.DatetimeTZDtype):
            values = pd.DatetimeIndex(ticks.view(f"M8[{dtype.unit}]")).tz_localize("UTC")  # ticks are UTC
            values = (values if values.dtype == dtype else values.tz_convert(dtype.tz)).array
        elif isinstance(dtype, np.dtype) and dtype.kind == {"datetime": "M", "timedelta": "m"}[codec]:
            values = ticks.view(dtype)
        else:
            raise ValueError(f"{codec} column with dtype {dtype}")
        if values.dtype != dtype:
            raise ValueError(f"{codec} column rebuilt as {values.dtype}, not {dtype}")
        return values
    if codec == "string":
        return pd.array(_strings(column).to_pylist(), dtype=_dtype(meta["dtype"]))
    if codec == "str":
        if _strings(column).null_count:
            raise ValueError("missing value in a str column")
        return column.to_numpy()  # an object array of Python str, converted by Arrow
    raise ValueError(f"unknown column codec {codec!r}")


def _numpy(column, dtype: np.dtype) -> np.ndarray:
    if column.null_count:
        raise ValueError("nulls in a numeric column")
    array = column.to_numpy()
    if array.dtype != dtype:
        raise ValueError(f"column holds {array.dtype}, expected {dtype}")
    return array if array.flags.writeable else array.copy()  # node outputs are ordinary, writable arrays


def _strings(column):
    import pyarrow as pa  # see _encode_column

    if not pa.types.is_string(column.type):
        raise ValueError(f"expected a string column, found {column.type}")
    return column


def _check_dtype_name(dtype: Any, what: str) -> None:
    if pd.api.types.pandas_dtype(str(dtype)) != dtype:
        raise Unencodable(f"{what} has dtype {dtype!r}, which its name does not rebuild")


def _impure(value: Any) -> str | None:
    """What in ``value`` is not plain JSON, checked by exact type (None if nothing): plain JSON is
    what ``json.loads(json.dumps(value))`` gives back unchanged, so a tuple or a numpy float is not."""
    try:
        if type(value) in SCALARS:
            return None
        if type(value) is list:
            return next(filter(None, map(_impure, value)), None)
        if type(value) is dict:
            for k, v in value.items():
                problem = f"a {_type_name(k)} key" if type(k) is not str else _impure(v)
                if problem:
                    return problem
            return None
    except RecursionError:
        return "values nested too deep"
    return f"a {_type_name(value)}"


def _type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


# --- Arrow IPC --------------------------------------------------------------------------------------------------


def _table(columns: dict):
    import pyarrow as pa  # see _encode_column

    return pa.table(columns)


def _ipc(table) -> Any:
    """The table as one Arrow IPC stream (a pyarrow Buffer: no copy into bytes)."""
    import pyarrow as pa  # see _encode_column

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _read(stream: Any):
    """A table from one IPC stream, fully validated (buffers in bounds, offsets sane) before use."""
    import pyarrow as pa  # see _encode_column

    table = pa.ipc.open_stream(pa.py_buffer(stream)).read_all()
    table.validate(full=True)
    return table
