"""One backtest, end to end: config -> graph -> schedule -> node outputs -> evaluator -> result.

>>> result = run_backtest("strategies/ma_crossover.yaml")   # doctest: +SKIP
>>> result.metrics["n_trades"] > 0                          # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from candleflow.config import Strategy
from candleflow.config.loader import read_strategy
from candleflow.dag import EVALUATOR, CompiledStrategy, compile_strategy, find_workspace
from candleflow.dag.cache import NodeCache
from candleflow.dag.executor import Scheduler, execute
from candleflow.dag.usage import check_data, silent_parts, unused_parts
from candleflow.data import load_candles, load_source, validate_candles
from candleflow.errors import warn
from candleflow.nodes.compute import base_aligned
from candleflow.results import write_results
from candleflow.vocab import NodeStats, ScriptOptions

DEFAULT_CACHE_DIR = Path(".candleflow") / "cache"


@dataclass
class BacktestResult:
    """Everything a run produced: node outputs, the simulation and per-node stats."""

    compiled: CompiledStrategy
    candles: pd.DataFrame
    values: dict[str, Any]
    stats: dict[str, NodeStats]
    source_text: str | None = None

    @property
    def strategy(self) -> Strategy:
        return self.compiled.strategy

    @property
    def simulation(self):
        return self.values[EVALUATOR]

    @property
    def trades(self) -> pd.DataFrame:
        return self.simulation.trades

    @property
    def equity(self) -> pd.Series:
        return self.simulation.equity

    @property
    def metrics(self) -> dict[str, float]:
        return self.simulation.metrics

    def indicators(self) -> dict[str, pd.Series | pd.DataFrame]:
        """Every indicator's output as the candles see it (a higher timeframe's aligned to them)."""
        plans, timeframe = self.compiled.plans, self.compiled.strategy.timeframe
        return {n: base_aligned(plans[n], v, self.candles, timeframe) for n, v in self.values.items()
                if self.compiled.graph.nodes[n]["kind"] == "indicator"}

    def signals(self) -> dict[str, pd.DataFrame]:
        return {n: v for n, v in self.values.items() if self.compiled.graph.nodes[n]["kind"] == "signal"}

    def silent_parts(self) -> list[str]:
        """``file: yaml path: what`` for each signal node that never fired, and each rule whose signal type never
        fired though its nodes did (:func:`candleflow.dag.usage.silent_parts`); the CLI warns about each."""
        parts = silent_parts(self.compiled, self.signals(), len(self.candles))
        return [f"{self.compiled.file}: {path}: {message}" for path, message in parts]

    def write(self, out_dir: str | Path, *, extras: Mapping[str, Any] | None = None, format: str = "parquet") -> Path:
        """Write the result files as folder ``out_dir``, switched in atomically, the per-candle series as ``format``
        (parquet or csv); see :mod:`candleflow.results`."""
        return write_results(self, out_dir, extras=extras, format=format)


def prepare(strategy_file: str | Path, *, variables: Mapping[str, Any] | None = None,
            workspace: str | Path | None = None, component_dirs: Sequence[Path] = ()) -> tuple[CompiledStrategy, str]:
    """Load, validate and compile a strategy file; returns the compiled graph and the rendered text."""
    path = Path(strategy_file)
    strategy, text = read_strategy(path, variables=variables)
    root = Path(workspace) if workspace else find_workspace(path)
    compiled = compile_strategy(strategy, workspace=root, file=str(path), component_dirs=component_dirs)
    for where, message in unused_parts(compiled):  # legal, but a part that changes nothing: say so
        warn(f"{compiled.file}: {where}: {message}")
    return compiled, text


def load_data(compiled: CompiledStrategy, data: str | Path | pd.DataFrame | None = None, *,
              max_bytes: int | None = None) -> pd.DataFrame:
    """The run's candles: ``data`` if given (a file or a frame), else the strategy's data source.

    ``max_bytes`` bounds a data file (default: :data:`~candleflow.data.loader.MAX_DATA_BYTES`).
    """
    if isinstance(data, pd.DataFrame):
        return validate_candles(data)
    if data is not None:
        return load_candles(data, max_bytes=max_bytes)
    return load_source(compiled.strategy.data, workspace=compiled.workspace, file=compiled.file, max_bytes=max_bytes)


def run_compiled(compiled: CompiledStrategy, candles: pd.DataFrame, *, cache: NodeCache | None = None,
                 scheduler: Scheduler = "threads", num_workers: int | None = None,
                 on_node_done: Callable[[NodeStats], None] | None = None,
                 progress: Callable[[str, int], None] | None = None,
                 script_options: ScriptOptions | None = None, source_text: str | None = None,
                 replay: Mapping[str, pd.DataFrame] | None = None) -> BacktestResult:
    """Execute an already compiled strategy on ``candles``.

    ``scheduler`` is ``threads`` (default), ``sync``, ``processes`` or a running
    Dask scheduler's ``tcp://HOST:PORT``; ``replay`` feeds recorded signal frames
    (signal node -> frame) to the evaluator instead of running components.
    """
    for path, message in check_data(compiled, candles):
        warn(f"{compiled.file}: {path}: {message}")
    outcome = execute(compiled, candles, cache=cache, scheduler=scheduler, num_workers=num_workers,
                      on_node_done=on_node_done, progress=progress, script_options=script_options, replay=replay)
    result = BacktestResult(compiled, candles, outcome.values, outcome.stats, source_text)
    for text, count in result.simulation.notes.items():  # orders that did not happen are never silent
        warn(f"{compiled.file}: {text} ({count} time{'s' if count != 1 else ''})")
    return result


def run_backtest(strategy_file: str | Path, *, data: str | Path | pd.DataFrame | None = None,
                 variables: Mapping[str, Any] | None = None, workspace: str | Path | None = None,
                 cache: NodeCache | None = None, scheduler: Scheduler = "threads",
                 num_workers: int | None = None, script_options: ScriptOptions | None = None,
                 on_node_done: Callable[[NodeStats], None] | None = None,
                 progress: Callable[[str, int], None] | None = None) -> BacktestResult:
    """Run the strategy in ``strategy_file``; see the README for the YAML schema."""
    compiled, text = prepare(strategy_file, variables=variables, workspace=workspace)
    candles = load_data(compiled, data)
    return run_compiled(compiled, candles, cache=cache, scheduler=scheduler, num_workers=num_workers,
                        on_node_done=on_node_done, progress=progress, script_options=script_options,
                        source_text=text)
