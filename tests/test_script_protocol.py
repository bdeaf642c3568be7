"""Script component protocol without processes: the output parser and the per-candle environment."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from candleflow.components.script.environment import RunData, script_lookback
from candleflow.components.script.protocol import (
    NoBlockError,
    missing_block_error,
    never_printed_error,
    parse_indicator_output,
    parse_signal_output,
)
from candleflow.errors import ComponentError

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def indicator(body: str, before: str = "", after: str = "") -> str:
    return f"{before}INDICATOR_START\n{body}\nINDICATOR_END\n{after}"


def signal(body: object, before: str = "") -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return f"{before}SIGNAL_START\n{text}\nSIGNAL_END\n"


def event(**overrides: object) -> dict:
    return {"timestamp": "2024-03-01T12:00:00", "signal_type": "golden_cross", "strength": 0.85,
            "metadata": {"fast_ma": 1.1}} | overrides


def parse_ind(stdout: str) -> tuple[float | None, str]:
    return parse_indicator_output(stdout, component="sma_fast", candle=812)


def parse_sig(stdout: str) -> tuple[list, str]:
    return parse_signal_output(stdout, component="cross", candle=812, candle_time=NOW)


def raises(call, stdout: str, *fragments: str, error=ComponentError) -> ComponentError:
    with pytest.raises(error) as info:
        call(stdout)
    text = str(info.value)
    assert "\n" not in text
    assert info.value.candle == 812 and "candle 812" in text
    assert info.value.component in ("sma_fast", "cross") and f"component '{info.value.component}'" in text
    for fragment in fragments:
        assert fragment in text
    return info.value


# --- indicator blocks ---------------------------------------------------------


def test_indicator_value_and_log_outside_the_markers():
    value, log = parse_ind(indicator('{"values": [1.0, null, 1.5], "current": 1.5}', "loading\n", "done\n"))
    assert value == 1.5 and log == "loading\ndone"


def test_indicator_current_null_means_no_value_yet():
    assert parse_ind(indicator('{"values": [], "current": null}')) == (None, "")


def test_indicator_integer_current_is_a_float():
    assert parse_ind(indicator('{"current": 2}')) == (2.0, "")


def test_no_block_is_its_own_error_type():
    error = raises(parse_ind, "warming up\n", "no INDICATOR_START/INDICATOR_END block", "warming up",
                   error=NoBlockError)
    assert isinstance(error, ComponentError)


@pytest.mark.parametrize("stdout, fragment", [
    (indicator('{"current": 1}') + indicator('{"current": 2}'), "printed 2 INDICATOR_START/INDICATOR_END blocks"),
    ('INDICATOR_START\n{"current": 1}\n', "block without INDICATOR_END"),
    ('INDICATOR_END\n{"current": 1}\nINDICATOR_START\n', "block without INDICATOR_START"),
    ('{"current": 1}\nINDICATOR_END\n', "block without INDICATOR_START"),
])
def test_indicator_block_structure_errors(stdout, fragment):
    raises(parse_ind, stdout, fragment)


@pytest.mark.parametrize("body, fragments", [
    ("{'current': 1}", ["invalid JSON", "line 1 column 2", "{'current': 1}"]),
    ("[" * 100_000 + "]" * 100_000, ["nested too deeply", "[[[["]),
    ('{"current": "1.5"}', ["invalid indicator output", "current", "valid number"]),
    ('{"current": true}', ["current", "valid number"]),
    ('{"values": [1, "x"], "current": 1}', ["values[1]"]),
    ('{"values": [1]}', ["current", "required"]),
    ('{"curent": 1, "current": 1}', ["curent", "not permitted"]),
    ('[1.5]', ["valid dictionary"]),
    ('{"current": NaN}', ["current", "finite number"]),
    ('{"values": [Infinity], "current": 1}', ["values[0]", "finite number"]),
])
def test_indicator_payload_errors_quote_the_offending_text(body, fragments):
    raises(parse_ind, indicator(body), *fragments)


# --- signal blocks ----------------------------------------------------------------


def test_signal_events_and_log():
    events, log = parse_sig(signal([event(), event(signal_type="other", strength=1, metadata=None)], "note\n"))
    assert log == "note"
    assert [(e.timestamp, e.signal_type, e.strength, e.metadata) for e in events] == [
        (NOW, "golden_cross", 0.85, {"fast_ma": 1.1}), (NOW, "other", 1.0, None)]


def test_empty_signal_list():
    assert parse_sig(signal([])) == ([], "")


@pytest.mark.parametrize("timestamp", [
    "2024-03-01T12:00:00",  # naive isoformat(), as the seed prints: UTC
    "2024-03-01T12:00:00Z",
    "2024-03-01T14:00:00+02:00",
    "2024-03-01T11:00:00.5",
    int(NOW.timestamp()),
    NOW.timestamp() - 0.5,
])
def test_signal_timestamp_forms_up_to_the_current_candle(timestamp):
    (parsed,), _ = parse_sig(signal([event(timestamp=timestamp)]))
    assert parsed.timestamp.tzinfo is not None and parsed.timestamp <= NOW


def test_timestamps_are_converted_to_utc():
    (parsed,), _ = parse_sig(signal([event(timestamp="2024-03-01T14:00:00+02:00")]))
    assert parsed.timestamp == NOW and str(parsed.timestamp.tz) == "UTC"


@pytest.mark.parametrize("timestamp", ["2024-03-01T12:00:01", "2024-03-01T13:00:00+00:00", NOW.timestamp() + 3600])
def test_signal_after_the_current_candle_is_look_ahead(timestamp):
    raises(parse_sig, signal([event(timestamp=timestamp)]), "look-ahead", "2024-03-01T12:00:00+00:00")


@pytest.mark.parametrize("body, fragments", [
    ("[{]", ["invalid JSON between SIGNAL_START and SIGNAL_END"]),
    ({"signal_type": "x"}, ["invalid signal output", "valid list"]),
    ([event(strength="0.85")], ["[0].strength", "valid number"]),
    ([event(strength=math.nan)], ["[0].strength", "finite number"]),
    ([event(strength=math.inf)], ["[0].strength", "finite number"]),
    ([event(), event(signal_type="")], ["[1].signal_type", "at least 1 character"]),
    ([event(signal_type=3)], ["[0].signal_type", "valid string"]),
    ([event(timestamp="yesterday")], ["[0].timestamp", "not ISO-8601"]),
    ([event(timestamp=True)], ["[0].timestamp", "epoch seconds"]),
    ([event(timestamp=1e30)], ["[0].timestamp", "out of range"]),
    ([event(metadata=[1])], ["[0].metadata"]),
    ([{"timestamp": "2024-03-01T12:00:00", "strength": 1}], ["[0].signal_type", "required"]),
    ([event(extra=1)], ["[0].extra", "not permitted"]),
])
def test_signal_payload_errors(body, fragments):
    raises(parse_sig, signal(body), *fragments)


def test_nan_inside_metadata_is_left_alone():
    (parsed,), _ = parse_sig(signal('[{"timestamp": 0, "signal_type": "x", "strength": 1, "metadata": {"m": NaN}}]'))
    assert math.isnan(parsed.metadata["m"])


def test_signal_markers_do_not_count_as_indicator_markers():
    raises(parse_ind, signal([]), error=NoBlockError)


def test_block_rule_messages_name_component_and_candle():
    late = missing_block_error("signal", component="cross", candle=812, stdout="oops")
    assert str(late).startswith("component 'cross': candle 812: printed no SIGNAL_START/SIGNAL_END block after "
                                "printing one on candle 811")
    never = never_printed_error("indicator", component="sma_fast", n_candles=300, last_stdout="")
    assert str(never) == ("component 'sma_fast': candle 299: printed no INDICATOR_START/INDICATOR_END block on any "
                          "of 300 candles (last stdout: (empty))")


# --- the environment a script sees -------------------------------------------------


@pytest.fixture
def candles() -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC", name="time")
    close = np.array([1.1, 1.2, 1.3, 1.4, 1.5])
    return pd.DataFrame({"open": close, "high": close + 0.1, "low": close - 0.1, "close": close,
                         "volume": [10.0, 20.0, math.nan, 40.0, 50.0]}, index=index)


def test_env_without_lookback_holds_every_candle_up_to_i(candles):
    data = RunData.build(candles, kind="indicator", name="x", symbol="EURUSD", timeframe="1h")
    env = data.candle_env(3)
    rows = json.loads(env["CANDLE_DATA"])
    assert [row["close"] for row in rows] == [1.1, 1.2, 1.3, 1.4]
    assert rows[0] == {"time": 1704067200, "open": 1.1, "high": 1.1 + 0.1, "low": 1.1 - 0.1, "close": 1.1,
                       "volume": 10.0}  # floats round-trip exactly
    assert rows[2]["volume"] is None  # NaN as null
    assert (env["CURRENT_INDEX"], env["CANDLE_OFFSET"], env["GLOBAL_INDEX"]) == ("3", "0", "3")
    assert "INDICATOR_DATA" not in env
    assert data.static_env == {"SYMBOL": "EURUSD", "TIMEFRAME": "1h", "COMPONENT_TYPE": "indicator",
                               "COMPONENT_NAME": "x", "COMPONENT_PARAMS": "{}"}


def test_env_with_lookback_keeps_the_seed_idiom_working(candles):
    fast = pd.Series([math.nan, 1.0, 2.0, 3.0, 4.0], index=candles.index)
    data = RunData.build(candles, kind="signal", name="x", symbol="S", timeframe="1h", inputs={"fast": fast},
                         params={"period": 3}, lookback=2)
    first, last = data.candle_env(0), data.candle_env(4)
    assert (first["CURRENT_INDEX"], first["CANDLE_OFFSET"], first["GLOBAL_INDEX"]) == ("0", "0", "0")
    assert (last["CURRENT_INDEX"], last["CANDLE_OFFSET"], last["GLOBAL_INDEX"]) == ("1", "3", "4")
    rows = json.loads(last["CANDLE_DATA"])
    assert [row["close"] for row in rows[:int(last["CURRENT_INDEX"]) + 1]] == [1.4, 1.5]
    assert json.loads(first["INDICATOR_DATA"]) == {"fast": {"values": [None], "current": None}}
    assert json.loads(last["INDICATOR_DATA"]) == {"fast": {"values": [3.0, 4.0], "current": 4.0}}
    assert json.loads(data.static_env["COMPONENT_PARAMS"]) == {"period": 3}


def test_signals_always_get_indicator_data(candles):
    data = RunData.build(candles, kind="signal", name="x", symbol="S", timeframe="1h")
    assert data.candle_env(2)["INDICATOR_DATA"] == "{}"


@pytest.mark.parametrize("source, expected", [
    ("import os\nprint(1)\n", None),
    ("LOOKBACK = 60\n", 60),
    ("LOOKBACK: int = 7\nx = 1\n", 7),
    ("def f():\n    LOOKBACK = 3\n", None),  # not top-level
])
def test_script_lookback_is_read_statically(tmp_path, source, expected):
    path = tmp_path / "s.py"
    path.write_text(source + "raise SystemExit('never run')\n")
    assert script_lookback(path, component="s") == expected


@pytest.mark.parametrize("source, fragment", [
    ("LOOKBACK = 2 * 30\n", "LOOKBACK at line 1 must be a positive integer literal"),
    ("LOOKBACK = 0\n", "positive integer literal"),
    ("LOOKBACK = True\n", "positive integer literal"),
    ("def broken(:\n", "syntax error at line 1"),
])
def test_script_lookback_errors(tmp_path, source, fragment):
    path = tmp_path / "s.py"
    path.write_text(source)
    with pytest.raises(ComponentError, match="component 's'") as info:
        script_lookback(path, component="s")
    assert fragment in str(info.value)
