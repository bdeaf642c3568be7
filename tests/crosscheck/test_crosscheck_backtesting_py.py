"""candleflow against backtesting.py on its own GOOG daily candles: SMA(10/20) crossover.

backtesting.py set to candleflow's conventions (README "How orders fill"):

* ``exclusive_orders=True``: a new entry first closes the open position at the same fill,
  which is candleflow's reversal (and, with ``allow_short: false``, a sell that only closes).
* ``trade_on_close=False`` for ``fill: next_open``; ``True`` for ``fill: close``.
* ``finalize_trades=False``: a position still open after the last candle stays open and is
  marked at the last close, as in candleflow (``exit_reason == "open"``).
* ``commission=c``: a fraction of notional on each side, as in candleflow.
* ``spread=0`` on both sides, but in ``test_spread_paid_matches_backtesting_py``: backtesting.py's
  spread is a rate of the price paid once, on a new trade's entry fill (its exits fill at the raw
  price); candleflow's ``{bps: b}`` moves every fill by half of it.
* Sizing: ``buy(size=0.99)`` buys whole units with 99 % of the equity available at the fill,
  commission included: candleflow ``{method: fraction, value: 0.99, whole_units: true}``
  (backtesting.py reads a size of 1 or more as a number of units, so the fraction is < 1).
* Signals: ``next()`` applies candleflow's crossing rule (``fast[i-1] <= slow[i-1]`` and
  ``fast[i] > slow[i]``) to SMAs computed the way ``backtesting.test.SMA`` does;
  ``backtesting.lib.crossover`` uses ``<`` at ``i-1`` instead.
* Stops (``fill: close`` only): ``sl``/``tp`` set at the order from the signal candle's close,
  which is the fill price with ``trade_on_close=True``.  With ``next_open`` fills the levels
  depend on a fill price the strategy cannot know when it places the order.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.test import SMA

from crosscheck_support import assert_frames_equal, closed_trades, open_trade, peer_trades, run_candleflow, utc

pytestmark = pytest.mark.crosscheck

FAST, SLOW = 10, 20
CASH = 10_000.0
COMMISSION = 0.002
FRACTION = 0.99
STOP_LOSS, TAKE_PROFIT = 0.01, 0.02


def peer_strategy(*, allow_short: bool, size: float, stop_loss: float | None = None,
                  take_profit: float | None = None) -> type[Strategy]:
    """The SMA crossover as a backtesting.py strategy: golden cross -> buy, death cross -> sell (or close)."""

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(SMA, self.data.Close, FAST)
            self.slow = self.I(SMA, self.data.Close, SLOW)

        def next(self):
            f, s, close = self.fast, self.slow, self.data.Close[-1]
            golden = f[-2] <= s[-2] and f[-1] > s[-1]
            death = f[-2] >= s[-2] and f[-1] < s[-1]
            if golden and not self.position.is_long:
                self.buy(size=size, **_levels(close, +1, stop_loss, take_profit))
            elif death and allow_short and not self.position.is_short:
                self.sell(size=size, **_levels(close, -1, stop_loss, take_profit))
            elif death and self.position.is_long:
                self.position.close()

    return SmaCross


def _levels(fill: float, side: int, stop_loss: float | None, take_profit: float | None) -> dict:
    """Absolute SL/TP computed exactly as candleflow does from the entry fill."""
    levels = {}
    if stop_loss is not None:
        levels["sl"] = fill * (1 - side * stop_loss)
    if take_profit is not None:
        levels["tp"] = fill * (1 + side * take_profit)
    return levels


def run_peer(data: pd.DataFrame, strategy: type[Strategy], *, trade_on_close: bool, spread: float = 0.0):
    backtest = Backtest(data, strategy, cash=CASH, commission=COMMISSION, spread=spread, exclusive_orders=True,
                        trade_on_close=trade_on_close, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open": that is the convention being matched
        return backtest.run()


def ours(trades: pd.DataFrame) -> pd.DataFrame:
    frame = trades.copy()
    frame["signed_size"] = np.where(frame["side"] == "long", 1.0, -1.0) * frame["size"]
    frame["entry_time"] = utc(frame["entry_time"])
    frame["exit_time"] = utc(frame["exit_time"])
    return frame


EXACT = ["entry_time", "exit_time", "entry_bar", "exit_bar", "entry_price", "exit_price", "signed_size"]


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("allow_short", [False, True], ids=["long_only", "long_short"])
def test_sma_crossover_matches_backtesting_py(goog, fill, allow_short):
    result = run_candleflow("sma_crossover.yaml", goog, fast=FAST, slow=SLOW, fill=fill, commission=COMMISSION,
                            sizing_method="fraction", sizing_value=FRACTION, whole_units=True,
                            allow_short=allow_short, cash=CASH)
    stats = run_peer(goog, peer_strategy(allow_short=allow_short, size=FRACTION), trade_on_close=fill == "close")

    mine, theirs = ours(closed_trades(result.trades)), peer_trades(stats)
    assert len(mine) >= 40  # a real comparison, not two empty logs
    assert_frames_equal(mine, theirs, exact=EXACT, close=["pnl", "commission"])

    # the position still open at the end: same entry, same size, on both sides
    still_open = open_trade(result.trades)
    peer_open = stats._strategy.trades
    assert len(still_open) == len(peer_open) == 1
    assert still_open["entry_bar"][0] == peer_open[0].entry_bar
    assert still_open["entry_price"][0] == peer_open[0].entry_price
    assert (1 if still_open["side"][0] == "long" else -1) * still_open["size"][0] == peer_open[0].size

    assert result.metrics["final_equity"] == pytest.approx(stats["Equity Final [$]"], rel=1e-6, abs=0)
    if fill == "next_open":
        # backtesting.py records equity after the bar's fills, like candleflow; with trade_on_close
        # it books a close fill on the next bar's record, so there only the end point is compared
        np.testing.assert_allclose(result.equity.to_numpy(), stats._equity_curve["Equity"].to_numpy(),
                                   rtol=1e-9, atol=0)


def test_spread_paid_matches_backtesting_py(goog):
    """``spread_slippage`` against the fill prices backtesting.py's ``spread`` gives the same trades.

    backtesting.py fills a new trade at ``price x (1 + side x rate)`` and exits at the raw price;
    candleflow's ``spread: {bps: 2 x rate x 10,000}`` moves each fill by ``rate x price``.  Long/short with
    fixed units, so every exit is a reversal: at that bar backtesting.py's new trade fills where candleflow's
    exit of the old one does (the same side, the same price), and every candleflow fill has a peer fill.
    The raw prices come from the peer run without spread (the same trades: signals from the closes).
    """
    rate, units = 0.001, 10
    result = run_candleflow("sma_crossover.yaml", goog, fast=FAST, slow=SLOW, fill="next_open",
                            commission=COMMISSION, sizing_method="fixed", sizing_value=units, whole_units=False,
                            allow_short=True, cash=CASH, spread=f"{{bps: {2 * rate * 10_000:g}}}")
    strategy = peer_strategy(allow_short=True, size=units)
    priced, raw = (run_peer(goog, strategy, trade_on_close=False, spread=spread) for spread in (rate, 0.0))
    mine, theirs, plain = ours(closed_trades(result.trades)), peer_trades(priced), peer_trades(raw)
    assert len(mine) >= 40
    same = ["entry_bar", "exit_bar", "signed_size"]
    assert_frames_equal(mine, theirs, exact=same, close=["entry_price"], rtol=1e-12)  # x (1 + r) vs + x r
    assert_frames_equal(plain, theirs, exact=[*same, "exit_price"], close=[])  # the peer's exits: raw prices
    np.testing.assert_array_equal(mine["exit_bar"][:-1], mine["entry_bar"][1:])  # every exit a reversal
    still_open = open_trade(result.trades)
    peer_open, raw_open = priced._strategy.trades, raw._strategy.trades
    assert len(still_open) == len(peer_open) == len(raw_open) == 1
    # every fill as the peer prices it, and its raw price: trade k's entry, then its exit = trade k+1's entry
    fills = np.append(theirs["entry_price"].to_numpy(), peer_open[0].entry_price)
    prices = np.append(plain["entry_price"].to_numpy(), raw_open[0].entry_price)
    paid = np.abs(fills - prices) * units  # per fill
    np.testing.assert_allclose(mine["exit_price"], fills[1:], rtol=1e-12)
    np.testing.assert_allclose(mine["spread_slippage"], paid[:-1] + paid[1:], rtol=1e-9, atol=0)
    assert still_open["spread_slippage"][0] == pytest.approx(paid[-1], rel=1e-9, abs=0)  # its entry only
    # in total: the peer's fills, the first entry once and every reversal's twice (candleflow's exit and entry)
    assert result.metrics["costs"] == pytest.approx(paid[0] + 2 * paid[1:].sum(), rel=1e-9, abs=0)


def _stop_bars(trades: pd.DataFrame, candles: pd.DataFrame) -> tuple[int, int]:
    """(stop exits at a bar whose range touched both levels, stop exits filled at a gapped open)."""
    both = gaps = 0
    for trade in trades.itertuples():
        if trade.exit_reason not in ("stop_loss", "take_profit"):
            continue
        side = 1 if trade.side == "long" else -1
        levels = sorted([trade.entry_price * (1 - side * STOP_LOSS), trade.entry_price * (1 + side * TAKE_PROFIT)])
        bar = candles.iloc[trade.exit_bar]
        both += bar["Low"] <= levels[0] and bar["High"] >= levels[1]
        gaps += trade.exit_price == bar["Open"]
    return both, gaps


def test_stops_match_backtesting_py(goog):
    """SL/TP on the close-fill variant: levels, touch and gap fills, stop-loss first when both are touched."""
    result = run_candleflow("sma_crossover_stops.yaml", goog, fast=FAST, slow=SLOW, fill="close",
                            commission=COMMISSION, sizing_method="fraction", sizing_value=FRACTION,
                            whole_units=True, allow_short=False, cash=CASH, stop_loss=STOP_LOSS,
                            take_profit=TAKE_PROFIT)
    stats = run_peer(goog, peer_strategy(allow_short=False, size=FRACTION, stop_loss=STOP_LOSS,
                                         take_profit=TAKE_PROFIT), trade_on_close=True)

    mine, theirs = ours(closed_trades(result.trades)), peer_trades(stats)
    assert_frames_equal(mine, theirs, exact=EXACT, close=["pnl", "commission"])
    reasons = mine["exit_reason"].value_counts()
    assert reasons.get("stop_loss", 0) >= 10 and reasons.get("take_profit", 0) >= 10
    both, gaps = _stop_bars(mine, goog)
    assert both >= 1 and gaps >= 1  # the ambiguous bars and the gaps are really exercised
    assert result.metrics["final_equity"] == pytest.approx(stats["Equity Final [$]"], rel=1e-6, abs=0)


def test_gap_beyond_take_profit_differs_by_design(goog):
    """The one stop rule that differs: a bar that opens beyond the take-profit and then reaches the stop.

    candleflow reads the open first, so the take-profit fills at the open.  backtesting.py
    processes the stop-loss order first over the whole bar, so it fills at the stop level.
    Fixed units keep the two runs in step after such a bar; every other fill must agree.
    """
    units = 10
    result = run_candleflow("sma_crossover_stops.yaml", goog, fast=FAST, slow=SLOW, fill="close",
                            commission=COMMISSION, sizing_method="fixed", sizing_value=units, whole_units=False,
                            allow_short=True, cash=CASH, stop_loss=STOP_LOSS, take_profit=TAKE_PROFIT)
    stats = run_peer(goog, peer_strategy(allow_short=True, size=units, stop_loss=STOP_LOSS,
                                         take_profit=TAKE_PROFIT), trade_on_close=True)
    mine, theirs = ours(closed_trades(result.trades)), peer_trades(stats)
    assert_frames_equal(mine, theirs, exact=["entry_time", "exit_time", "entry_price", "signed_size"], close=[])

    side = np.where(mine["side"] == "long", 1, -1)
    target = mine["entry_price"] * (1 + side * TAKE_PROFIT)
    stop = mine["entry_price"] * (1 - side * STOP_LOSS)
    bars = goog.iloc[mine["exit_bar"].to_numpy()]
    opened_beyond_target = np.where(side > 0, bars["Open"].to_numpy() >= target, bars["Open"].to_numpy() <= target)
    reached_stop = np.where(side > 0, bars["Low"].to_numpy() <= stop, bars["High"].to_numpy() >= stop)
    differs = (mine["exit_price"] != theirs["exit_price"]).to_numpy()

    by_design = opened_beyond_target & reached_stop
    assert by_design.sum() >= 1
    np.testing.assert_array_equal(differs, by_design)  # they differ exactly there, and nowhere else
    np.testing.assert_array_equal(mine["exit_reason"][by_design], "take_profit")
    np.testing.assert_array_equal(mine["exit_price"][by_design], bars["Open"].to_numpy()[by_design])
    np.testing.assert_array_equal(theirs["exit_price"][by_design], stop[by_design])


# --- statistics: candleflow's metrics against backtesting.py's ``stats`` for the same trades -------------------

DAY = pd.Timedelta(days=1)


def _days(value) -> float:
    return value / DAY


def _peer_annualised(equity: pd.Series, max_drawdown: float) -> dict[str, float]:
    """backtesting.py's annualised figures (``_stats.compute_stats``), rewritten from its source: returns of
    the equity resampled to calendar days, compounded over 252 trading days a year (365 when a good share of
    the bars fall on weekends), a compounding-aware volatility, and Sharpe/Sortino/Calmar from those."""
    day = equity.resample("D").last().dropna().pct_change().dropna().to_numpy()
    weekends = np.mean(equity.index.dayofweek >= 5) > 2 / 7 * 0.6
    n = 365 if weekends else 252
    g = np.exp(np.mean(np.log1p(day))) - 1
    ann = (1 + g) ** n - 1
    vol = np.sqrt((day.var(ddof=1) + (1 + g) ** 2) ** n - (1 + g) ** (2 * n))
    return {"Return (Ann.) [%]": ann * 100, "Volatility (Ann.) [%]": vol * 100, "Sharpe Ratio": ann / vol,
            "Sortino Ratio": ann / (np.sqrt(np.mean(np.minimum(day, 0) ** 2)) * np.sqrt(n)),
            "Calmar Ratio": ann / -max_drawdown}


def _ceil(days: float, data: pd.DataFrame) -> pd.Timedelta:
    """A duration rounded up to the data's resolution, as backtesting.py shows its durations."""
    period = pd.Series(data.index[-100:]).diff().dropna().median()
    return pd.Timedelta(days=days).ceil(period.resolution_string)


def assert_stats_agree(result, stats, data: pd.DataFrame) -> None:
    """Every statistic both compute under one definition, to 1e-9, straight or through a documented unit."""
    m, close = result.metrics, lambda a, b: pytest.approx(b, rel=1e-9, abs=1e-12) == a
    closed, peer = closed_trades(result.trades), stats._trades
    agree = {  # candleflow metric (converted to the peer's unit) -> backtesting.py's stats key
        "Equity Final [$]": m["final_equity"], "Equity Peak [$]": m["equity_peak"],
        "Return [%]": m["total_return"] * 100, "CAGR [%]": m["cagr"] * 100,
        "Max. Drawdown [%]": m["max_drawdown"] * 100, "Avg. Drawdown [%]": m["avg_drawdown"] * 100,
        "# Trades": m["n_trades"], "Win Rate [%]": m["win_rate"] * 100,
        "Best Trade [%]": m["best_trade"] * 100, "Worst Trade [%]": m["worst_trade"] * 100,
        "Expectancy [%]": m["avg_trade_return"] * 100,  # backtesting.py's expectancy is the mean trade return
        "SQN": m["sqn"], "Kelly Criterion": m["kelly"],
    }
    for key, ours in agree.items():
        assert close(ours, stats[key]), f"{key}: candleflow {ours!r}, backtesting.py {stats[key]!r}"
    assert close(m["duration_days"], _days(stats["Duration"]))
    # durations: backtesting.py shows them rounded up to the data's resolution; its unrounded ones are in
    # _equity_curve (drawdowns) and _trades (trades)
    dd = stats._equity_curve["DrawdownDuration"].dropna()
    assert close(m["max_drawdown_duration"], _days(dd.max())) and close(m["avg_drawdown_duration"], _days(dd.mean()))
    assert close(m["max_trade_duration"], _days(peer["Duration"].max()))
    assert close(m["avg_trade_duration"], _days(peer["Duration"].mean()))
    assert _ceil(m["max_drawdown_duration"], data) == stats["Max. Drawdown Duration"]
    assert _ceil(m["max_trade_duration"], data) == stats["Max. Trade Duration"]
    assert close(m["expectancy"], peer["PnL"].mean())  # candleflow's expectancy is in money
    for side, sign in (("long", 1), ("short", -1)):
        pnl = peer["PnL"][np.sign(peer["Size"]) == sign]
        assert m[f"{side}_trades"] == len(pnl) and close(m[f"{side}_pnl"], pnl.sum())
        assert close(m[f"{side}_win_rate"], (pnl > 0).mean()) if len(pnl) else math.isnan(m[f"{side}_win_rate"])


def assert_stats_differ_by_design(result, stats, data: pd.DataFrame) -> None:
    """The statistics defined differently: backtesting.py's value is its own formula applied to the same run,
    candleflow's is the catalog's (README "Metrics"), and the two really differ here."""
    m, close = result.metrics, lambda a, b: pytest.approx(b, rel=1e-9, abs=1e-12) == a
    closed, trades = closed_trades(result.trades), result.trades
    returns = closed["return_pct"]
    # commissions: candleflow counts the still-open trade's entry commission, which has been paid
    assert close(m["commissions"] - open_trade(trades)["commission"].sum(), stats["Commissions [$]"])
    # buy & hold: backtesting.py starts at the first bar where every indicator is defined (SMA(SLOW): SLOW - 1)
    c = data["Close"].to_numpy()
    assert close(m["buy_hold_return"], c[-1] / c[0] - 1)
    assert close(stats["Buy & Hold Return [%]"], (c[-1] / c[SLOW - 1] - 1) * 100)
    # exposure: backtesting.py counts the bars from entry to exit of closed trades, both included;
    # candleflow the bars that end with a position (the still-open trade's too)
    held = np.zeros(len(data))
    for trade in closed.itertuples():
        held[trade.entry_bar:trade.exit_bar + 1] = 1
    assert close(stats["Exposure Time [%]"], held.mean() * 100)
    assert not close(m["exposure"] * 100, stats["Exposure Time [%]"])
    # trade averages: backtesting.py's "Avg. Trade" is the geometric mean of the returns, its profit factor
    # sums returns; candleflow's avg_trade_return is the arithmetic mean, its profit factor sums money
    assert close(stats["Avg. Trade [%]"], (np.exp(np.mean(np.log1p(returns))) - 1) * 100)
    assert close(stats["Profit Factor"], returns[returns > 0].sum() / -returns[returns < 0].sum())
    pnl = closed["pnl"]
    assert close(m["profit_factor"], pnl[pnl > 0].sum() / -pnl[pnl < 0].sum())
    assert not close(m["profit_factor"], stats["Profit Factor"])
    # annualised figures: daily returns and 252 trading days there, per-bar returns and calendar periods here
    peer = _peer_annualised(result.equity, m["max_drawdown"])
    for key, value in peer.items():
        assert close(stats[key], value), f"{key}: backtesting.py {stats[key]!r}, its formula {value!r}"
    assert not close(m["sharpe"], stats["Sharpe Ratio"]) and not close(m["sortino"], stats["Sortino Ratio"])
    assert not close(m["return_ann"] * 100, stats["Return (Ann.) [%]"])


@pytest.mark.parametrize("candles", ["goog", "eurusd"])
@pytest.mark.parametrize("allow_short", [False, True], ids=["long_only", "long_short"])
def test_stats_match_backtesting_py(candles, allow_short, request):
    """The same trades (next_open fills: the equity curves agree bar by bar) give the same statistics."""
    data = request.getfixturevalue(candles)
    result = run_candleflow("sma_crossover.yaml", data, fast=FAST, slow=SLOW, fill="next_open",
                            commission=COMMISSION, sizing_method="fraction", sizing_value=FRACTION,
                            whole_units=True, allow_short=allow_short, cash=CASH)
    stats = run_peer(data, peer_strategy(allow_short=allow_short, size=FRACTION), trade_on_close=False)
    assert_frames_equal(ours(closed_trades(result.trades)), peer_trades(stats), exact=EXACT,
                        close=["pnl", "commission"])
    assert result.metrics["n_trades"] >= 40 and result.metrics["max_drawdown"] < 0
    assert_stats_agree(result, stats, data)
    assert_stats_differ_by_design(result, stats, data)
