"""candleflow: backtest trading strategies declared as YAML graphs.

>>> from candleflow import run_backtest                      # doctest: +SKIP
>>> run_backtest("strategies/ma_crossover.yaml").metrics     # doctest: +SKIP
"""

from candleflow.backtest import BacktestResult, run_backtest
from candleflow.components.registry import indicator, signal
from candleflow.config import Strategy, load_strategy
from candleflow.dag.compiler import compile_strategy
from candleflow.errors import CandleflowError

__version__ = "0.1.0"
__all__ = ["BacktestResult", "CandleflowError", "Strategy", "compile_strategy", "indicator", "load_strategy",
           "run_backtest", "signal"]
