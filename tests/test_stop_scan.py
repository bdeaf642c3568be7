"""The stop scan is written once, for a long, on mirrored prices: it must equal the explicit long/short rules.

The reference below is the obvious per-side code (a long's stop is below and its target above, a short's
the other way round; the open first, then the bar's extremes; the stop-loss wins), checked on hypothesis
bars with gaps, flat stretches, NaN and levels anywhere, for both sides, bar by bar and over stretches.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from candleflow.portfolio.simulate import _first_stop_bar, _stop_exit, _touches

PRICES = st.one_of(st.floats(90, 110, allow_nan=False), st.sampled_from([95.0, 100.0, 105.0, math.nan]))


def reference_exit(side, stop, target, open_, high, low):
    if side > 0:
        checks = [(open_ <= stop, open_, "stop_loss"), (open_ >= target, open_, "take_profit"),
                  (low <= stop, stop, "stop_loss"), (high >= target, target, "take_profit")]
    else:
        checks = [(open_ >= stop, open_, "stop_loss"), (open_ <= target, open_, "take_profit"),
                  (high >= stop, stop, "stop_loss"), (low <= target, target, "take_profit")]
    return next(((price, reason) for hit, price, reason in checks if hit), (math.nan, None))


@settings(max_examples=400, deadline=None)
@given(side=st.sampled_from([1, -1]), stop=PRICES, target=PRICES, open_=PRICES, high=PRICES, low=PRICES)
def test_one_bar_equals_the_explicit_rule(side, stop, target, open_, high, low):
    got, want = _stop_exit(side, stop, target, open_, high, low), reference_exit(side, stop, target, open_, high, low)
    assert got[1] == want[1] and (got[0] == want[0] or (math.isnan(got[0]) and math.isnan(want[0])))
    touched = (high >= stop or low <= target) if side < 0 else (low <= stop or high >= target)
    assert _touches(side, stop, target, low, high) == touched


@settings(max_examples=150, deadline=None)
@given(side=st.sampled_from([1, -1]), stop=PRICES, target=PRICES,
       bars=st.lists(st.tuples(PRICES, PRICES, PRICES), min_size=1, max_size=300), start=st.integers(0, 40),
       quiet=st.integers(0, 300))
def test_the_scan_finds_the_first_bar_the_rule_fires_on(side, stop, target, bars, start, quiet):
    """``quiet`` NaN bars (they never fire) first, so the first hit also lands in the numpy chunks."""
    bars = [(math.nan, math.nan, math.nan)] * quiet + bars
    opens, highs, lows = (np.array(column, dtype="float64") for column in zip(*bars))
    start = min(start, len(bars))
    want = next((i for i in range(start, len(bars))
                 if reference_exit(side, stop, target, opens[i], highs[i], lows[i])[1] is not None), -1)
    assert _first_stop_bar(side, stop, target, opens, highs, lows, start, len(bars)) == want
