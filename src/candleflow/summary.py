"""The rich summary table printed after ``candleflow run``: the catalog's core metrics, labelled and formatted by it.

The other metrics are in ``metrics.json`` and the report; a line after the table says how many.
"""

from __future__ import annotations

from pathlib import Path

from candleflow.portfolio.catalog import METRICS, format_metric


def print_summary(result, *, out: Path | None = None) -> None:
    from rich.console import Console  # rich: only when something is printed
    from rich.table import Table  # rich: only when something is printed

    strategy = result.strategy
    candles = result.candles
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    shown = [metric for metric in METRICS if metric.core and metric.key in result.metrics]  # the catalog's order
    for metric in shown:
        table.add_row(metric.label, format_metric(metric.key, result.metrics[metric.key]))
    console = Console()
    console.print(f"[bold]{strategy.name}[/bold]: {strategy.symbol} {strategy.timeframe}, {len(candles):,} candles "
                  f"{candles.index[0]:%Y-%m-%d} .. {candles.index[-1]:%Y-%m-%d}")
    console.print(table)
    if len(result.metrics) > len(shown):
        where = f"{out}/metrics.json" if out is not None else "metrics.json when results are written"
        console.print(f"{len(result.metrics) - len(shown)} more metrics (README \"Metrics\") in {where}")
    hits = sum(1 for s in result.stats.values() if s.cache == "hit")
    seconds = sum(s.seconds for s in result.stats.values())
    replayed = [s.name for s in result.stats.values() if s.status == "replayed"]
    source = f"{len(replayed)} replayed from recorded signals ({', '.join(replayed)}), " if replayed else ""
    console.print(f"{len(result.stats)} nodes, {source}{hits} from cache, {seconds:.3f} s of node time")
    if out is not None:
        console.print(f"results written to {out}/")
    else:
        console.print("no result files written (use --out DIR)")
