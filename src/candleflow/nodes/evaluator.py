"""The evaluator node: signal events -> actions by the strategy's rules -> portfolio simulation."""

from __future__ import annotations

import pandas as pd

from candleflow.config.models import Strategy
from candleflow.portfolio.rules import actions_from_signals
from candleflow.portfolio.simulate import simulate

# Bump when simulation semantics change, so cached evaluator outputs are not reused.
EVALUATOR_VERSION = 1


def evaluate(strategy: Strategy, candles: pd.DataFrame, signal_frames: dict[str, pd.DataFrame]):
    """Map each signal node's events through ``strategy.rules`` and simulate the portfolio."""
    actions = actions_from_signals(signal_frames, strategy.rules, len(candles))
    return simulate(candles, actions, execution=strategy.execution, sizing=strategy.sizing, risk=strategy.risk,
                    initial_cash=strategy.initial_cash)
