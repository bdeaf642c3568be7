"""Conditions in rules: each operator on hand series, no look-ahead, the evaluator's use of them, errors.

Operators (components/conditions.py) are checked on small hand-written series, NaN
included; a hypothesis property checks every operator, and a compiled strategy of nested
conditions, for look-ahead; strategies in condition form must trade exactly like the
signal form and like entries computed here with TA-Lib and pandas; bad conditions are
one-line CLI errors with their YAML path.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from candleflow import run_backtest
from candleflow.cli import main
from candleflow.components.conditions import (
    all_of,
    any_of,
    comparison,
    event,
    negate,
    within,
)
from candleflow.config import parse_strategy
from candleflow.dag.compiler import compile_strategy
from candleflow.dag.draw import build_graph
from candleflow.data import generate_candles
from candleflow.nodes.compute import run_node
from candleflow.portfolio.rules import Actions, actions_from_signals
from candleflow.portfolio.simulate import simulate
from candleflow.vocab import CANDLES, EVALUATOR, make_signal_frame

NAN = float("nan")
S = ("series", 0), ("series", 1), ("series", 2)


def series(*values: float) -> pd.Series:
    return pd.Series(values, dtype="float64")


def compare(operator: str, *operands) -> list[bool]:
    """``operator`` over operands given as lists (series) or numbers."""
    inputs = [series(*o) for o in operands if isinstance(o, list)]
    refs, k = [], 0
    for o in operands:
        if isinstance(o, list):
            refs.append(("series", k))
            k += 1
        else:
            refs.append(("number", o))
    return comparison(*inputs, operator=operator, operands=tuple(refs)).tolist()


# --- each operator on hand series ----------------------------------------------------------------------------------


def test_above_and_below_are_states_and_nan_is_false():
    a, b = [1, 2, NAN, 4, 3], [2, 2, 1, NAN, 1]
    assert compare("above", a, b) == [False, False, False, False, True]
    assert compare("below", a, b) == [True, False, False, False, False]
    assert compare("above", a, 1.5) == [False, True, False, True, True]
    assert compare("below", 2.5, a) == [False, False, False, True, True]  # a number may come first


def test_crosses_need_the_previous_candle_on_the_other_side():
    a = [1, 2, 3, 2, 2, NAN, 3, 4]
    # crosses_above 2: a[i-1] <= 2 and a[i] > 2 -- at 2 (2 -> 3); not at 6 (previous NaN)
    assert compare("crosses_above", a, 2) == [False, False, True, False, False, False, False, False]
    # crosses_below 3: a[i-1] >= 3 and a[i] < 3 -- at 3 (3 -> 2)
    assert compare("crosses_below", a, 3) == [False, False, False, True, False, False, False, False]
    fast, slow = [1, 3, 3, 1], [2, 2, 3, 2]
    assert compare("crosses_above", fast, slow) == [False, True, False, False]  # touching (3 = 3) is not a cross
    assert compare("crosses_below", fast, slow) == [False, False, False, True]  # 3 >= 3 then 1 < 2


def test_between_includes_both_bounds():
    x = [29, 30, 50, 70, 71, NAN]
    assert compare("between", x, 30, 70) == [False, True, True, True, False, False]
    lo, hi = [0, 0, NAN, 0, 0, 0], [100] * 6
    assert compare("between", x, lo, hi) == [True, True, False, True, True, False]


def test_logic_operators():
    a, b = series(1, 1, 0, 0, NAN), series(1, 0, 1, 0, 1)
    assert all_of(a, b).tolist() == [True, False, False, False, False]
    assert any_of(a, b).tolist() == [True, True, True, False, True]
    assert negate(a).tolist() == [False, False, True, True, True]
    assert all_of(a).tolist() == [True, True, False, False, False]


def test_within_counts_the_current_candle():
    x = series(0, 1, 0, 0, 0, 1, 0)
    assert within(x, n=1).tolist() == [False, True, False, False, False, True, False]
    assert within(x, n=3).tolist() == [False, True, True, True, False, True, True]


def test_event_marks_the_candles_of_one_signal_type():
    close = series(1, 1, 1, 1, 1)
    a = make_signal_frame([1, 3], ["golden_cross", "death_cross"])
    b = make_signal_frame([4], ["golden_cross"])
    assert event(close, a, b, signal_type="golden_cross").tolist() == [False, True, False, False, True]


def test_actions_take_condition_series():
    from candleflow.config.models import Rules
    rules = Rules(entry={"buy": "x", "sell": "y"}, exit={"close_long": "z"})
    conditions = {"buy": series(1, 0, 1, NAN), "sell": series(0, 0, 1, 1), "close_long": series(0, 1, 0, 0)}
    acts = actions_from_signals({}, rules, 4, conditions)
    assert acts.entry.tolist() == [1, 0, 0, -1]  # buy and sell on one candle cancel
    assert acts.exit.tolist() == [0, 1, 0, 0]


# --- no look-ahead --------------------------------------------------------------------------------------------------

VALUES = st.one_of(st.floats(-5, 5, allow_nan=False), st.just(NAN))


def _prefix_equal(full: pd.Series, other: pd.Series, i: int) -> None:
    np.testing.assert_array_equal(np.asarray(full)[: i + 1], np.asarray(other)[: i + 1])


OPERATORS = {
    "above": lambda a, b, c: comparison(a, b, operator="above", operands=S[:2]),
    "below": lambda a, b, c: comparison(a, b, operator="below", operands=S[:2]),
    "crosses_above": lambda a, b, c: comparison(a, b, operator="crosses_above", operands=S[:2]),
    "crosses_below": lambda a, b, c: comparison(a, b, operator="crosses_below", operands=S[:2]),
    "between": lambda a, b, c: comparison(a, b, c, operator="between", operands=S),
    "all": lambda a, b, c: all_of(a > 0, b > 0, c > 0),
    "any": lambda a, b, c: any_of(a > 0, b > 0),
    "not": lambda a, b, c: negate(a > 0),
    "within": lambda a, b, c: within(a > 0, n=4),
    "nested": lambda a, b, c: within(all_of(any_of(a > b, negate(c > 0)), b > -1).astype(float), n=3),
}


@pytest.mark.parametrize("operator", sorted(OPERATORS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_operator_has_no_lookahead(operator, data):
    n = data.draw(st.integers(2, 40), label="n")
    i = data.draw(st.integers(0, n - 2), label="i")
    full = [series(*data.draw(st.lists(VALUES, min_size=n, max_size=n))) for _ in range(3)]
    tail = [series(*data.draw(st.lists(VALUES, min_size=n, max_size=n))) for _ in range(3)]
    changed = [pd.concat([f.iloc[: i + 1], t.iloc[i + 1:]]) for f, t in zip(full, tail)]
    compute = OPERATORS[operator]
    expected = compute(*full)
    _prefix_equal(expected, compute(*(f.iloc[: i + 1] for f in full)), i)
    _prefix_equal(expected, compute(*changed), i)


HEAD = """\
name: t
symbol: EURUSD
timeframe: 1h
data: {sample: eurusd_1h}
indicators:
  - {name: fast, component: sma, params: {period: 3}}
  - {name: slow, component: sma, params: {period: 8}}
  - {name: rsi, component: rsi, params: {period: 5}}
  - {name: bb, component: bollinger, params: {period: 10}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
"""
NESTED = HEAD + """\
conditions:
  - {name: calm, between: [rsi, 30, 70]}
  - {name: setup, any: [golden_cross, {crosses_above: [close, bb.upper]}]}
rules:
  entry:
    buy: {all: [{within: {n: 3, of: setup}}, calm, {not: {below: [close, slow]}}]}
  exit:
    close: {any: [cross.death_cross, {crosses_below: [close, bb.lower]}]}
"""


def _node_values(compiled, candles: pd.DataFrame) -> dict:
    values: dict = {}
    for name in compiled.order():
        if name in (CANDLES, EVALUATOR):
            continue
        plan = compiled.plans[name]
        upstream = {b.source: values[b.source] for b in plan.bindings if b.source != CANDLES}
        values[name] = run_node(plan, candles, upstream, symbol="T", timeframe="1h")
    return values


@settings(max_examples=25, deadline=None)
@given(n=st.integers(10, 150), seed=st.integers(0, 10_000), data=st.data())
def test_nested_conditions_of_a_strategy_have_no_lookahead(n, seed, data):
    i = data.draw(st.integers(0, n - 2), label="i")
    compiled = compile_strategy(parse_strategy(NESTED))
    candles = generate_candles(n, seed=seed)
    changed = candles.copy()
    changed.iloc[i + 1:] = generate_candles(n, seed=seed + 1, price=1.3).iloc[i + 1:].to_numpy()
    full, cut, other = (_node_values(compiled, c) for c in (candles, candles.iloc[: i + 1], changed))
    conditions = [name for name in full if compiled.graph.nodes[name]["kind"] == "condition"]
    assert len(conditions) == 11  # one per operator and signal type written
    for name in conditions:
        _prefix_equal(full[name], cut[name], i)
        _prefix_equal(full[name], other[name], i)


# --- strategies -----------------------------------------------------------------------------------------------------

MA = HEAD.replace("period: 3}", "period: 20}").replace("period: 8}", "period: 50}")


def _run(tmp_path: Path, text: str, name: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return run_backtest(path, scheduler="sync")


def test_condition_form_trades_like_the_signal_form(tmp_path):
    old = _run(tmp_path, MA + "rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}\n", "old")
    new = _run(tmp_path, MA + "rules: {entry: {buy: golden_cross}, exit: {close: cross.death_cross}}\n", "new")
    compared = _run(tmp_path, MA + "rules:\n  entry: {buy: {crosses_above: [fast, slow]}}\n"
                                   "  exit: {close: {crosses_below: [fast, slow]}}\n", "compared")
    assert len(old.trades) > 10
    pd.testing.assert_frame_equal(old.trades, new.trades)
    pd.testing.assert_frame_equal(old.trades, compared.trades)


FILTERED = MA.replace("{name: rsi, component: rsi, params: {period: 5}}",
                      "{name: rsi, component: rsi, params: {period: 14}}\n"
                      "  - {name: sma200, component: sma, params: {period: 200}}")


def test_all_of_an_event_and_two_states_trades_like_a_hand_computation(tmp_path):
    talib = pytest.importorskip("talib")
    rules = ("rules:\n  entry: {buy: {all: [golden_cross, {below: [rsi, 55]}, {above: [close, sma200]}]}}\n"
             "  exit: {death_cross: close}\n")
    result = _run(tmp_path, FILTERED + rules, "filtered")
    plain = _run(tmp_path, MA + "rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}\n", "plain")
    candles = result.candles
    c = candles["close"].to_numpy()
    fast, slow = pd.Series(talib.SMA(c, 20)), pd.Series(talib.SMA(c, 50))
    golden = (fast.shift(1) <= slow.shift(1)) & (fast > slow)
    death = (fast.shift(1) >= slow.shift(1)) & (fast < slow)
    entry = golden & (pd.Series(talib.RSI(c, 14)) < 55) & (pd.Series(c) > pd.Series(talib.SMA(c, 200)))
    actions = Actions(entry=entry.to_numpy().astype(np.int8), exit=(death.to_numpy() * 3).astype(np.int8))
    s = result.strategy
    expected = simulate(candles, actions, execution=s.execution, sizing=s.sizing, risk=s.risk,
                        initial_cash=s.initial_cash)
    assert 0 < len(result.trades) < len(plain.trades) / 2  # the two states filter most golden crosses
    pd.testing.assert_frame_equal(result.trades, expected.trades)


def test_condition_nodes_are_drawn_with_their_operator():
    source = build_graph(compile_strategy(parse_strategy(NESTED))).source
    for label in ("30 &lt;= rsi &lt;= 70", "close crosses above bb.upper", "within 3", "<I>all</I>",
                  "<I>not</I>", "close &lt; slow", "cross.death_cross"):
        assert label in source, label
    assert "diamond" in source


# --- errors ---------------------------------------------------------------------------------------------------------

GOOD = HEAD + """\
conditions:
  - {name: uptrend, above: [close, slow]}
rules:
  entry:
    buy: {all: [golden_cross, {below: [rsi, 70]}, uptrend]}
  exit:
    close: {within: {n: 2, of: death_cross}}
"""

ERRORS = [
    ("unknown-operand", "below: [rsi, 70]", "below: [rsi2, 70]",
     "rules.entry.buy.all[1].below[0]: unknown indicator 'rsi2'"),
    ("multi-output-operand", "below: [rsi, 70]", "below: [bb, 70]",
     "rules.entry.buy.all[1].below[0]: indicator 'bb' has several outputs; name one, e.g. 'bb.upper' "
     "(outputs: upper, middle, lower)"),
    ("signal-operand", "below: [rsi, 70]", "below: [cross, 70]",
     "rules.entry.buy.all[1].below[0]: 'cross' is a signal; an operand is an indicator output, a candle column "
     "or a number"),
    ("numbers-only", "below: [rsi, 70]", "below: [1, 70]",
     "rules.entry.buy.all[1].below: compares numbers only; name an indicator output or a candle column"),
    ("above-arity", "below: [rsi, 70]", "below: [rsi]", "rules.entry.buy.all[1].below: 'below' takes 2 operands "
     "[a, b], got 1"),
    ("between-arity", "below: [rsi, 70]", "between: [rsi, 70]",
     "rules.entry.buy.all[1].between: 'between' takes 3 operands [x, lo, hi], got 2"),
    ("type-nobody-emits", "[golden_cross,", "[moon_landing,",
     "rules.entry.buy.all[0]: no signal emits 'moon_landing' and no condition is named so "
     "(emitted: death_cross, golden_cross)"),
    ("qualified-type-not-emitted", "of: death_cross", "of: cross.overbought",
     "rules.exit.close.within.of: signal 'cross' never emits 'overbought' (it emits: golden_cross, death_cross)"),
    ("unknown-named-condition", "uptrend]}", "uptrnd]}",
     "rules.entry.buy.all[2]: no signal emits 'uptrnd' and no condition is named so "
     "(emitted: death_cross, golden_cross)"),
    ("cycle", "{name: uptrend, above: [close, slow]}",
     "{name: uptrend, all: [golden_cross, down]}\n  - {name: down, not: uptrend}",
     "conditions[0]: named conditions refer to each other in a cycle: uptrend -> down -> uptrend"),
    ("self-cycle", "{name: uptrend, above: [close, slow]}", "{name: uptrend, not: uptrend}",
     "conditions[0]: named conditions refer to each other in a cycle: uptrend -> uptrend"),
    ("within-n-zero", "n: 2", "n: 0", "rules.exit.close.within.n: must be a whole number of candles >= 1, got 0"),
    ("within-n-float", "n: 2", "n: 2.5", "rules.exit.close.within.n: must be a whole number of candles >= 1, got 2.5"),
    ("unknown-operator", "below: [rsi, 70]", "blow: [rsi, 70]",
     "rules.entry.buy.all[1]: unknown operator 'blow' (operators: above, below, crosses_above, crosses_below, "
     "between, all, any, not, within)"),
    ("empty-all", "{all: [golden_cross, {below: [rsi, 70]}, uptrend]}", "{all: []}",
     "rules.entry.buy.all: 'all' takes a non-empty list of conditions, got []"),
    ("mixed-mapping", "    buy: {all", "    golden_cross: sell\n    buy: {all",
     "rules.entry: mixes actions (buy, sell) and signal types as keys; write either {signal_type: action} or "
     "{action: condition}"),
    ("ambiguous-mapping", "    buy: {all: [golden_cross, {below: [rsi, 70]}, uptrend]}", "    buy: sell",
     "rules.entry: ambiguous: every key and every value is an action (buy, sell); write {signal_type: action} or "
     "{action: condition}"),
    ("indicator-as-condition", "uptrend]}", "slow]}",
     "rules.entry.buy.all[2]: 'slow' is an indicator, not a condition; compare it, e.g. {above: [slow, 0]}"),
    ("condition-name-taken", "{name: uptrend,", "{name: fast,",
     "conditions[0].name: duplicate name 'fast' (already used by indicators[0]) (and 1 more: "
     "rules.entry.buy.all[2]: no signal emits 'uptrend' and no condition is named so "
     "(emitted: death_cross, golden_cross))"),
    ("condition-as-signal-input", "inputs: [fast, slow]", "inputs: [fast, uptrend]",
     "signals[0].inputs[1]: 'uptrend' is a condition; inputs must be indicators or candle columns"),
    ("old-form-bad-action", "    buy: {all: [golden_cross, {below: [rsi, 70]}, uptrend]}", "    golden_cross: hold",
     "rules.entry.golden_cross: Input should be 'buy' or 'sell', got 'hold'"),
]


@pytest.mark.parametrize("old, new, expected", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_condition_is_one_line(tmp_path, monkeypatch, capsys, old, new, expected):
    assert old in GOOD
    (tmp_path / "components").mkdir()
    (tmp_path / "s.yaml").write_text(GOOD.replace(old, new, 1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    code = main(["validate", "s.yaml"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", f"error: s.yaml: {expected}\n")


def test_the_good_condition_strategy_validates(tmp_path, monkeypatch, capsys):
    (tmp_path / "s.yaml").write_text(GOOD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "s.yaml"]) == 0


def test_the_readme_example_compiles():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"\*\*Conditions\.\*\*.*?```yaml\n(.*?)```", readme, re.S).group(1)
    head = HEAD.replace("signals:", "  - {name: sma200, component: sma, params: {period: 200}}\n"
                                    "  - {name: macd, component: macd}\nsignals:")
    compiled = compile_strategy(parse_strategy(head + block))
    assert {b.name for _, _, data in compiled.graph.in_edges(EVALUATOR, data=True) for b in data["bindings"]} == {
        "signals", "buy", "sell", "close"}


def test_condition_nodes_are_memoized_by_content(tmp_path):
    from candleflow import NodeCache
    text = GOOD.replace("data: {sample: eurusd_1h}", "data: {sample: eurusd_1h, end: '2023-03-01'}")
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    cache = NodeCache(tmp_path / "cache")
    first = run_backtest(path, cache=cache, scheduler="sync")
    again = run_backtest(path, cache=NodeCache(tmp_path / "cache"), scheduler="sync")
    conditions = [n for n, s in first.stats.items() if s.kind == "condition"]
    assert len(conditions) == 6 and all(again.stats[n].cache == "hit" for n in conditions)
    path.write_text(text.replace("n: 2", "n: 3"), encoding="utf-8")
    changed = run_backtest(path, cache=NodeCache(tmp_path / "cache"), scheduler="sync")
    missed = sorted(n for n in conditions if changed.stats[n].cache == "miss")
    assert missed == ["rules.exit.close"]  # only the edited 'within' node (its input, the event, is reused)
    assert changed.stats[EVALUATOR].cache == "miss"


def test_replayed_signals_feed_the_conditions(tmp_path, monkeypatch, capsys):
    (tmp_path / "s.yaml").write_text(GOOD.replace("eurusd_1h}", "eurusd_1h, end: '2023-04-01'}"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "s.yaml", "--out", "out", "--no-cache", "-q"]) == 0
    assert main(["run", "s.yaml", "--out", "replayed", "--no-cache", "-q", "--replay-signals", "out/signals.csv"]) == 0
    trades = (tmp_path / "out" / "trades.csv").read_text()
    assert trades.count("\n") > 3 and trades == (tmp_path / "replayed" / "trades.csv").read_text()


def test_the_example_strategy_filters_the_plain_crossover():
    root = Path(__file__).parent.parent / "strategies"
    filtered = run_backtest(root / "ma_crossover_filtered.yaml", scheduler="sync")
    plain = run_backtest(root / "ma_crossover.yaml", scheduler="sync")
    frame = plain.signals()["cross"]
    golden = set(frame.loc[frame["signal_type"] == "golden_cross", "bar"])
    decided = set(filtered.trades["entry_bar"] - 1)  # fill: next_open
    assert 0 < len(decided) < len(plain.trades) and decided <= golden
