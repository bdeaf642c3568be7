"""Run a sweep: plan on the client, one graph on the cluster, a ranked table back.

Algorithm
---------
1. Expand the grid (:func:`~candleflow.sweep.grid.combinations`) and plan every
   combination (:func:`~candleflow.sweep.plan.plan_sweep`).  Combinations that
   fail to compile become error rows here; with ``fail_fast`` the first one
   stops the sweep before any cluster starts.
2. Submit the one graph for its distinct metrics keys (``Client.get(...,
   sync=False)``) and walk ``distributed.as_completed``: what finished is
   gathered in one transfer every :data:`GATHER_EVERY` seconds and its futures
   dropped, so a result lives on a worker only until the client has it (a
   worker lost later costs no finished row, and a scheduler lost later keeps
   it).  Each gathered key advances the progress by the combinations it
   serves; the first metrics are checked for the rank metric.  A failed task
   fails only the combinations above it (its message goes in their rows); with
   ``fail_fast`` the first failure cancels the rest and raises.
3. One row per combination (symbol, every parameter, every metric, error),
   stably sorted best-first by the rank metric, NaN and errors last.

Faults
------
Every task, the candles included, lives in the graph (nothing is scattered), so
whatever a dead worker held is recomputed from its lineage on the others.  A
future that finished and was then lost with its worker has status ``lost``
until the scheduler recomputes it; the gather waits for that, so each
combination still appears exactly once with the metrics of a run without the
fault.  (The status of a future is a moment's view: nothing is decided from
``finished`` alone.)

The scheduler is the one thing a sweep cannot lose: the client's futures are
cancelled with the reason ``scheduler-connection-lost``, and :class:`SchedulerLost`
carries the result so far: the rows gathered, the rest marked ``not computed:
scheduler lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Union

import pandas as pd

from candleflow.dag.cluster import connect
from candleflow.dag.get import LOCAL, get
from candleflow.dag.tasks import Failed, Output, error_text
from candleflow.errors import CandleflowError, ConfigError
from candleflow.sweep.grid import (
    MAX_COMBINATIONS, Combination, Rank, SweepSpec, combinations, load_grid, sample_combinations,
)
from candleflow.sweep.output import write_table
from candleflow.sweep.plan import PlannedCombination, SweepPlan, plan_sweep

if TYPE_CHECKING:
    from distributed import Client, Future, as_completed

Progress = Callable[[int, int], None]
Outcome = Union[dict[str, Any], str]  # a combination's metrics, or its error message
NOT_COMPUTED = "not computed: scheduler lost"
GATHER_EVERY = 0.5  # seconds between gathers of finished metrics


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
        return write_table(self.frame, path)


class SchedulerLost(CandleflowError):
    """The connection to the Dask scheduler broke mid-sweep; nothing more can be computed.

    ``outcomes`` holds what :func:`collect` had gathered; :func:`run_sweep` adds
    ``result``: every row, those it could not compute with ``error`` = :data:`NOT_COMPUTED`.
    """

    def __init__(self, address: str, reason: str, outcomes: dict[str, Outcome] | None = None) -> None:
        super().__init__(f"lost the Dask scheduler at {address} mid-sweep ({reason})")
        self.outcomes: dict[str, Outcome] = outcomes or {}
        self.result: SweepResult | None = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.result is not None:
            missing = int((self.result.frame["error"] == NOT_COMPUTED).sum())
            text += f": {missing} of {len(self.result.frame)} combinations not computed"
        return text


def run_sweep(strategy_file: str | Path, grid: SweepSpec | str | Path, *, client: Client | None = None,
              scheduler: str | None = None, workers: int | None = None, workspace: str | Path | None = None,
              rank_by: str | None = None, fail_fast: bool = False, on_progress: Progress | None = None,
              max_combinations: int = MAX_COMBINATIONS, max_data_bytes: int | None = None,
              only: list[Combination] | None = None) -> SweepResult:
    """Backtest every combination of ``grid`` on Dask and rank the results.

    Runs on ``client`` if given, else on ``scheduler``: ``threads``, ``sync`` or
    ``processes`` in this process's own pools (``workers`` of them), or a running
    scheduler's ``tcp://HOST:PORT``; without either, on an embedded local cluster of
    ``workers`` processes.  ``rank_by`` overrides the
    grid's ``rank.by``; ``on_progress(done, total)`` is called as combinations finish.
    A grid of more than ``max_combinations`` is refused before it is expanded;
    ``max_data_bytes`` bounds each data file (see :func:`~candleflow.data.loader.load_candles`).
    A scheduler lost mid-sweep raises :class:`SchedulerLost`, whose ``result`` has every row.
    ``only``: these combinations instead of the grid's (a search's batch, :mod:`candleflow.sweep.search`).
    """
    if client is not None and (scheduler is not None or workers is not None):
        raise ValueError("give either client or scheduler/workers, not both")
    started = time.perf_counter()
    spec = grid if isinstance(grid, SweepSpec) else load_grid(grid)
    rank = spec.rank if rank_by is None else spec.rank.model_copy(update={"by": rank_by})
    grid_file = None if isinstance(grid, SweepSpec) else str(grid)
    if spec.walk_forward is not None:  # one sweep would ignore it
        raise ConfigError("the grid has a walk_forward section: run it with run_walk_forward (the sweep command "
                          "does)", file=grid_file)
    listed = only if only is not None else _listed(spec, limit=max_combinations, file=grid_file)
    local = scheduler in LOCAL and client is None
    plan = plan_sweep(strategy_file, listed, workspace=workspace, max_data_bytes=max_data_bytes, tolerant=local,
                      grid_file=grid_file or "<grid>")
    failed = [c for c in plan.combinations if c.error is not None]
    if fail_fast and failed:
        raise _stopped(failed[0], failed[0].error)
    outcomes: dict[str, Outcome] = {}
    try:
        if plan.metric_keys and local:
            outcomes = collect_local(plan, scheduler=scheduler, workers=workers, rank=rank, fail_fast=fail_fast,
                                     on_progress=on_progress)
        elif plan.metric_keys and client is not None:
            outcomes = collect(plan, client, rank=rank, fail_fast=fail_fast, on_progress=on_progress)
        elif plan.metric_keys:  # no cluster is started when every combination failed to compile
            with connect(scheduler=scheduler, workers=workers) as own_client:
                outcomes = collect(plan, own_client, rank=rank, fail_fast=fail_fast, on_progress=on_progress)
    except SchedulerLost as exc:
        exc.result = _result(plan, {k: exc.outcomes.get(k, NOT_COMPUTED) for k in plan.metric_keys},
                             spec.parameters, rank, started)
        raise
    return _result(plan, outcomes, spec.parameters, rank, started)


def _listed(spec: SweepSpec, *, limit: int, file: str | None) -> list[Combination]:
    """The combinations to run: the whole grid, or a random search's draw (its ``trials`` bounded by ``limit``)."""
    if spec.search.method == "tpe":  # it chooses as it goes: candleflow.sweep.search
        raise ConfigError("the grid asks for a tpe search: run it with run_search (the sweep command does)", file=file)
    if spec.search.method == "random":
        if spec.search.trials > limit:
            raise ConfigError(f"search.trials is {spec.search.trials:,}, more than the {limit:,} combinations "
                              f"allowed; raise the limit with --max-combinations", file=file)
        return sample_combinations(spec, spec.search.trials, seed=spec.search.seed)
    return combinations(spec, limit=limit, file=file)


def _result(plan: SweepPlan, outcomes: dict[str, Outcome], parameters: dict[str, Any], rank: Rank,
            started: float) -> SweepResult:
    frame = ranked(table(plan, outcomes, parameters=list(parameters)), rank)
    metrics = [c for c in frame.columns if c not in ("symbol", "error", *parameters)]
    shared = {kind: (plan.references[kind], plan.tasks[kind]) for kind in plan.references}
    return SweepResult(frame, rank, list(parameters), metrics, shared, time.perf_counter() - started)


def collect_local(plan: SweepPlan, *, scheduler: str, workers: int | None, rank: Rank, fail_fast: bool = False,
                  on_progress: Progress | None = None) -> dict[str, Outcome]:
    """Compute the plan's metrics keys on a local scheduler (threads, sync, processes) of this process.

    The plan is tolerant: a failing task returns :class:`~candleflow.dag.tasks.Failed`, which
    becomes its combinations' error text; with ``fail_fast`` the first one stops the sweep.
    """
    users = _users(plan)
    total = len(plan.combinations)
    done = total - sum(len(v) for v in users.values())
    outcomes: dict[str, Outcome] = {}
    rank_checked = False

    def on_result(key: str, output: Output) -> None:
        nonlocal done, rank_checked
        if key not in users:  # an indicator or signal task
            return
        outcome = output.value.message if isinstance(output.value, Failed) else output.value
        if isinstance(outcome, str) and fail_fast:
            raise _stopped(users[key][0], outcome)
        rank_checked = rank_checked or _check_rank(rank, outcome)
        outcomes[key] = outcome
        done += len(users[key])
        if on_progress:
            on_progress(done, total)

    if on_progress:
        on_progress(done, total)
    get(plan.graph, plan.metric_keys, scheduler=scheduler, num_workers=workers, on_result=on_result)
    return outcomes


def _users(plan: SweepPlan) -> dict[str, list[PlannedCombination]]:
    """The combinations each metrics key serves."""
    users: dict[str, list[PlannedCombination]] = {}
    for entry in plan.combinations:
        if entry.key is not None:
            users.setdefault(entry.key, []).append(entry)
    return users


def _check_rank(rank: Rank, outcome: Outcome) -> bool:
    """True once checked: a metrics dict says which metrics exist, and the rank metric must be one of them."""
    if not isinstance(outcome, dict):
        return False
    if rank.by not in outcome:
        raise ConfigError(f"cannot rank by '{rank.by}': not a metric (metrics: {', '.join(outcome)})")
    return True


def collect(plan: SweepPlan, client: Client, *, rank: Rank, fail_fast: bool = False,
            on_progress: Progress | None = None) -> dict[str, Outcome]:
    """Compute the plan's metrics keys on ``client``: metrics dict or error message per key.

    Raises :class:`SchedulerLost` (``outcomes``: what was gathered) if the scheduler goes away.
    """
    from distributed import as_completed  # distributed takes ~0.5 s to import: only once a sweep runs
    from distributed.client import ClosedClientError  # see above
    from distributed.comm.core import CommClosedError  # see above

    users = _users(plan)
    total = len(plan.combinations)
    done = total - sum(len(v) for v in users.values())
    if on_progress:
        on_progress(done, total)
    outcomes: dict[str, Outcome] = {}
    pending: dict[str, Future] = {}
    rank_checked = False
    address = str(getattr(client.scheduler, "address", None) or "(unknown address)")
    try:
        if client.status != "running":  # lost before the graph is sent: its futures would wait forever
            raise SchedulerLost(address, "connection closed")
        pending.update(zip(plan.metric_keys, client.get(plan.graph, plan.metric_keys, sync=False)))
        for batch in _completed(as_completed(list(pending.values()), loop=client.loop)):
            for key, outcome in _outcomes(client, batch).items():
                del pending[key]  # the client holds the result now: the worker may drop it
                outcomes[key] = outcome
                if isinstance(outcome, str) and fail_fast:
                    raise _stopped(users[key][0], outcome)
                rank_checked = rank_checked or _check_rank(rank, outcome)
                done += len(users[key])
            if on_progress:
                on_progress(done, total)
            if any(f.key in pending for f in batch):  # cancelled with the connection: nothing more will come
                raise SchedulerLost(address, "connection closed")
    except SchedulerLost as exc:
        exc.outcomes = outcomes
        raise
    except (OSError, TimeoutError, asyncio.TimeoutError, ClosedClientError) as exc:  # a comm to the scheduler
        closed = isinstance(exc, (CommClosedError, ClosedClientError)) or client.status != "running"
        raise SchedulerLost(address, "connection closed" if closed else error_text(exc), outcomes) from None
    finally:
        if pending and client.status == "running":
            with contextlib.suppress(OSError, TimeoutError, asyncio.TimeoutError):
                client.cancel(list(pending.values()))
    return outcomes


def _completed(done: as_completed, every: float = GATHER_EVERY) -> Iterator[list[Future]]:
    """The futures as they complete, in lists of whatever completed meanwhile, one list per ``every`` seconds.

    The pause spares a gather per finished task (each is a round trip through the scheduler).
    """
    ready: list[Future] = []
    due = time.monotonic() + every
    while True:
        try:
            ready += done.next_batch(block=not ready)  # wait for a future only when none is ready
        except StopIteration:  # all returned
            break
        if ready and (done.is_empty() or time.monotonic() >= due):
            yield ready
            ready, due = [], time.monotonic() + every
        elif ready:
            time.sleep(min(0.05, every))
    if ready:
        yield ready


def _outcomes(client: Client, batch: list[Future]) -> dict[str, Outcome]:
    """The metrics (one gather) or error text of each future of a batch that ``as_completed`` yielded.

    A future may be ``lost`` (its worker died after it finished) or ``pending``
    again by now: the gather waits until the scheduler has recomputed it.  A
    future cancelled because the connection to the scheduler broke gets no outcome.
    """
    wanted = {f.key: f for f in batch if f.status not in ("error", "cancelled")}
    if wanted and client.status == "running":
        values = client.gather(wanted, errors="skip")
    else:
        values = {}
    outcomes: dict[str, Outcome] = {}
    for future in batch:
        value = values.get(future.key)
        if value is not None:
            outcomes[future.key] = value.value  # an Output(metrics, seconds) of dag.tasks.evaluator_task
        elif future.status == "error":
            outcomes[future.key] = error_text(future.exception())
        elif future.status == "cancelled" and client.status == "running":
            reason = _cancel_reason(future)
            if reason != "scheduler-connection-lost":
                outcomes[future.key] = f"cancelled on the cluster ({reason})"
    return outcomes


def _cancel_reason(future: Future) -> str:
    """Why the scheduler or the client cancelled ``future`` (distributed's reason code)."""
    try:
        future.result()
    except CancelledError as exc:
        return str(getattr(exc, "reason", None) or exc)
    return "not cancelled"


def table(plan: SweepPlan, outcomes: dict[str, Outcome], *, parameters: list[str]) -> pd.DataFrame:
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



def _stopped(entry: PlannedCombination, error: str) -> CandleflowError:
    return CandleflowError(f"combination {entry.combination.label} failed (--fail-fast): {error}")
