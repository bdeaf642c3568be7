"""Strategy configuration: schema and loader."""

from candleflow.config.loader import load_strategy, parse_strategy, render_template
from candleflow.config.models import (
    ComponentSpec, DataSource, Execution, IndicatorSpec, Risk, Rules, SignalSpec, Sizing, Strategy,
    parse_timeframe,
)

__all__ = [
    "ComponentSpec", "DataSource", "Execution", "IndicatorSpec", "Risk", "Rules", "SignalSpec",
    "Sizing", "Strategy", "load_strategy", "parse_strategy", "parse_timeframe", "render_template",
]
