"""The rich summary table printed after ``candleflow run``."""

from __future__ import annotations

import math
from pathlib import Path

METRIC_FORMATS = [
    ("final_equity", "Final equity", "{:,.2f}"),
    ("total_return", "Total return", "{:+.2%}"),
    ("cagr", "CAGR", "{:+.2%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown", "Max drawdown", "{:.2%}"),
    ("n_trades", "Trades", "{:d}"),
    ("win_rate", "Win rate", "{:.1%}"),
    ("profit_factor", "Profit factor", "{:.2f}"),
    ("exposure", "Exposure", "{:.1%}"),
]


def format_metric(key: str, value) -> str:
    fmt = next((f for k, _, f in METRIC_FORMATS if k == key), "{}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return fmt.format(int(value) if fmt == "{:d}" else value)


def print_summary(result, *, out: Path | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    strategy = result.strategy
    candles = result.candles
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label, _ in METRIC_FORMATS:
        if key in result.metrics:
            table.add_row(label, format_metric(key, result.metrics[key]))
    console = Console()
    console.print(f"[bold]{strategy.name}[/bold]: {strategy.symbol} {strategy.timeframe}, {len(candles):,} candles "
                  f"{candles.index[0]:%Y-%m-%d} .. {candles.index[-1]:%Y-%m-%d}")
    console.print(table)
    hits = sum(1 for s in result.stats.values() if s.cache == "hit")
    seconds = sum(s.seconds for s in result.stats.values())
    console.print(f"{len(result.stats)} nodes, {hits} from cache, {seconds:.3f} s of node time")
    if out is not None:
        console.print(f"results written to {out}/")
