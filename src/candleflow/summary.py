"""The rich summary table printed after ``candleflow run``: every metric, as the catalog labels and formats it."""

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
    for metric in METRICS:  # the catalog's order and labels
        if metric.key in result.metrics:
            table.add_row(metric.label, format_metric(metric.key, result.metrics[metric.key]))
    console = Console()
    console.print(f"[bold]{strategy.name}[/bold]: {strategy.symbol} {strategy.timeframe}, {len(candles):,} candles "
                  f"{candles.index[0]:%Y-%m-%d} .. {candles.index[-1]:%Y-%m-%d}")
    console.print(table)
    hits = sum(1 for s in result.stats.values() if s.cache == "hit")
    seconds = sum(s.seconds for s in result.stats.values())
    replayed = [s.name for s in result.stats.values() if s.status == "replayed"]
    source = f"{len(replayed)} replayed from recorded signals ({', '.join(replayed)}), " if replayed else ""
    console.print(f"{len(result.stats)} nodes, {source}{hits} from cache, {seconds:.3f} s of node time")
    if out is not None:
        console.print(f"results written to {out}/")
    else:
        console.print("no result files written (use --out DIR)")
