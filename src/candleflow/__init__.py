"""candleflow: backtest trading strategies declared as YAML graphs.

>>> from candleflow import run_backtest                      # doctest: +SKIP
>>> run_backtest("strategies/ma_crossover.yaml").metrics     # doctest: +SKIP

The public names are imported lazily, so a script-component worker process that
imports ``candleflow.components.script.worker`` does not load Dask and networkx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "BacktestResult": "candleflow.backtest",
    "run_backtest": "candleflow.backtest",
    "indicator": "candleflow.components.registry",
    "signal": "candleflow.components.registry",
    "Strategy": "candleflow.config",
    "load_strategy": "candleflow.config",
    "compile_strategy": "candleflow.dag.compiler",
    "CandleflowError": "candleflow.errors",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from candleflow.backtest import BacktestResult, run_backtest
    from candleflow.components.registry import indicator, signal
    from candleflow.config import Strategy, load_strategy
    from candleflow.dag.compiler import compile_strategy
    from candleflow.errors import CandleflowError


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'candleflow' has no attribute {name!r}")
