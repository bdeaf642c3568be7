"""Components: the registry, built-in indicators and signals, and script components."""

from candleflow.components.declare import Component, describe, indicator, signal
from candleflow.components.registry import Registry

__all__ = ["Component", "Registry", "describe", "indicator", "signal"]
