"""The evaluator node: signal events -> actions by the strategy's rules -> portfolio simulation."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from candleflow.config.models import Strategy
from candleflow.portfolio.rules import actions_from_signals
from candleflow.portfolio.simulate import simulate

class EvaluatorInputs(NamedTuple):
    """What the evaluator reads: each signal node's events, the condition deciding each condition-form
    action (``{"buy": series}``), and the series order prices and exits name (``{"bb.lower": array}``)."""

    signals: dict[str, pd.DataFrame]
    conditions: dict[str, pd.Series]
    levels: dict[str, np.ndarray]


def evaluate(strategy: Strategy, candles: pd.DataFrame, inputs: EvaluatorInputs):
    """Map signal events and conditions through ``strategy.rules`` and simulate the portfolio."""
    actions = actions_from_signals(inputs.signals, strategy.rules, len(candles), inputs.conditions)
    return simulate(candles, actions, execution=strategy.execution, orders=strategy.orders, sizing=strategy.sizing,
                    risk=strategy.risk, levels=inputs.levels, initial_cash=strategy.initial_cash,
                    trade_from=strategy.execution.trade_from_bar(candles.index))
