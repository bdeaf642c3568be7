"""The evaluator's engine: signal rules -> per-bar actions -> simulated trades -> metrics."""

from candleflow.portfolio.metrics import compute_metrics
from candleflow.portfolio.rules import Actions, actions_from_signals
from candleflow.portfolio.simulate import Simulation, simulate

__all__ = ["Actions", "Simulation", "actions_from_signals", "compute_metrics", "simulate"]
