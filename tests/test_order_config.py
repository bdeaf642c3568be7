"""The order model's settings (orders, risk, sizing, execution): every bad value is one line and exit 2.

Through the real CLI (``candleflow validate``, in-process), like tests/test_errors_cli.py; each
case breaks one setting of a valid strategy, and the message names the YAML path and what to give.
"""

from __future__ import annotations

import pytest

from test_errors_cli import GOOD, assert_user_error, run_cli, workspace  # noqa: F401  (workspace: a fixture)

ATR = GOOD.replace("signals:", "  - {name: atr, component: atr}\n  - {name: bb, component: bollinger}\nsignals:")

CASES = [
    ("partial-exit-over-one", GOOD.replace("exit: {death_cross: close}", "exit: {death_cross: {close_long: 2}}"),
     "s.yaml: rules.exit.death_cross: a partial exit closes a fraction in (0, 1] of each trade, got 2"),
    ("partial-exit-unknown-key", GOOD.replace("exit: {death_cross: close}",
                                              "exit: {close_long: {when: death_cross, fraction: 0.5, size: 1}}"),
     "s.yaml: rules.exit.close_long.size: a partial exit takes 'when' (its condition) and 'fraction'"),
    ('orders-unknown-key', GOOD + "orders: {entry: {type: limit, offset: 0.01, expiry: 3}}\n",
     's.yaml: orders.entry.expiry: unknown key (check the spelling; see README for the schema)'),
    ('orders-bad-type', GOOD + "orders: {entry: {type: iceberg}}\n",
     "s.yaml: orders.entry.type: Input should be 'market', 'limit', 'stop' or 'stop_limit', got 'iceberg'"),
    ('market-with-offset', GOOD + "orders: {entry: {offset: 0.01}}\n",
     "s.yaml: orders.entry: a market order takes no 'offset'; use type: limit, stop or stop_limit"),
    ('limit-without-price', GOOD + "orders: {entry: {type: limit}}\n",
     "s.yaml: orders.entry: a limit order needs 'price' (an indicator output) or 'offset' (from the close)"),
    ('limit-price-and-offset', ATR + "orders: {entry: {type: limit, price: bb.lower, offset: 0.01}}\n",
     "s.yaml: orders.entry: give a limit order 'price' or 'offset', not both"),
    ('limit-unknown-price', GOOD + "orders: {buy: {type: limit, price: bb.lower}}\n",
     "s.yaml: orders.buy.price: unknown indicator 'bb.lower'"),
    ('limit-price-is-signal', GOOD + "orders: {buy: {type: limit, price: cross}}\n",
     "s.yaml: orders.buy.price: 'cross' is a signal; inputs must be indicators or candle columns"),
    ('stop-limit-no-limit', GOOD + "orders: {entry: {type: stop_limit, offset: 0.01}}\n",
     "s.yaml: orders.entry: a stop_limit order needs 'limit_offset': how far beyond its stop the limit is (0 for a limit at the stop)"),
    ('stop-limit-wrong-side', GOOD + "orders: {entry: {type: stop_limit, offset: 0.01, limit_offset: -0.005}}\n",
     "s.yaml: orders.entry.limit_offset: a stop-limit's limit lies at or beyond its stop (a buy pays at most stop + limit_offset, a sell gets at least stop - limit_offset): got -0.005, use >= 0"),
    ('limit-offset-on-limit', GOOD + "orders: {entry: {type: limit, offset: 0.01, limit_offset: 0.01}}\n",
     "s.yaml: orders.entry: 'limit_offset' is only for type: stop_limit"),
    ('valid-for-zero', GOOD + "orders: {entry: {type: limit, offset: 0.01, valid_for: 0}}\n",
     's.yaml: orders.entry.valid_for: Input should be greater than or equal to 1, got 0'),
    ('offset-price-form', ATR + "orders: {entry: {type: limit, offset: {price: bb.lower}}}\n",
     "s.yaml: orders.entry: 'offset' is a fraction or an ATR multiple; an indicator price goes in 'price'"),
    ('max-entries-zero', GOOD + "orders: {max_entries: 0}\n",
     's.yaml: orders.max_entries: Input should be greater than or equal to 1, got 0'),
    ('stop-zero', GOOD + "risk: {stop_loss: 0}\n",
     's.yaml: risk.stop_loss: a distance of zero or less exits at once: got 0.0, give more than 0'),
    ('stop-negative', GOOD + "risk: {stop_loss: -0.02}\n",
     's.yaml: risk.stop_loss: a distance of zero or less exits at once: got -0.02, give more than 0'),
    ('stop-one', GOOD + "risk: {stop_loss: 1}\n",
     's.yaml: risk.stop_loss: as a fraction it must be less than 1 (0.02 is 2 %)'),
    ('trailing-zero', GOOD + "risk: {trailing_stop: 0}\n",
     's.yaml: risk.trailing_stop: a distance of zero or less exits at once: got 0.0, give more than 0'),
    ('trailing-atr-zero', ATR + "risk: {trailing_stop: {atr: atr, multiple: 0}}\n",
     's.yaml: risk.trailing_stop: a distance of zero or less exits at once: got 0.0, give more than 0'),
    ('trailing-price', ATR + "risk: {trailing_stop: {price: bb.lower}}\n",
     's.yaml: risk.trailing_stop: a trailing stop is a fraction or {atr: <node>, multiple: k}; it trails the closes'),
    ('atr-without-multiple', ATR + "risk: {stop_loss: {atr: atr}}\n",
     "s.yaml: risk.stop_loss: an ATR distance needs both 'atr' (an indicator) and 'multiple'"),
    ('two-forms', ATR + "risk: {stop_loss: {fraction: 0.01, atr: atr, multiple: 2}}\n",
     's.yaml: risk.stop_loss: give one of: a fraction (0.02), {atr: <atr node>, multiple: 2} or {price: <indicator>}'),
    ('atr-unknown', GOOD + "risk: {stop_loss: {atr: atr14, multiple: 2}}\n",
     "s.yaml: risk.stop_loss.atr: unknown indicator 'atr14'"),
    ('stop-price-multi-output', ATR + "risk: {stop_loss: {price: bb}}\n",
     "s.yaml: risk.stop_loss.price: indicator 'bb' has several outputs; name one, e.g. 'bb.upper' (outputs: upper, middle, lower)"),
    ('break-even-zero', GOOD + "risk: {break_even: 0}\n",
     's.yaml: risk.break_even: Input should be greater than 0, got 0'),
    ('max-bars-zero', GOOD + "risk: {max_bars: 0}\n",
     's.yaml: risk.max_bars: Input should be greater than or equal to 1, got 0'),
    ('max-bars-float', GOOD + "risk: {max_bars: 2.5}\n",
     's.yaml: risk.max_bars: Input should be a valid integer, got a number with a fractional part, got 2.5'),
    ('risk-without-stop', GOOD + "sizing: {method: risk, value: 0.01}\n",
     "s.yaml: sizing.method: 'risk' sizes each trade by its distance to the stop: give risk.stop_loss or risk.trailing_stop"),
    ('risk-over-one', GOOD + "sizing: {method: risk, value: 2}\nrisk: {stop_loss: 0.01}\n",
     's.yaml: sizing.value: risk sizing takes a value in (0, 1] (a fraction of equity), got 2.0'),
    ('leverage-zero', GOOD + "sizing: {max_leverage: 0}\n",
     's.yaml: sizing.max_leverage: Input should be greater than 0, got 0'),
    ('commission-negative', GOOD + "execution: {commission: -0.001}\n",
     's.yaml: execution.commission.fraction: Input should be greater than or equal to 0, got -0.001'),
    ('commission-unknown', GOOD + "execution: {commission: {percent: 0.1}}\n",
     's.yaml: execution.commission.percent: unknown key (check the spelling; see README for the schema)'),
    ('commission-inf', GOOD + "execution: {commission: {per_order: .inf}}\n",
     's.yaml: execution.commission.per_order: Input should be a finite number, got inf'),
    ('spread-negative-bps', GOOD + "execution: {spread: {bps: -1}}\n",
     's.yaml: execution.spread.bps: Input should be greater than or equal to 0, got -1'),
    ('slippage-string', GOOD + "execution: {slippage: lots}\n",
     "s.yaml: execution.slippage: give a number in price units (0.0001) or {bps: 1.5}, got 'lots'"),
    ('close-at-end-string', GOOD + "execution: {close_at_end: sometimes}\n",
     "s.yaml: execution.close_at_end: Input should be a valid boolean, unable to interpret input, got 'sometimes'"),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_order_setting_is_one_line(capsys, workspace, text, expected):  # noqa: F811
    code, out, err = run_cli(capsys, workspace, text, command="validate")
    assert_user_error(code, out, err, expected, workspace)


def test_every_new_setting_validates_when_right(capsys, workspace):  # noqa: F811
    text = (ATR + """\
orders:
  entry: {type: stop_limit, offset: {atr: atr, multiple: 0.5}, limit_offset: 0.001, valid_for: 3}
  sell: {type: limit, price: bb.upper}
  max_entries: 2
risk: {stop_loss: {price: low}, take_profit: {atr: atr, multiple: 3}, trailing_stop: 0.02, break_even: 0.01,
       max_bars: 48}
sizing: {method: risk, value: 0.01, whole_units: true, max_leverage: 2}
execution: {commission: {fraction: 0.0005, per_unit: 0.01, per_order: 1, minimum: 2}, spread: {bps: 1},
            slippage: 0.0001, close_at_end: true}
""").replace("exit: {death_cross: close}", "exit: {close_long: {when: death_cross, fraction: 0.5}, close: death_cross}"
              ).replace("entry: {golden_cross: buy}", "entry: {buy: golden_cross, sell: death_cross}")
    assert "fraction: 0.5" in text and "sell: death_cross" in text
    code, out, err = run_cli(capsys, workspace, text, command="validate")
    assert (code, err) == (0, ""), err


def test_an_order_for_a_side_no_rule_enters_is_a_warning(capsys, workspace):  # noqa: F811
    code, out, err = run_cli(capsys, workspace, GOOD + "orders: {sell: {type: limit, offset: 0.01}}\n",
                             command="validate")
    assert code == 0
    assert err == "warning: s.yaml: orders.sell: no entry rule does 'sell', so this order is never placed\n"
