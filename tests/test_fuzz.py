"""Property tests: whatever the input, parsers fail only with their own user-error type.

A ``ConfigError`` / ``DataError`` / ``ComponentError`` becomes one line and exit
code 2; any other exception escaping these functions would be a traceback, i.e.
a bug.  Bounded (200 examples each, no deadline) so the file runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from candleflow.components.registry import Registry
from candleflow.config import parse_strategy
from candleflow.config.loader import render_template
from candleflow.dag.compiler import compile_strategy
from candleflow.data import validate_candles
from candleflow.errors import CompileError, ComponentError, ConfigError, DataError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = {
    "name": "demo", "symbol": "EURUSD", "timeframe": "1h", "data": {"sample": "eurusd_1h"},
    "indicators": [{"name": "fast", "component": "sma", "params": {"period": 5}},
                   {"name": "slow", "component": "sma", "params": {"period": 20}}],
    "signals": [{"name": "cross", "component": "ma_crossover", "inputs": ["fast", "slow"]}],
    "rules": {"entry": {"golden_cross": "buy"}, "exit": {"death_cross": "close"}},
}
KEYS = ["name", "symbol", "timeframe", "data", "path", "sample", "format", "start", "end", "components", "indicators",
        "signals", "rules", "entry", "exit", "execution", "fill", "commission", "sizing", "method", "value", "risk",
        "stop_loss", "initial_cash", "component", "params", "inputs", "period", "lookback", "timeout", "script",
        "sma", "ema", "bollinger", "ma_crossover", "golden_cross", "buy", "close", "fast", "slow", "interval"]
TOKENS = [":", ": ", "-", "- ", " ", "  ", "\n", "\t", "[", "]", "{", "}", ",", "'", '"', "#", "&a", "*a", "!!", "!x",
          "---", "...", "|", ">", "?", "%", "@", "`", "<<", "{{", "}}", "{%", "%}", "{#", "#}", "\\", "\x00", "\ufeff",
          "1e400", "-.inf", ".nan", "null", "~", "true", "0x1F", "2024-01-01", "1h", "0"] + KEYS

# kept small: drawing deep trees costs far more than parsing them
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | st.sampled_from(KEYS)
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3), max_leaves=8)
yamlish = st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=30).map("".join)


@pytest.fixture(scope="module")
def registry():
    return Registry.default()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_workspace")


def load_and_compile(text: str, registry, workspace: Path) -> None:
    """parse_strategy may raise only ConfigError; a strategy that parses may fail to compile only with CompileError."""
    try:
        strategy = parse_strategy(text, file="f.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("f.yaml")
        return
    try:
        compile_strategy(strategy, workspace=workspace, file="f.yaml", registry=registry)
    except CompileError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("f.yaml: ")


@FUZZ
@given(st.text())
def test_strategy_loader_on_arbitrary_text(text):
    try:
        parse_strategy(text, file="f.yaml")
    except ConfigError:
        pass


@FUZZ
@given(yamlish)
def test_strategy_loader_and_template_on_yaml_like_text(registry, workspace, text):
    try:
        rendered = render_template(text, {"fast": 5}, file="f.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    load_and_compile(rendered, registry, workspace)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), trees, max_size=6))
def test_strategy_loader_on_arbitrary_mappings(registry, workspace, mapping):
    load_and_compile(yaml.safe_dump(mapping, allow_unicode=True), registry, workspace)


def _paths(node, prefix=()):
    """Every (path, value) in a nested dict/list."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


VALID_PATHS = [p for p in _paths(VALID) if p]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(VALID_PATHS), trees), min_size=1, max_size=3))
def test_strategy_loader_on_near_valid_strategies(registry, workspace, changes):
    """One to three fields of a valid strategy replaced by anything: deep errors, not just top-level ones."""
    strategy = json.loads(json.dumps(VALID))
    for path, value in changes:
        node = strategy
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this path
    load_and_compile(yaml.safe_dump(strategy, allow_unicode=True), registry, workspace)


# --- candle data ---------------------------------------------------------------------------------------------------

COLUMN_NAMES = st.sampled_from(["time", "timestamp", "date", "datetime", "open", "high", "low", "close", "volume",
                                "Open", " CLOSE ", "x"])
CELLS = (st.none() | st.booleans() | st.integers(-10**19, 10**19) | st.floats()
         | st.sampled_from(["", "nan", "inf", "1.1", "1,1", "2024-01-01T00:00:00Z", "2024-01-01 01:00",
                            "2024-01-01T02:00:00+02:00", "2024-01-01T03:00:00", "01/02/2024", "yesterday"])
         | st.text(max_size=8))
TIMES = st.one_of(
    st.lists(st.integers(0, 2 * 10**12), max_size=8),
    st.lists(st.floats(), max_size=8),
    st.lists(st.datetimes(timezones=st.none() | st.timezones()), max_size=8),
    st.lists(st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T01:00:00+0100",
                              "2024-01-01T02:00:00", "2024-13-01T00:00:00Z", "2024-01-01"]), max_size=8),
)


@st.composite
def raw_frames(draw):
    """Mostly plausible candles with something broken, sometimes plain noise."""
    n = draw(st.integers(0, 8))
    if draw(st.booleans()):
        base = 1.0 + np.cumsum(draw(st.lists(st.floats(-0.01, 0.01), min_size=n, max_size=n)) or [0.0])[:n]
        frame = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
                              "open": base, "high": base + 0.01, "low": base - 0.01, "close": base,
                              "volume": np.ones(n)})
        for _ in range(draw(st.integers(0, 3))):
            column = draw(st.sampled_from(list(frame.columns)))
            times = draw(TIMES)
            if column == "time" and len(times) == n:
                frame["time"] = pd.Series(times, dtype=object)
            elif n:
                frame[column] = frame[column].astype(object)
                frame.loc[draw(st.integers(0, n - 1)), column] = draw(CELLS)
        if draw(st.booleans()):
            frame = frame.set_index("time")
        if draw(st.booleans()) and n:
            frame = frame.drop(columns=[draw(st.sampled_from(list(frame.columns)))])
        return frame
    names = draw(st.lists(COLUMN_NAMES, max_size=7))
    return pd.DataFrame({i: draw(st.lists(CELLS, min_size=n, max_size=n)) for i in range(len(names))}).set_axis(
        names, axis=1) if names else pd.DataFrame(index=range(n))


@FUZZ
@given(raw_frames())
def test_candle_validator_on_arbitrary_frames(frame):
    try:
        candles = validate_candles(frame, file="d.csv")
    except DataError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("d.csv: ")
        return
    # whatever got through is well-formed
    assert list(candles.columns) == ["open", "high", "low", "close", "volume"]
    assert str(candles.index.tz) == "UTC" and candles.index.is_monotonic_increasing and candles.index.is_unique
    assert (candles.dtypes == "float64").all() and np.isfinite(candles.to_numpy()).all()
    assert (candles.high >= candles.low).all() and len(candles) > 0


# --- script output protocol ----------------------------------------------------------------------------------------

MARKERS = ["INDICATOR_START", "INDICATOR_END", "SIGNAL_START", "SIGNAL_END"]
JSONISH = ['{"values": [1.5], "current": 1.5}', '{"current": null}', '{"current": "1"}', "[]", "[{}]",
           '[{"timestamp": "2024-03-01T12:00:00", "signal_type": "golden_cross", "strength": 0.5}]',
           '[{"timestamp": 1e300, "signal_type": "x", "strength": 1}]',
           '[{"timestamp": "2999-01-01", "signal_type": "x", "strength": 1}]', "NaN", "{", '"', "null", "1e999"]
outputs = st.lists(st.sampled_from(MARKERS) | st.sampled_from(JSONISH) | st.text(max_size=10)
                   | st.just("\n"), max_size=12).map("".join)


@FUZZ
@given(outputs, st.integers(0, 10**6))
def test_script_output_parser_on_arbitrary_text(stdout, candle):
    protocol = pytest.importorskip("candleflow.components.script.protocol")
    now = pd.Timestamp("2024-03-01 12:00", tz="UTC")
    for parse, kwargs in [(protocol.parse_indicator_output, {}),
                          (protocol.parse_signal_output, {"candle_time": now})]:
        try:
            parse(stdout, component="fuzz", candle=candle, **kwargs)
        except ComponentError as exc:
            text = str(exc)
            assert "\n" not in text and "component 'fuzz'" in text and f"candle {candle}" in text
