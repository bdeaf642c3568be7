"""Walk-forward analysis: optimise on each in-sample window, then trade the choice on the window after it.

A grid with a ``walk_forward`` section (one symbol) runs this instead of one sweep:

.. code-block:: yaml

    walk_forward: {train: 6M, test: 1M}       # anchored: true keeps every train window's start at the data's

Algorithm
---------
1. **Windows** (:func:`windows`): the test windows are consecutive, ``test`` long, the first starting
   ``train`` after the first candle; each one's train window is the ``train`` before it (``anchored``:
   from the first candle on).  The last test window ends at the last candle, so it may be shorter.
   Bounds are times (``6M`` is six calendar months); a window's candles are those with
   ``start <= time < end`` (the last window ends one usual candle step after the last candle).
2. **In-sample**: the grid's sweep (:func:`~candleflow.sweep.run.run_sweep`, every combination, on the
   train window's candles only); its best row by the rank metric gives the window's parameters (a
   window whose every combination failed or ranks NaN has none, and is reported so).
3. **Out-of-sample**: the strategy with those parameters runs on the train and test candles with
   ``execution.trade_from`` at the test window's start: indicators warm up on the train candles,
   orders are decided only in the test window, and its metrics are the test window's.
4. **Stitched**: each window's out-of-sample equity starts at the initial cash; the stitched curve
   chains them (window *w* scaled by the stitched value at the end of window *w-1* over the initial
   cash), as one account trading each window's choice in turn.  Its metrics are computed on that curve
   and every out-of-sample trade.  *Walk-forward efficiency*: the stitched annualised return over the
   mean in-sample annualised return (near 1: the in-sample results carried over; near 0 or below:
   overfitting), NaN when the mean in-sample return is not positive (there was nothing to carry over).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from candleflow.backtest import prepare, run_compiled
from candleflow.dag.cluster import connect
from candleflow.dag.get import LOCAL
from candleflow.data import load_source
from candleflow.errors import ConfigError
from candleflow.portfolio.metrics import compute_metrics
from candleflow.sweep.grid import SweepSpec, SymbolSpec, WalkForward, combinations, load_grid
from candleflow.sweep.run import SweepResult, run_sweep

if TYPE_CHECKING:
    from distributed import Client

SUMMARY = ("total_return", "cagr", "sharpe", "max_drawdown", "n_trades", "win_rate", "return_ann")


@dataclass(frozen=True)
class Window:
    """One step: train on ``[train_start, test_start)``, trade on ``[test_start, test_end)``."""

    train_start: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


@dataclass
class WalkForwardResult:
    """Per window the chosen parameters and both samples' metrics; the stitched out-of-sample run."""

    frame: pd.DataFrame  # one row per window: bounds, parameters, is_<metric>, oos_<metric>, error
    parameters: list[str]
    rank_by: str
    equity: pd.Series  # stitched out-of-sample equity
    trades: pd.DataFrame  # every out-of-sample trade, with its window
    metrics: dict[str, float]  # of the stitched run
    efficiency: float  # stitched return_ann / mean in-sample return_ann
    sweeps: list[SweepResult] = field(default_factory=list, repr=False)

    def write(self, path: str | Path) -> Path:
        """Write the per-window table atomically as CSV or Parquet (by the file's suffix)."""
        from candleflow.sweep.output import write_table  # the sweep table's writer: same formats and checks

        return write_table(self.frame, path)


def windows(index: pd.DatetimeIndex, spec: WalkForward) -> list[Window]:
    """The walk-forward windows over candles at ``index`` (see the module docstring); a ConfigError if none fit."""
    first, last = index[0], index[-1]
    after_last = last + (pd.Series(index).diff().median() if len(index) > 1 else pd.Timedelta(1, "s"))
    train, test = spec.offsets()
    found, start = [], first + train
    while start <= last:
        end = min(start + test, after_last)
        train_start = first if spec.anchored else start - train
        if index.searchsorted(start) < index.searchsorted(end):  # the test window has a candle
            found.append(Window(train_start, start, end))
        start = start + test
    if not found:
        raise ConfigError(f"walk_forward: train {spec.train} leaves no candle to test on (the data runs "
                          f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M})")
    return found


def run_walk_forward(strategy_file: str | Path, grid: SweepSpec | str | Path, *, client: "Client | None" = None,
                     scheduler: str | None = None, workers: int | None = None, workspace: str | Path | None = None,
                     rank_by: str | None = None, fail_fast: bool = False) -> WalkForwardResult:
    """Walk-forward analysis of ``strategy_file`` over ``grid`` (which has a ``walk_forward`` section).

    The in-sample sweeps run as :func:`run_sweep` runs one (``client``, ``scheduler``, ``workers``); the
    embedded cluster, when used, is started once for all of them.
    """
    if client is None and scheduler not in LOCAL:
        with connect(scheduler=scheduler, workers=workers) as own:
            return run_walk_forward(strategy_file, grid, client=own, workspace=workspace, rank_by=rank_by,
                                    fail_fast=fail_fast)
    spec = grid if isinstance(grid, SweepSpec) else load_grid(grid)
    if spec.walk_forward is None:
        raise ConfigError("the grid has no walk_forward section", file=None if isinstance(grid, SweepSpec) else str(grid))
    rank = spec.rank.by if rank_by is None else rank_by
    first = combinations(spec, limit=math.inf)[0]
    compiled, _ = prepare(strategy_file, variables=first.variables, workspace=workspace)
    symbol = spec.symbols[0] if spec.symbols else SymbolSpec(symbol=compiled.strategy.symbol,
                                                             **compiled.strategy.data.model_dump())
    candles = load_source(symbol.source(), workspace=compiled.workspace, file=compiled.file)
    where = {"client": client} if client is not None else {"scheduler": scheduler, "workers": workers}
    rows, sweeps, pieces = [], [], []
    for number, window in enumerate(windows(candles.index, spec.walk_forward), start=1):
        sweep = run_sweep(strategy_file, _in_sample(spec, symbol, window), workspace=workspace, rank_by=rank,
                          fail_fast=fail_fast, **where)
        sweeps.append(sweep)
        row, piece = _window_row(number, window, sweep, strategy_file, candles, workspace=workspace, rank=rank,
                                 symbol=symbol if spec.symbols else None)
        rows.append(row)
        if piece is not None:
            pieces.append(piece)
    return _stitch(pd.DataFrame(rows), list(spec.parameters), rank, pieces, sweeps,
                   initial_cash=float(compiled.strategy.initial_cash))


def _in_sample(spec: SweepSpec, symbol: SymbolSpec, window: Window) -> SweepSpec:
    """The grid on the window's train candles only (no walk_forward: one sweep)."""
    bounded = symbol.model_copy(update={"start": window.train_start.isoformat(), "end": window.test_start.isoformat()})
    return spec.model_copy(update={"symbols": [bounded], "walk_forward": None})


def _window_row(number: int, window: Window, sweep: SweepResult, strategy_file, candles: pd.DataFrame, *,
                workspace, rank: str, symbol: SymbolSpec | None):
    """The window's row (bounds, best parameters, in- and out-of-sample metrics) and its out-of-sample run."""
    row: dict[str, Any] = {"window": number, "train_start": window.train_start, "test_start": window.test_start,
                           "test_end": window.test_end}
    ok = sweep.frame[sweep.frame["error"].isna() & sweep.frame[rank].notna()]
    if ok.empty:
        return {**row, "error": f"no combination ranked by {rank} in-sample"}, None
    best = ok.iloc[0]
    params = {name: _plain(best[name]) for name in sweep.parameters}
    row.update(params)
    row.update({f"is_{key}": best[key] for key in SUMMARY if key in best.index})
    variables = {"symbol": symbol.symbol, **params} if symbol is not None else params
    compiled, _ = prepare(strategy_file, variables=variables, workspace=workspace)
    execution = compiled.strategy.execution.model_copy(update={"trade_from": window.test_start.isoformat()})
    compiled = dataclasses.replace(compiled, strategy=compiled.strategy.model_copy(update={"execution": execution}))
    span = candles[(candles.index >= window.train_start) & (candles.index < window.test_end)]
    result = run_compiled(compiled, span, cache=None, scheduler="sync")
    row.update({f"oos_{key}": result.metrics[key] for key in SUMMARY})
    k = int(span.index.searchsorted(window.test_start))
    trades = result.trades.assign(window=number)
    return {**row, "error": None}, (result.equity.iloc[k:], trades, result.simulation.position[k:], span["close"].iloc[k:])


def _stitch(frame: pd.DataFrame, parameters: list[str], rank: str, pieces: list, sweeps: list[SweepResult], *,
            initial_cash: float) -> WalkForwardResult:
    """Chain the windows' out-of-sample equity into one account; its metrics and the walk-forward efficiency."""
    if not pieces:
        raise ConfigError(f"walk-forward: no window had a combination ranked by {rank} in-sample")
    curves, level = [], initial_cash
    for equity, *_ in pieces:
        curves.append(equity * (level / initial_cash))
        level = float(curves[-1].iloc[-1])
    equity = pd.concat(curves).rename("equity")
    trades = pd.concat([trades for _, trades, *_ in pieces], ignore_index=True)
    position = np.concatenate([position for *_, position, _ in pieces])
    close = np.concatenate([close.to_numpy() for *_, close in pieces])
    metrics = compute_metrics(equity, trades, position, initial_cash=initial_cash, close=close)
    in_sample = frame["is_return_ann"].dropna() if "is_return_ann" in frame.columns else pd.Series(dtype=float)
    mean_is = float(in_sample.mean()) if len(in_sample) else math.nan
    efficiency = metrics["return_ann"] / mean_is if mean_is > 0 else math.nan  # NaN: nothing in-sample to keep
    return WalkForwardResult(frame, parameters, rank, equity, trades, metrics, efficiency, sweeps)


def _plain(value: Any) -> Any:
    """A numpy scalar from a frame as the Python value the template printed."""
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["WalkForwardResult", "Window", "run_walk_forward", "windows"]
