"""No look-ahead: a node's value at candle i depends only on candles 0..i.

For every built-in indicator and signal, hypothesis draws a candle series, a
cut point i and params; the outputs up to i must be identical (bit for bit,
NaN where NaN) when the candles after i are (a) dropped or (b) replaced by
arbitrary other prices.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from candleflow.components.registry import Registry
from candleflow.config.models import SignalSpec, IndicatorSpec
from candleflow.dag.compiler import Binding, CANDLES, NodePlan
from candleflow.data import generate_candles
from candleflow.nodes.compute import run_node

REGISTRY = Registry.default()

INDICATOR_PARAMS = {
    "sma": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "ema": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "rsi": st.fixed_dictionaries({"period": st.integers(2, 30)}),
    "atr": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "bollinger": st.fixed_dictionaries({"period": st.integers(2, 30), "stddev": st.floats(0.5, 3.0)}),
    "macd": st.integers(2, 12).flatmap(lambda fast: st.fixed_dictionaries({
        "fast": st.just(fast), "slow": st.integers(fast + 1, 30), "signal": st.integers(1, 12)})),
    "wma": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "hma": st.fixed_dictionaries({"period": st.integers(2, 30)}),
    "stoch": st.fixed_dictionaries({"k_period": st.integers(1, 20), "k_smooth": st.integers(1, 5),
                                    "d_period": st.integers(1, 5)}),
    "adx": st.fixed_dictionaries({"period": st.integers(2, 20)}),
    "cci": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "obv": st.just({}),
    "vwap": st.just({}),
    "donchian": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "keltner": st.fixed_dictionaries({"period": st.integers(1, 20), "atr_period": st.integers(1, 20),
                                      "multiplier": st.floats(0.5, 3.0)}),
    "roc": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "stddev": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "highest": st.fixed_dictionaries({"period": st.integers(1, 30)}),
    "lowest": st.fixed_dictionaries({"period": st.integers(1, 30)}),
}


def _plan(kind: str, component: str, params: dict, bindings: list[Binding]) -> NodePlan:
    spec_type = IndicatorSpec if kind == "indicator" else SignalSpec
    spec = spec_type(name="node", component=component, params=params)
    return NodePlan("node", kind, "test", spec, REGISTRY[component], None, REGISTRY[component].validate_params(params),
                    tuple(bindings))


def _candle_bindings(component: str) -> list[Binding]:
    return [Binding(name, CANDLES, name) for name in REGISTRY[component].inputs]


def _run(plan: NodePlan, candles: pd.DataFrame, upstream: dict | None = None):
    return run_node(plan, candles, upstream or {}, symbol="TEST", timeframe="1h")


def _perturb_after(candles: pd.DataFrame, i: int, seed: int) -> pd.DataFrame:
    other = generate_candles(len(candles), seed=seed + 1000, price=float(candles.close.iloc[-1]) * 1.3)
    changed = candles.copy()
    changed.iloc[i + 1:] = other.iloc[i + 1:].to_numpy()
    return changed


def _assert_prefix_equal(full, other, i: int) -> None:
    np.testing.assert_array_equal(np.asarray(full)[: i + 1], np.asarray(other)[: i + 1])


def test_every_builtin_is_covered():
    assert set(INDICATOR_PARAMS) == set(REGISTRY.names("indicator"))
    assert set(SIGNAL_CASES) == set(REGISTRY.names("signal"))


@pytest.mark.parametrize("component", sorted(INDICATOR_PARAMS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_indicator_has_no_lookahead(component, data):
    n = data.draw(st.integers(5, 120), label="n")
    seed = data.draw(st.integers(0, 10_000), label="seed")
    i = data.draw(st.integers(0, n - 2), label="i")
    params = data.draw(INDICATOR_PARAMS[component], label="params")
    candles = generate_candles(n, seed=seed)
    plan = _plan("indicator", component, params, _candle_bindings(component))
    full = _run(plan, candles)
    _assert_prefix_equal(full, _run(plan, candles.iloc[: i + 1]), i)
    _assert_prefix_equal(full, _run(plan, _perturb_after(candles, i, seed)), i)


def _rsi_input(candles):
    plan = _plan("indicator", "rsi", {"period": 5}, _candle_bindings("rsi"))
    return {"rsi": _run(plan, candles)}


def _sma_pair(candles):
    fast = _plan("indicator", "sma", {"period": 3}, _candle_bindings("sma"))
    slow = _plan("indicator", "sma", {"period": 8}, _candle_bindings("sma"))
    return {"fast": _run(fast, candles), "slow": _run(slow, candles)}


def _bands(candles):
    plan = _plan("indicator", "bollinger", {"period": 10, "stddev": 1.0}, _candle_bindings("bollinger"))
    return {"bb": _run(plan, candles)}


SIGNAL_CASES = {
    "ma_crossover": (_sma_pair, [Binding("fast", "fast"), Binding("slow", "slow")], {}),
    "rsi_threshold": (_rsi_input, [Binding("rsi", "rsi")], {"lower": 45.0, "upper": 55.0}),
    "bollinger_breakout": (_bands, [Binding("close", CANDLES, "close"), Binding("upper", "bb", "upper"),
                                    Binding("lower", "bb", "lower")], {}),
}


def _events_until(frame: pd.DataFrame, i: int) -> list[tuple]:
    kept = frame[frame["bar"] <= i]
    return list(zip(kept["bar"], kept["signal_type"], kept["strength"]))


@pytest.mark.parametrize("component", sorted(SIGNAL_CASES))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_signal_has_no_lookahead(component, data):
    n = data.draw(st.integers(10, 200), label="n")
    seed = data.draw(st.integers(0, 10_000), label="seed")
    i = data.draw(st.integers(0, n - 2), label="i")
    make_inputs, bindings, params = SIGNAL_CASES[component]
    plan = _plan("signal", component, params, bindings)

    def events(candles):
        return _run(plan, candles, make_inputs(candles))

    candles = generate_candles(n, seed=seed)
    full = _events_until(events(candles), i)
    assert full == _events_until(events(candles.iloc[: i + 1]), i)
    assert full == _events_until(events(_perturb_after(candles, i, seed)), i)


def test_signals_do_fire_on_this_data():
    """Guard against a vacuous property: the signal cases above do produce events."""
    candles = generate_candles(400, seed=3)
    for component, (make_inputs, bindings, params) in SIGNAL_CASES.items():
        frame = _run(_plan("signal", component, params, bindings), candles, make_inputs(candles))
        assert len(frame) > 0, component


def test_a_lookahead_component_is_caught():
    """The property check itself can fail: a centred rolling mean peeks ahead and differs."""
    candles = generate_candles(60, seed=1)
    full = candles.close.rolling(5, center=True).mean()
    cut = candles.close.iloc[:30].rolling(5, center=True).mean()
    with pytest.raises(AssertionError):
        _assert_prefix_equal(full, cut, 29)
