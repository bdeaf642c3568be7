"""The node cache's Arrow/JSON codec: every node output comes back exactly, anything else is refused.

"Exactly" is checked strictly: values bit for bit (NaN payloads, -0.0, inf), dtypes, the
index class, tz, unit, freq and name, column labels and their dtype, the Python type of every
object value (``repr`` equality: a tuple is not a list, a numpy float not a float).  The
round trip goes through the whole entry file (:func:`entry_bytes` -> :func:`read_entry`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from candleflow.dag.cache import NodeCache, entry_bytes, read_entry
from candleflow.dag.cache_codec import Unencodable, encode
from candleflow.errors import CandleflowWarning
from candleflow.nodes.outputs import empty_signal_frame, make_signal_frame

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = "node-0123456789abcdef"


def round_trip(value, kind: str | None = "indicator"):
    return read_entry(entry_bytes(KEY, value, kind), KEY, kind)


def assert_same_array(a, b) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype.kind == "f":
        assert a.view(f"u{a.itemsize}").tolist() == b.view(f"u{b.itemsize}").tolist()  # bit for bit
    elif a.dtype == object:
        assert [repr(v) for v in a] == [repr(v) for v in b]  # same values of the same types
    else:
        assert a.tolist() == b.tolist()


def assert_same_index(a: pd.Index, b: pd.Index) -> None:
    assert type(a) is type(b) and a.dtype == b.dtype and repr(a.name) == repr(b.name)
    assert getattr(a, "freq", None) == getattr(b, "freq", None)
    pd.testing.assert_index_equal(a, b, exact=True, check_exact=True)
    if not isinstance(a, pd.RangeIndex) and not isinstance(a.dtype, pd.StringDtype):
        ticks = a.dtype.kind in "Mm"
        assert_same_array(a.asi8 if ticks else a.to_numpy(), b.asi8 if ticks else b.to_numpy())


def assert_same_series(a: pd.Series, b: pd.Series) -> None:
    assert type(b) is pd.Series and a.dtype == b.dtype and repr(a.name) == repr(b.name)
    if a.dtype != object:  # pandas compares dicts holding NaN as different: object values are compared by repr
        pd.testing.assert_series_equal(a, b, check_exact=True, check_freq=True, check_flags=True)
    assert_same_index(a.index, b.index)
    if isinstance(a.dtype, np.dtype):
        assert_same_array(a.to_numpy() if a.dtype.kind not in "Mm" else a.array.asi8,
                          b.to_numpy() if b.dtype.kind not in "Mm" else b.array.asi8)


def assert_same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert type(b) is pd.DataFrame and a.shape == b.shape
    numeric = [i for i in range(a.shape[1]) if a.dtypes.iloc[i] != object]
    pd.testing.assert_frame_equal(a.iloc[:, numeric], b.iloc[:, numeric], check_exact=True, check_freq=True,
                                  check_flags=True, check_column_type=True)
    assert_same_index(a.index, b.index)
    assert_same_index(a.columns, b.columns)
    for i in range(a.shape[1]):
        assert_same_series(a.iloc[:, i], b.iloc[:, i])


# --- strategies -------------------------------------------------------------------------------------------------

floats = st.floats(width=64)  # NaN (with payloads), inf, -0.0, subnormals
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8)
labels = st.none() | st.text(max_size=4) | st.integers(-3, 3)
UNITS = ("s", "ms", "us", "ns")


@st.composite
def indexes(draw, n: int) -> pd.Index:
    choice = draw(st.sampled_from(["range", "utc", "naive", "freq", "int", "str"]))
    name = draw(labels)
    if choice == "range":
        start, step = draw(st.integers(-5, 5)), draw(st.sampled_from([1, 2, -1]))
        return pd.RangeIndex(start, start + step * n, step, name=name)
    if choice == "freq":
        return pd.date_range("2024-01-01", periods=n, freq=draw(st.sampled_from(["h", "15min", "D"])), tz="UTC",
                             name=name)
    if choice in ("utc", "naive"):
        ticks = np.array(draw(st.lists(st.integers(-2**40, 2**40), min_size=n, max_size=n)), dtype="i8")
        index = pd.DatetimeIndex(ticks.view(f"M8[{draw(st.sampled_from(UNITS))}]"), name=name)
        return index.tz_localize("UTC") if choice == "utc" else index
    if choice == "int":
        return pd.Index(np.array(draw(st.lists(st.integers(-9, 9), min_size=n, max_size=n)), dtype="i8"), name=name)
    return pd.Index(draw(st.lists(st.text(max_size=3), min_size=n, max_size=n)), dtype=object, name=name)


@st.composite
def columns(draw, n: int):
    kind = draw(st.sampled_from(["f8", "f4", "i8", "u1", "bool", "utc", "naive", "td", "str", "json", "string"]))
    if kind in ("f8", "f4"):
        return np.array(draw(st.lists(st.floats(width=32 if kind == "f4" else 64), min_size=n, max_size=n)),
                        dtype=kind)
    if kind in ("i8", "u1"):
        return np.array(draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)), dtype=kind)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind in ("utc", "naive", "td"):
        ticks = np.array(draw(st.lists(st.integers(-2**40, 2**40), min_size=n, max_size=n)), dtype="i8")
        ticks[: draw(st.integers(0, n))] = np.iinfo("i8").min  # NaT
        unit = draw(st.sampled_from(UNITS))
        if kind == "td":
            return ticks.view(f"m8[{unit}]")
        values = pd.DatetimeIndex(ticks.view(f"M8[{unit}]"))
        return (values.tz_localize("UTC") if kind == "utc" else values).array
    if kind == "string":
        return pd.array(draw(st.lists(st.none() | st.text(max_size=3), min_size=n, max_size=n)), dtype="str")
    items = draw(st.lists(st.text(max_size=3) if kind == "str" else json_values, min_size=n, max_size=n))
    return pd.array(items, dtype=object)


@st.composite
def series(draw) -> pd.Series:
    n = draw(st.integers(0, 12))
    values = np.array(draw(st.lists(floats, min_size=n, max_size=n)), dtype="f8")
    return pd.Series(values, index=draw(indexes(n)), name=draw(labels))


@st.composite
def frames(draw) -> pd.DataFrame:
    n, width = draw(st.integers(0, 8)), draw(st.integers(0, 5))
    index = draw(indexes(n))
    data = {i: pd.Series(draw(columns(n)), index=index, copy=False) for i in range(width)}
    frame = pd.DataFrame(data, index=index) if data else pd.DataFrame(index=index)
    names = draw(st.lists(st.text(max_size=3), min_size=width, max_size=width))  # duplicates allowed
    frame.columns = pd.Index(names, dtype=draw(st.sampled_from([object, "str"])))
    return frame


# --- round trips ------------------------------------------------------------------------------------------------


@PROPERTY
@given(series())
def test_series_round_trip(value):
    assert_same_series(value, round_trip(value))


@PROPERTY
@given(frames())
def test_frame_round_trip(value):
    assert_same_frame(value, round_trip(value))


@settings(PROPERTY, max_examples=25)  # each example encodes a real trades frame and equity curve
@given(st.dictionaries(st.text(max_size=6), st.floats() | st.integers() | st.none(), max_size=12))
def test_simulation_round_trip(metrics):
    from candleflow.portfolio.simulate import Simulation

    simulation = real_simulation()
    value = Simulation(trades=simulation.trades, equity=simulation.equity, position=simulation.position,
                       metrics=dict(simulation.metrics, **metrics))
    back = round_trip(value, "evaluator")
    assert_same_frame(value.trades, back.trades)
    assert_same_series(value.equity, back.equity)
    assert_same_array(value.position, back.position)
    assert back.position.flags.writeable
    assert repr(back.metrics) == repr(value.metrics)


_SIMULATION = []


def real_simulation():
    """A real evaluator output with trades, NaN and inf metrics (a short losing-free run has profit_factor inf)."""
    if not _SIMULATION:
        from candleflow.backtest import run_compiled
        from candleflow.config import parse_strategy
        from candleflow.dag.compiler import compile_strategy
        from candleflow.data import generate_candles

        compiled = compile_strategy(parse_strategy(
            "{name: t, symbol: X, timeframe: 1h, data: {sample: eurusd_1h},"
            " indicators: [{name: fast, component: sma, params: {period: 5}},"
            "              {name: slow, component: sma, params: {period: 20}}],"
            " signals: [{name: cross, component: ma_crossover, inputs: [fast, slow]}],"
            " rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}}"))
        _SIMULATION.append(run_compiled(compiled, generate_candles(300, seed=5), scheduler="sync").simulation)
    return _SIMULATION[0]


def test_real_outputs_and_edge_cases_round_trip():
    simulation = real_simulation()
    assert len(simulation.trades) > 0
    index = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC", name="time")
    signals = make_signal_frame([3, 1, 1], ["b", "a", "c"], [0.5, -0.0, 1e-310],
                                [{"x": math.nan, "y": [1, {"z": None}], "w": -math.inf}, None, {"": True}])
    cases = [
        simulation.equity, simulation.trades, signals, empty_signal_frame(), simulation.trades.iloc[:0],
        pd.Series([math.nan, math.inf, -0.0, 1.5], index=index, name="close"),
        pd.DataFrame({"upper": [1.0] * 4, "lower": [math.nan] * 4}, index=index),
        pd.DataFrame(index=index), pd.DataFrame(), pd.Series([], dtype="f8"),
        pd.Series((np.array([np.nan], dtype="f8").view("u8") | np.uint64(5)).view("f8")),  # a NaN payload
        pd.DataFrame({"h": np.array([1.5, -2], dtype="f2"), "i": np.array([-1, 2], dtype="i1"),
                      "u": np.array([2**64 - 1, 0], dtype="u8"), "b": [True, False],
                      "t": pd.to_timedelta([1, -5], unit="s"), "n": pd.to_datetime([0, 10**18])}),
        pd.Series([1.0, 2.0], index=pd.Index(["a", "b"], dtype="str")),
        pd.Series([1.0, 2.0], index=pd.date_range("2024", periods=2, freq="D", tz="Europe/Paris")),
    ]
    for value in cases:
        back = round_trip(value)
        (assert_same_series if isinstance(value, pd.Series) else assert_same_frame)(value, back)


# --- what is refused --------------------------------------------------------------------------------------------

UNENCODABLE = {
    "tuple in metadata": make_signal_frame([0], ["a"], None, [{"at": (1, 2)}]),
    "numpy float in metadata": make_signal_frame([0], ["a"], None, [{"x": np.float64(1.5)}]),
    "int key in metadata": make_signal_frame([0], ["a"], None, [{1: "x"}]),
    "an object": pd.Series([object()], dtype=object),
    "categorical": pd.Series(pd.Categorical(["a", "b"])),
    "complex": pd.Series([1j]),
    "nullable int": pd.Series([1, None], dtype="Int64"),
    "multiindex": pd.Series([1.0], index=pd.MultiIndex.from_tuples([(1, 2)])),
    "period index": pd.Series([1.0], index=pd.period_range("2024", periods=1, freq="D")),
    "tuple label": pd.Series([1.0], name=("a", "b")),
    "attrs": pd.Series([1.0]).pipe(lambda s: s.attrs.update(unit="pips") or s),
    "a subclass": type("MySeries", (pd.Series,), {})([1.0]),
    "a list": [1.0, 2.0],
    "a numpy array": np.zeros(3),
}


@pytest.mark.parametrize("name", UNENCODABLE)
def test_values_needing_pickle_are_refused(name):
    with pytest.raises(Unencodable):
        encode(UNENCODABLE[name])


def test_simulation_with_unplain_metrics_is_refused():
    from candleflow.portfolio.simulate import Simulation

    simulation = real_simulation()
    bad = Simulation(trades=simulation.trades, equity=simulation.equity, position=simulation.position,
                     metrics={"sharpe": np.float64(1.0)})
    with pytest.raises(Unencodable, match="metrics hold a numpy.float64"):
        encode(bad)


def test_the_cache_keeps_refused_values_in_memory_and_warns_once(tmp_path):
    cache = NodeCache(tmp_path)
    value = UNENCODABLE["tuple in metadata"]
    with pytest.warns(CandleflowWarning, match="node 'sig': its output is kept in memory only") as caught:
        cache.put("sig-1", value, kind="signal")
        cache.put("sig-2", value, kind="signal")
    assert len(caught) == 1
    assert cache.get("sig-1") is value
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert NodeCache(tmp_path).get("sig-1", None, kind="signal") is None  # nothing on disk


def test_stored_and_read_by_a_fresh_cache(tmp_path):
    value = real_simulation()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NodeCache(tmp_path).put(KEY, value, kind="evaluator")
        back = NodeCache(tmp_path).get(KEY, kind="evaluator")
    assert_same_frame(value.trades, back.trades)
    assert not list(tmp_path.rglob("*.pkl"))
