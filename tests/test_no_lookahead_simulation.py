"""No look-ahead in the simulation: cash, position and every trade closed by candle i depend only on candles
0..i, their actions and the levels read up to i, whatever the order settings (limit, stop and stop-limit entries,
ATR, indicator-price, trailing and break-even stops, time exits, pyramiding, partial exits, risk sizing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings, strategies as st

from candleflow.config.models import Execution, Orders, Risk, Sizing
from candleflow.data import generate_candles
from candleflow.portfolio import simulate
from candleflow.portfolio.rules import Actions

SETTINGS = [
    {},
    {"orders": {"entry": {"type": "limit", "offset": 0.002, "valid_for": 5}}, "risk": {"trailing_stop": 0.01}},
    {"orders": {"entry": {"type": "stop", "offset": {"atr": "atr", "multiple": 0.5}}, "max_entries": 2},
     "risk": {"stop_loss": {"atr": "atr", "multiple": 2}, "take_profit": {"price": "band"}}, "sizing": {
         "method": "risk", "value": 0.01, "max_leverage": 3}},
    {"orders": {"entry": {"type": "stop_limit", "price": "band", "limit_offset": 0.001}},
     "risk": {"trailing_stop": {"atr": "atr", "multiple": 3}, "break_even": 0.003, "max_bars": 7},
     "execution": {"fill": "close", "commission": {"fraction": 0.001, "minimum": 0.5}, "spread": {"bps": 2}}},
]


def _levels(candles: pd.DataFrame) -> dict[str, np.ndarray]:
    """Causal series: a rolling range as the ATR, a rolling mean as the band (prefix in, prefix out)."""
    atr = (candles["high"] - candles["low"]).rolling(5).mean()
    return {"atr": atr.to_numpy(), "band": candles["close"].rolling(8).mean().to_numpy()}


def _run(candles, entries, exits, fractions, setting):
    n = len(candles)
    actions = Actions(entries[:n], exits[:n], close_fraction=fractions[:, :n])
    return simulate(candles, actions, execution=Execution(**setting.get("execution", {})),
                    orders=Orders(**setting.get("orders", {})), sizing=Sizing(**setting.get("sizing", {})),
                    risk=Risk(**setting.get("risk", {})), initial_cash=10_000.0, levels=_levels(candles))


def _perturbed_after(candles: pd.DataFrame, i: int, factor: float) -> pd.DataFrame:
    """The same candles up to ``i``, every price after it multiplied by ``factor``: a future far from the past."""
    changed = candles.copy()
    changed.iloc[i + 1:, :4] *= factor
    return changed


def _assert_same_up_to(full, other, i: int) -> None:
    np.testing.assert_array_equal(full.equity.to_numpy()[: i + 1], other.equity.to_numpy()[: i + 1])
    np.testing.assert_array_equal(full.position[: i + 1], other.position[: i + 1])
    closed = lambda trades: trades[(trades["exit_bar"] <= i) & (trades["exit_reason"] != "open")]  # noqa: E731
    pd.testing.assert_frame_equal(closed(full.trades).reset_index(drop=True),
                                  closed(other.trades).reset_index(drop=True))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(30, 160), factor=st.sampled_from([0.5, 0.97, 1.03, 2.0]),
       which=st.sampled_from(range(len(SETTINGS))))
def test_the_simulation_up_to_candle_i_ignores_what_comes_after(seed, n, factor, which):
    """At 10 cut points per series: the candles after the cut dropped, or moved far away."""
    candles = generate_candles(n, seed=seed)
    rng = np.random.default_rng(seed)
    entries = rng.choice(np.array([-1, 0, 0, 0, 0, 1], dtype=np.int8), n)
    exits = rng.choice(np.array([0, 0, 0, 0, 0, 0, 1, 2, 3], dtype=np.int8), n)
    fractions = np.where(rng.random((2, n)) < 0.3, 0.5, 1.0)
    full = _run(candles, entries, exits, fractions, SETTINGS[which])
    for i in rng.choice(np.arange(5, n - 1), 10, replace=False):
        _assert_same_up_to(full, _run(candles.iloc[: i + 1], entries, exits, fractions, SETTINGS[which]), i)
        _assert_same_up_to(full, _run(_perturbed_after(candles, i, factor), entries, exits, fractions,
                                      SETTINGS[which]), i)
