"""Run a sweep: plan on the client, one graph on the cluster, a ranked table back.

Algorithm
---------
1. Expand the grid (:func:`~candleflow.sweep.grid.combinations`) and plan every
   combination (:func:`~candleflow.sweep.plan.plan_sweep`).  Combinations that
   fail to compile become error rows here; with ``fail_fast`` the first one
   stops the sweep before any cluster starts.
2. Submit the one graph for its distinct metrics keys (``Client.get(...,
   sync=False)``) and walk ``distributed.as_completed``: each finished key
   advances the progress by the combinations it serves, the first one's metrics
   are checked for the rank metric, and the results are gathered in one batch
   at the end.  A failed task fails only the combinations above it (its message
   goes in their rows); with ``fail_fast`` the first failure cancels the rest
   and raises.
3. One row per combination (symbol, every parameter, every metric, error),
   stably sorted best-first by the rank metric, NaN and errors last.

Fault tolerance is Dask's: every task, the candles included, lives in the graph
(nothing is scattered), so whatever a dead worker held is recomputed from its
lineage on the others, and each combination still appears exactly once.
"""

from __future__ import annotations

import time
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from candleflow.errors import CandleflowError, ConfigError
from candleflow.sweep.grid import MAX_COMBINATIONS, Rank, SweepSpec, combinations, load_grid
from candleflow.sweep.plan import PlannedCombination, SweepPlan, plan_sweep

if TYPE_CHECKING:
    from distributed import Client

Progress = Callable[[int, int], None]


@dataclass
class SweepResult:
    """The ranked table (one row per combination) and what the sweep shared."""

    frame: pd.DataFrame
    rank: Rank
    parameters: list[str]
    metrics: list[str]
    shared: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (uses, tasks)
    seconds: float = 0.0

    def deduplicated(self, kind: str) -> int:
        """Uses of ``kind`` nodes (indicator, signal, ...) served by a task another combination added."""
        uses, tasks = self.shared.get(kind, (0, 0))
        return uses - tasks

    @property
    def failed(self) -> int:
        return int(self.frame["error"].notna().sum())

    def first_failure(self) -> str | None:
        """``combination fast=0, slow=50: <error>`` for the first failed row, None if none failed."""
        failed = self.frame[self.frame["error"].notna()]
        if failed.empty:
            return None
        row = failed.iloc[0]
        names = ["symbol", *self.parameters] if pd.notna(row["symbol"]) else self.parameters
        return f"combination {', '.join(f'{n}={row[n]}' for n in names)}: {row['error']}"

    def write(self, path: str | Path) -> Path:
        """Write the table atomically as CSV or Parquet (by the file's suffix)."""
        from candleflow.sweep.output import write_table

        return write_table(self.frame, path)


def run_sweep(strategy_file: str | Path, grid: SweepSpec | str | Path, *, client: Client | None = None,
              scheduler: str | None = None, workers: int | None = None, workspace: str | Path | None = None,
              rank_by: str | None = None, fail_fast: bool = False, on_progress: Progress | None = None,
              max_combinations: int = MAX_COMBINATIONS, max_data_bytes: int | None = None) -> SweepResult:
    """Backtest every combination of ``grid`` on Dask and rank the results.

    Runs on ``client`` if given, else on the scheduler at ``scheduler``, else on an
    embedded local cluster of ``workers`` processes.  ``rank_by`` overrides the
    grid's ``rank.by``; ``on_progress(done, total)`` is called as combinations finish.
    A grid of more than ``max_combinations`` is refused before it is expanded;
    ``max_data_bytes`` bounds each data file (see :func:`~candleflow.data.loader.load_candles`).
    """
    from candleflow.dag.cluster import connect

    if client is not None and (scheduler is not None or workers is not None):
        raise ValueError("give either client or scheduler/workers, not both")
    started = time.perf_counter()
    spec = grid if isinstance(grid, SweepSpec) else load_grid(grid)
    rank = spec.rank if rank_by is None else spec.rank.model_copy(update={"by": rank_by})
    listed = combinations(spec, limit=max_combinations, file=None if isinstance(grid, SweepSpec) else str(grid))
    plan = plan_sweep(strategy_file, listed, workspace=workspace, max_data_bytes=max_data_bytes)
    failed = [c for c in plan.combinations if c.error is not None]
    if fail_fast and failed:
        raise _stopped(failed[0], failed[0].error)
    outcomes: dict[str, dict[str, Any] | str] = {}
    if plan.metric_keys and client is not None:
        outcomes = collect(plan, client, rank=rank, fail_fast=fail_fast, on_progress=on_progress)
    elif plan.metric_keys:  # no cluster is started when every combination failed to compile
        with connect(scheduler=scheduler, workers=workers) as own_client:
            outcomes = collect(plan, own_client, rank=rank, fail_fast=fail_fast, on_progress=on_progress)
    parameters = list(spec.parameters)
    frame = ranked(table(plan, outcomes, parameters=parameters), rank)
    metrics = [c for c in frame.columns if c not in ("symbol", "error", *parameters)]
    shared = {kind: (plan.references[kind], plan.tasks[kind]) for kind in plan.references}
    return SweepResult(frame, rank, parameters, metrics, shared, time.perf_counter() - started)


def collect(plan: SweepPlan, client: Client, *, rank: Rank, fail_fast: bool = False,
            on_progress: Progress | None = None) -> dict[str, dict[str, Any] | str]:
    """Compute the plan's metrics keys on ``client``: metrics dict or error message per key."""
    from distributed import as_completed

    users: dict[str, list[PlannedCombination]] = {}
    for entry in plan.combinations:
        if entry.key is not None:
            users.setdefault(entry.key, []).append(entry)
    total = len(plan.combinations)
    done = total - sum(len(v) for v in users.values())
    if on_progress:
        on_progress(done, total)
    futures = client.get(plan.graph, plan.metric_keys, sync=False)
    outcomes: dict[str, dict[str, Any] | str] = {}
    rank_checked = False
    try:
        for future in as_completed(futures, loop=client.loop):
            if future.status != "finished":  # a component's error, a dead worker, ...: this key's rows only
                outcomes[future.key] = error_text(future.exception() if future.status == "error"
                                                  else CancelledError(future.status))
                if fail_fast:
                    raise _stopped(users[future.key][0], outcomes[future.key])
            elif not rank_checked:  # the first result says which metrics exist
                metrics = future.result().value  # an Output(metrics, seconds), see dag.tasks
                if rank.by not in metrics:
                    raise ConfigError(f"cannot rank by '{rank.by}': not a metric (metrics: {', '.join(metrics)})")
                rank_checked = True
            done += len(users[future.key])
            if on_progress:
                on_progress(done, total)
        finished = [f for f in futures if f.status == "finished"]
        outcomes.update((f.key, output.value) for f, output in zip(finished, client.gather(finished)))  # one transfer
    finally:
        client.cancel([f for f in futures if not f.done()])
    return outcomes


def table(plan: SweepPlan, outcomes: dict[str, dict[str, Any] | str], *, parameters: list[str]) -> pd.DataFrame:
    """One row per combination, in plan order: symbol, parameters, metrics, error."""
    metric_names = next((list(o) for o in outcomes.values() if isinstance(o, dict)), [])
    rows = []
    for entry in plan.combinations:
        outcome = outcomes[entry.key] if entry.key is not None else entry.error
        row: dict[str, Any] = {"symbol": entry.symbol, **entry.combination.params}
        if isinstance(outcome, dict):
            row.update(outcome)
            row["error"] = None
        else:
            row["error"] = outcome
        rows.append(row)
    return pd.DataFrame(rows, columns=["symbol", *parameters, *metric_names, "error"])


def ranked(frame: pd.DataFrame, rank: Rank) -> pd.DataFrame:
    """Stable sort best-first by ``rank.by``; NaN (and failed rows) last."""
    if rank.by not in frame.columns:  # no combination produced metrics
        return frame
    return frame.sort_values(rank.by, ascending=rank.order == "min", na_position="last",
                             kind="stable").reset_index(drop=True)


def error_text(exc: BaseException) -> str:
    """The one-line message an error row shows."""
    text = str(exc) if isinstance(exc, CandleflowError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _stopped(entry: PlannedCombination, error: str) -> CandleflowError:
    return CandleflowError(f"combination {entry.combination.label} failed (--fail-fast): {error}")
