"""Rich progress for a run: a bar per node (per candle for script components).

Shown only on a terminal (stderr is a TTY) and never with ``--quiet``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable


def run_with_progress(run: Callable[..., Any], compiled, candles, *, quiet: bool = False, **options: Any) -> Any:
    """Call ``run(compiled, candles, **options)`` with progress callbacks wired to a rich display."""
    if quiet or not sys.stderr.isatty():
        return run(compiled, candles, **options)
    from rich.console import Console  # rich: only when something is printed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # rich: see above

    graph = compiled.graph
    nodes = [n for n in compiled.order() if graph.nodes[n]["kind"] not in ("candles", "reference")]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        overall = bar.add_task("nodes", total=len(nodes))
        per_candle: dict[str, Any] = {}

        def on_node_done(stats) -> None:
            bar.advance(overall)
            if stats.name in per_candle:
                bar.remove_task(per_candle.pop(stats.name))

        def on_candles(name: str, done: int) -> None:
            if name not in per_candle:
                per_candle[name] = bar.add_task(f"  {name}", total=len(candles))
            bar.update(per_candle[name], completed=done)

        return run(compiled, candles, on_node_done=on_node_done, progress=on_candles, **options)
