"""candleflow: backtest trading strategies declared as YAML graphs.

>>> from candleflow import NodeCache, ScriptOptions, run_backtest, write_report          # doctest: +SKIP
>>> result = run_backtest("strategies/ma_crossover.yaml", cache=NodeCache(".candleflow/cache"),
...                       script_options=ScriptOptions(timeout=5))                    # doctest: +SKIP
>>> result.metrics["sharpe"], result.write("results/")                             # doctest: +SKIP
>>> write_report(result, "report.html")                                            # doctest: +SKIP

The public names are imported lazily, so a script-component worker process that
imports ``candleflow.components.script.worker`` does not load Dask and networkx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from candleflow._lazy import lazy_getattr

__version__ = "0.1.0"

_PUBLIC = {
    "BacktestResult": "candleflow.backtest",
    "run_backtest": "candleflow.backtest",
    "run_compiled": "candleflow.backtest",
    "prepare": "candleflow.backtest",
    "indicator": "candleflow.components.declare",
    "signal": "candleflow.components.declare",
    "Strategy": "candleflow.config",
    "load_strategy": "candleflow.config",
    "compile_strategy": "candleflow.dag.compiler",
    "NodeCache": "candleflow.dag.cache",
    "CandleflowError": "candleflow.errors",
    "run_sweep": "candleflow.sweep",
    "SweepResult": "candleflow.sweep",
    "render_graph": "candleflow.visualize",
    "write_report": "candleflow.visualize",
    "write_sweep_report": "candleflow.visualize",
    "NodeStats": "candleflow.vocab",
    "ScriptOptions": "candleflow.vocab",
    "make_signal_frame": "candleflow.vocab",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from candleflow.backtest import BacktestResult, prepare, run_backtest, run_compiled
    from candleflow.components.declare import indicator, signal
    from candleflow.config import Strategy, load_strategy
    from candleflow.dag.cache import NodeCache
    from candleflow.dag.compiler import compile_strategy
    from candleflow.errors import CandleflowError
    from candleflow.sweep import SweepResult, run_sweep
    from candleflow.visualize import render_graph, write_report, write_sweep_report
    from candleflow.vocab import NodeStats, ScriptOptions, make_signal_frame


__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
