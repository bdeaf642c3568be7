"""Bayesian search with Optuna's TPE sampler, its trials evaluated in parallel batches by the sweep.

A grid with ``search: {method: tpe, trials: 200, seed: 1, storage: study.db}`` runs this instead of
the whole grid (``random`` draws its trials up front and runs as one sweep, see
:func:`~candleflow.sweep.grid.sample_combinations`).

Algorithm
---------
The search space is the grid: a list is a categorical choice, a range an int or float range with
its step (so every trial is a grid point), several symbols a categorical ``symbol``.  One study
(direction from the rank; ``TPESampler(seed, constant_liar=True)`` so a batch asked together spreads
out) lives in the SQLite file ``storage`` (Optuna's RDB storage; without it, in memory) under a name
made of the strategy's and the grid's hash, so running the same search again resumes it: its
completed trials count against the budget and their rows (kept as trial attributes) are in the
result; trials left running by an interrupted run are marked failed.  Then, while the budget lasts
(``trials`` in the study, ``timeout`` seconds of this run):

1. ask ``batch`` trials (default :data:`BATCH`);
2. a trial whose combination the study already evaluated (TPE repeats points of a discrete space)
   gets the recorded value without running;
3. the others run as one sweep (:func:`~candleflow.sweep.run.run_sweep` with ``only=``), all batches
   on one cluster;
4. each trial is told its rank metric and keeps every metric as attributes; a failed or NaN
   combination is told ``FAIL``, which the sampler ignores.

The result is a :class:`~candleflow.sweep.run.SweepResult` with one row per evaluated combination,
ranked like a sweep's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from candleflow.dag.cluster import connect
from candleflow.dag.get import LOCAL
from candleflow.errors import ConfigError
from candleflow.sweep.grid import MAX_COMBINATIONS, Combination, Range, SweepSpec, load_grid
from candleflow.sweep.run import SweepResult, ranked, run_sweep

if TYPE_CHECKING:
    import optuna
    from distributed import Client

BATCH = 16
ROW = "candleflow_row"  # the trial attribute holding the combination's row


def run_search(strategy_file: str | Path, grid: SweepSpec | str | Path, *, client: "Client | None" = None,
               scheduler: str | None = None, workers: int | None = None, workspace: str | Path | None = None,
               rank_by: str | None = None, fail_fast: bool = False, on_progress=None,
               max_combinations: int = MAX_COMBINATIONS, max_data_bytes: int | None = None) -> SweepResult:
    """Run the grid's ``tpe`` search (see the module docstring); the embedded cluster is started once.

    Options as :func:`~candleflow.sweep.run.run_sweep`'s; ``max_combinations`` bounds ``search.trials``.
    """
    if client is None and scheduler not in LOCAL:
        with connect(scheduler=scheduler, workers=workers) as own:
            return run_search(strategy_file, grid, client=own, workspace=workspace, rank_by=rank_by,
                              fail_fast=fail_fast, on_progress=on_progress, max_combinations=max_combinations,
                              max_data_bytes=max_data_bytes)
    spec = grid if isinstance(grid, SweepSpec) else load_grid(grid)
    file = None if isinstance(grid, SweepSpec) else str(grid)
    if spec.search.method != "tpe":
        raise ConfigError(f"run_search runs a tpe search; this grid's search is '{spec.search.method}' (run_sweep)",
                          file=file)
    if (spec.search.trials or 0) > max_combinations:
        raise ConfigError(f"search.trials is {spec.search.trials:,}, more than the {max_combinations:,} combinations "
                          f"allowed; raise the limit with --max-combinations", file=file)
    rank = spec.rank if rank_by is None else spec.rank.model_copy(update={"by": rank_by})
    started = time.perf_counter()
    study = _study(strategy_file, spec, rank)
    where = {"client": client} if client is not None else {"scheduler": scheduler, "workers": workers}
    known = _rows(study)
    while not _spent(spec, known, started):
        batch = _ask(study, spec, len(known))
        fresh = {key: combination for _, combination, key in batch if key not in known}
        if fresh:
            result = run_sweep(strategy_file, spec, only=list(fresh.values()), workspace=workspace,
                               rank_by=rank.by, fail_fast=fail_fast, max_data_bytes=max_data_bytes, **where)
            known.update({_key(_combination_of(row, spec)): _clean(row) for row in result.frame.to_dict("records")})
        for trial, _, key in batch:
            _tell(study, trial, known[key], rank.by)
        if on_progress:
            on_progress(len(known), spec.search.trials or len(known))
    frame = pd.DataFrame(list(known.values()))
    metrics = [c for c in frame.columns if c not in ("symbol", "error", *spec.parameters)]
    return SweepResult(ranked(frame, rank), rank, list(spec.parameters), metrics, {}, time.perf_counter() - started)


def _study(strategy_file: str | Path, spec: SweepSpec, rank) -> "optuna.study.Study":
    """The search's study, created or loaded from ``storage``; trials an interrupted run left running fail."""
    import optuna  # optuna: only for a tpe search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _fast_sqlite()
    text = Path(strategy_file).read_bytes() + spec.model_dump_json(exclude={"search": {"timeout", "trials"}}).encode()
    name = f"candleflow-{hashlib.sha256(text).hexdigest()[:16]}"
    storage = f"sqlite:///{Path(spec.search.storage).resolve()}" if spec.search.storage else None
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                direction="maximize" if rank.order == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=spec.search.seed, constant_liar=True))
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
    return study


@functools.lru_cache(maxsize=None)
def _fast_sqlite() -> None:
    """Open every SQLite database in WAL mode with ``synchronous=NORMAL``: a commit (Optuna makes several per
    trial) then writes the log without waiting for the disk, ~15 ms -> ~0.1 ms; a killed process loses
    nothing it committed (the OS has it), a power cut at worst the last commits, never the database."""
    from sqlalchemy import event  # sqlalchemy: Optuna's RDB storage runs on it
    from sqlalchemy.engine import Engine  # sqlalchemy: see above

    def pragmas(connection, _record) -> None:
        if isinstance(connection, sqlite3.Connection):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    event.listen(Engine, "connect", pragmas)


def _rows(study) -> dict[str, dict[str, Any]]:
    """The rows the study already holds, by combination key (a resumed search's)."""
    return {t.user_attrs["key"]: t.user_attrs[ROW] for t in study.get_trials(deepcopy=False) if ROW in t.user_attrs}


def _spent(spec: SweepSpec, known: dict, started: float) -> bool:
    """Out of trials, out of time, or every grid point evaluated."""
    search = spec.search
    return ((search.trials is not None and len(known) >= search.trials)
            or (search.timeout is not None and time.perf_counter() - started >= search.timeout)
            or len(known) >= math.prod(spec.counts()))


def _ask(study, spec: SweepSpec, done: int) -> list[tuple[Any, Combination, str]]:
    """A batch of new trials (not beyond the trial budget): each with its combination and its key."""
    left = spec.search.trials - done if spec.search.trials else math.inf
    batch = []
    for _ in range(int(min(spec.search.batch or BATCH, left))):
        trial = study.ask()
        combination = _suggest(trial, spec)
        trial.set_user_attr("key", _key(combination))
        batch.append((trial, combination, _key(combination)))
    return batch


def _suggest(trial, spec: SweepSpec) -> Combination:
    """The trial's grid point: an ordered index into a range's values (TPE models it as a number), a
    categorical index into a list's, a categorical symbol among several."""
    params = {}
    for name, values in spec.parameters.items():
        if isinstance(values, Range):
            listed = values.values()
            params[name] = listed[trial.suggest_int(name, 0, len(listed) - 1)]
        else:
            params[name] = values[trial.suggest_categorical(name, list(range(len(values))))]
    symbols = spec.symbols or [None]
    symbol = symbols[trial.suggest_categorical("symbol", list(range(len(symbols))))] if len(symbols) > 1 else symbols[0]
    return Combination(symbol, params)


def _key(combination: Combination) -> str:
    return json.dumps(combination.variables, sort_keys=True, default=str)


def _combination_of(row: dict[str, Any], spec: SweepSpec) -> Combination:
    symbol = next((s for s in spec.symbols or [] if s.symbol == row["symbol"]), None)
    return Combination(symbol, {name: _plain(row[name]) for name in spec.parameters})


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """The row as plain JSON values (stored on the trial): NaN as None, numpy scalars as Python's."""
    return {k: None if isinstance(v, float) and math.isnan(v) else _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _tell(study, trial, row: dict[str, Any], by: str) -> None:
    """Tell the rank metric (FAIL for an error or NaN) and keep the whole row on the trial."""
    import optuna  # optuna: only for a tpe search

    trial.set_user_attr(ROW, row)
    value = row.get(by)
    if row.get("error") or value is None or not math.isfinite(value):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, value)


__all__ = ["run_search"]
