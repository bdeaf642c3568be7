"""What a sweep shows on the terminal: a progress bar over combinations and the top-N table."""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from candleflow.portfolio.catalog import METRICS, format_metric

if TYPE_CHECKING:
    from candleflow.sweep.run import SweepResult
    from candleflow.sweep.walkforward import WalkForwardResult


@contextlib.contextmanager
def progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A ``(done, total)`` callback drawing a rich bar on stderr; None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console  # rich: only when something is printed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # rich: see above

    with Progress(TextColumn("combinations"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("combinations", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_top(result: SweepResult, *, top: int, out: Path | None = None, report: Path | None = None) -> None:
    """The best ``top`` rows (rank metric first, then the catalog's sweep columns) and a one-line account."""
    from rich.console import Console  # rich: only when something is printed
    from rich.table import Table  # rich: only when something is printed

    rank = result.rank
    shown = [metric.key for metric in METRICS if metric.sweep]
    metrics = [m for m in dict.fromkeys([rank.by, *shown]) if m in result.metrics]
    rows = result.frame.head(top).to_dict("records")
    show_errors = any(isinstance(row["error"], str) for row in rows)
    table = Table(title=f"top {len(rows)} of {len(result.frame)} by {rank.by} ({rank.order})")
    for column in ["#", "symbol", *result.parameters]:
        table.add_column(column, justify="right" if column == "#" else "left")
    for metric in metrics:
        table.add_column(metric, justify="right", style="bold" if metric == rank.by else None)
    if show_errors:
        table.add_column("error", overflow="fold")
    for i, row in enumerate(rows, start=1):
        cells = [str(i), *(_text(row[c]) for c in ["symbol", *result.parameters])]
        cells += [format_metric(m, row[m]) for m in metrics]
        if show_errors:
            cells.append(_text(row["error"]))
        table.add_row(*cells)
    console = Console() if sys.stdout.isatty() else Console(width=160)  # piped: keep the headers whole
    console.print(table)
    uses, tasks = result.shared.get("indicator", (0, 0))
    console.print(f"{len(result.frame)} combinations, {result.failed} failed, {result.seconds:.1f} s; "
                  f"{tasks} indicator tasks served {uses} uses ({result.deduplicated('indicator')} deduplicated)")
    _print_written(console, out=out, report=report)


def print_walk_forward(result: "WalkForwardResult", *, out: Path | None = None, report: Path | None = None) -> None:
    """Per window: its test span, the chosen parameters, the rank metric in- and out-of-sample; then the
    stitched out-of-sample summary and the walk-forward efficiency."""
    from rich.console import Console  # rich: only when something is printed
    from rich.table import Table  # rich: only when something is printed

    rank = result.rank_by
    table = Table(title=f"walk-forward: {len(result.frame)} windows, parameters chosen by {rank} in-sample")
    for column in ["#", "test from", "to", *result.parameters, f"{rank} in", f"{rank} out", "return out", "error"]:
        table.add_column(column, justify="right" if column in ("#",) or " " in column else "left")
    for row in result.frame.to_dict("records"):
        table.add_row(str(row["window"]), f"{row['test_start']:%Y-%m-%d}", f"{row['test_end']:%Y-%m-%d}",
                      *(_text(row.get(p)) for p in result.parameters),
                      *(format_metric(m, row.get(f"{side}_{m}")) for side, m in (("is", rank), ("oos", rank),
                                                                                ("oos", "total_return"))),
                      _text(row.get("error")))
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(table)
    stitched = ", ".join(f"{m} {format_metric(m, result.metrics[m])}" for m in ("total_return", "sharpe", "max_drawdown"))
    console.print(f"out-of-sample, stitched: {stitched}, {len(result.trades)} trades; walk-forward efficiency "
                  f"{format_metric('sharpe', result.efficiency)}")
    _print_written(console, out=out, report=report)


def _print_written(console, *, out: Path | None, report: Path | None) -> None:
    if out is not None:
        console.print(f"results written to {out}")
    if report is not None:
        console.print(f"report written to {report}")


def _text(value) -> str:
    """A cell: missing values (None, NaN) are blank."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
