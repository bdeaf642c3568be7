"""The metric catalog: every metric a run computes, defined once.

Each :class:`Metric` says what the metric is (a one-line ``definition``), how it
is shown (``label`` and a format kind from :data:`FORMATS`), which way is better
(``better``: ``"max"``, ``"min"`` or None when neither is), the value that is
neither good nor bad (``neutral``: the report colours values on the better side
of it green, the others red) and where it is a headline (``card``: a card at the
top of the HTML report; ``sweep``: a column of the sweep's top-N table).

:func:`~candleflow.portfolio.metrics.compute_metrics` returns exactly the keys of
:data:`METRICS` and README's "Metrics" table lists exactly these entries (both
checked by ``tests/test_catalog.py``).  Everything that prints a metric -- the
run summary, the HTML report, the sweep table -- formats it with
:func:`format_metric`, so a metric reads the same everywhere; a sweep ranks by
:func:`better` unless its grid gives a direction.

Conventions shared by the definitions:

* ``initial_cash`` is the equity just before the first bar.
* ``r`` are the per-bar simple returns of the equity, the first one against
  ``initial_cash``; the risk-free rate is 0.
* ``periods_per_year`` (Sharpe, Sortino) is ``365.25 x 86400 / median bar
  spacing in seconds``: calendar time, so a daily stock series counts 365.25
  bars a year, not 252 (``infer_periods_per_year``).
* Trade statistics count **closed trades only**, as backtesting.py does: a
  position still open at the end (``exit_reason == "open"``) is in the equity
  (and its entry commission in ``commissions``, its entry's spread and slippage in ``costs``) but in
  no trade statistic.
* Durations are calendar days (format ``days``); every metric is a number.
* ``core`` metrics are the rows of the CLI summary; ``metrics.json``, the report
  and a sweep's frame have them all.
* Undefined values are ``float("nan")`` / ``float("inf")``; :func:`format_metric`
  shows them as ``n/a`` / ``inf``.

This module imports no other candleflow module (it is plain data), so every
layer may use it.

>>> format_metric("total_return", 0.1234), format_metric("n_trades", 1234), format_metric("sharpe", float("nan"))
('+12.34%', '1,234', 'n/a')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Format = Literal["money", "percent", "signed_percent", "share", "ratio", "count", "days"]
Better = Literal["max", "min"]

FORMATS: dict[str, str] = {  # format kind -> str.format spec
    "money": "{:,.2f}",  # 10,234.56 (in the account's currency)
    "percent": "{:.2%}",  # -12.34% (a fraction shown as a percentage)
    "signed_percent": "{:+.2%}",  # +5.67% (a gain or a loss, always with its sign)
    "share": "{:.1%}",  # 45.5% (a part of a whole: 0 % .. 100 %)
    "ratio": "{:,.2f}",  # 1.23
    "count": "{:,d}",  # 1,234
    "days": "{:,.2f} d",  # 12.50 d (a duration in calendar days)
}


@dataclass(frozen=True)
class Metric:
    """One metric: its key in the metrics dict, how it is shown, which way is better, what it means."""

    key: str
    label: str
    format: Format
    better: Better | None
    definition: str
    neutral: float | None = None  # neither good nor bad; None: not coloured
    card: bool = False  # a headline card of the HTML report
    sweep: bool = False  # a column of the sweep's top-N table
    core: bool = False  # a row of the run summary printed by the CLI (metrics.json and the report have all)


METRICS: tuple[Metric, ...] = (
    Metric("final_equity", "Final equity", "money", "max",
           "Equity after the last bar: cash + signed position x last close (an open position is marked at it).",
           card=True, core=True),
    Metric("total_return", "Total return", "signed_percent", "max",
           "`final_equity / initial_cash - 1`.", neutral=0.0, card=True, sweep=True, core=True),
    Metric("cagr", "CAGR", "signed_percent", "max",
           "`(final_equity / initial_cash) ** (1 / years) - 1`, `years` = calendar time from the first to the "
           "last bar / 365.25 days; NaN if that span is zero, -1 if the final equity is not positive.",
           neutral=0.0, card=True, core=True),
    Metric("sharpe", "Sharpe", "ratio", "max",
           "`mean(r) / std(r, ddof=1) x sqrt(periods_per_year)`; NaN when the returns do not vary.",
           neutral=0.0, card=True, sweep=True, core=True),
    Metric("sortino", "Sortino", "ratio", "max",
           "`mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(periods_per_year)`; inf when no return is negative "
           "and the mean is positive, NaN when no return is negative and the mean is not.", neutral=0.0, core=True),
    Metric("max_drawdown", "Max drawdown", "percent", "max",
           "The most negative `equity / running peak - 1` (e.g. -0.12), the peak starting at `initial_cash`; "
           "0 if equity never falls below a previous peak.", neutral=0.0, card=True, sweep=True, core=True),
    Metric("n_trades", "Trades", "count", None,
           "The number of closed trades.", card=True, sweep=True, core=True),
    Metric("win_rate", "Win rate", "share", "max",
           "The share of closed trades with `pnl > 0`; NaN without closed trades.", card=True, sweep=True, core=True),
    Metric("profit_factor", "Profit factor", "ratio", "max",
           "Gross profit / gross loss of closed trades; inf if nothing was lost and something won, NaN if "
           "there are no closed trades or all broke even.", neutral=1.0, card=True, core=True),
    Metric("avg_trade_return", "Avg trade return", "signed_percent", "max",
           "The mean `return_pct` (`pnl / (size x entry_price)`) of closed trades; NaN without closed trades.",
           neutral=0.0, core=True),
    Metric("exposure", "Exposure", "share", None,
           "The share of bars that end with a nonzero position.", core=True),
    Metric("buy_hold_return", "Buy and hold return", "signed_percent", None,
           "`last close / first close - 1`: holding the symbol from the first bar to the last, without costs.",
           core=True),
    Metric("duration_days", "Duration", "days", None,
           "Calendar time from the first to the last bar, in days."),
    Metric("equity_peak", "Equity peak", "money", "max",
           "The highest equity, `initial_cash` included."),
    Metric("return_ann", "Return (ann.)", "signed_percent", "max",
           "`(1 + geometric mean of r) ** periods_per_year - 1`; -1 if the equity reached 0.", neutral=0.0),
    Metric("volatility_ann", "Volatility (ann.)", "percent", "min",
           "`std(r, ddof=1) x sqrt(periods_per_year)`."),
    Metric("calmar", "Calmar", "ratio", "max",
           "`return_ann / -max_drawdown`; NaN without a drawdown.", neutral=0.0),
    Metric("avg_drawdown", "Avg drawdown", "percent", "max",
           "The mean depth (`equity / peak - 1` at its deepest) of the drawdowns: the maximal runs of bars "
           "below the running peak; 0 without one.", neutral=0.0),
    Metric("max_drawdown_duration", "Max drawdown duration", "days", "min",
           "The longest drawdown, in days from its peak's bar to the bar that regains the peak (or the last "
           "bar; the `initial_cash` point counts at the first bar's time); 0 without one."),
    Metric("avg_drawdown_duration", "Avg drawdown duration", "days", "min",
           "The mean duration of the drawdowns, as `max_drawdown_duration` measures them; 0 without one."),
    Metric("best_trade", "Best trade", "signed_percent", "max",
           "The highest `return_pct` of a closed trade; NaN without closed trades.", neutral=0.0),
    Metric("worst_trade", "Worst trade", "signed_percent", "max",
           "The lowest `return_pct` of a closed trade; NaN without closed trades.", neutral=0.0),
    Metric("expectancy", "Expectancy", "money", "max",
           "The mean `pnl` of closed trades, in the account's currency; NaN without closed trades.", neutral=0.0),
    Metric("sqn", "SQN", "ratio", "max",
           "System quality number: `sqrt(n_trades) x mean(pnl) / std(pnl, ddof=1)` over closed trades; NaN "
           "with fewer than 2 or when the P&L does not vary.", neutral=0.0),
    Metric("kelly", "Kelly criterion", "share", "max",
           "`win_rate - (1 - win_rate) / (mean winning pnl / mean losing pnl)` over closed trades (losses as "
           "positive amounts); NaN without a win or without a loss.", neutral=0.0),
    Metric("max_trade_duration", "Max trade duration", "days", None,
           "The longest `exit_time - entry_time` of a closed trade, in days; NaN without closed trades."),
    Metric("avg_trade_duration", "Avg trade duration", "days", None,
           "The mean `exit_time - entry_time` of closed trades, in days; NaN without closed trades."),
    Metric("commissions", "Commissions", "money", "min",
           "The commission paid on every fill, the open trade's entry included."),
    Metric("costs", "Spread and slippage", "money", "min",
           "What the fills paid in spread and slippage: the summed `spread_slippage` of the trades (`size x "
           "abs(fill - price)` per fill), the open trade's entry included."),
    Metric("long_trades", "Long trades", "count", None, "The number of closed long trades."),
    Metric("long_win_rate", "Long win rate", "share", "max",
           "The share of closed long trades with `pnl > 0`; NaN without one."),
    Metric("long_pnl", "Long profit", "money", "max",
           "The summed `pnl` of closed long trades (net of commissions).", neutral=0.0),
    Metric("short_trades", "Short trades", "count", None, "The number of closed short trades."),
    Metric("short_win_rate", "Short win rate", "share", "max",
           "The share of closed short trades with `pnl > 0`; NaN without one."),
    Metric("short_pnl", "Short profit", "money", "max",
           "The summed `pnl` of closed short trades (net of commissions).", neutral=0.0),
)

CATALOG: dict[str, Metric] = {metric.key: metric for metric in METRICS}


def label(key: str) -> str:
    """The metric's label; an unknown key (e.g. from an older results folder) is spelled out."""
    metric = CATALOG.get(key)
    return metric.label if metric else key.replace("_", " ").capitalize()


def better(key: str) -> Better | None:
    """Which way the metric is better: "max", "min", or None (neither, or an unknown metric)."""
    metric = CATALOG.get(key)
    return metric.better if metric else None


def format_metric(key: str, value: Any) -> str:
    """``value`` as the catalog formats metric ``key``: NaN and None are "n/a", infinities "inf"/"-inf".

    An unknown key's number is shown with 6 significant digits.
    """
    if value is None:
        return "n/a"
    number = float(value)
    if math.isnan(number):
        return "n/a"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    metric = CATALOG.get(key)
    if metric is None:
        return f"{number:,.6g}"
    return FORMATS[metric.format].format(int(number) if metric.format == "count" else number)
