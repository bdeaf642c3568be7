"""Components: the registry, built-in indicators and signals, and script components."""

from candleflow.components.registry import Component, Registry, describe, indicator, signal

__all__ = ["Component", "Registry", "describe", "indicator", "signal"]
