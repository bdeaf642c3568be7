"""The evaluator node: signal events -> actions by the strategy's rules -> portfolio simulation."""

from __future__ import annotations

import pandas as pd

from candleflow.config.models import Strategy
from candleflow.portfolio.rules import actions_from_signals
from candleflow.portfolio.simulate import simulate

# Bump when simulation semantics change, so cached evaluator outputs are not reused.
EVALUATOR_VERSION = 1


def evaluate(strategy: Strategy, candles: pd.DataFrame, upstream: dict[str, pd.DataFrame | pd.Series],
             roots: dict[str, str] | None = None):
    """Map signal events and conditions through ``strategy.rules`` and simulate the portfolio.

    ``upstream`` holds each signal node's frame and each condition-form action's condition
    series, ``roots`` which node decides which action (``{"buy": "rules.entry.buy"}``).
    """
    roots = roots or {}
    conditions = {action: upstream[node] for action, node in roots.items()}
    signal_frames = {name: value for name, value in upstream.items() if name not in roots.values()}
    actions = actions_from_signals(signal_frames, strategy.rules, len(candles), conditions)
    return simulate(candles, actions, execution=strategy.execution, sizing=strategy.sizing, risk=strategy.risk,
                    initial_cash=strategy.initial_cash)
