"""candleflow: backtest trading strategies declared as YAML graphs."""

__version__ = "0.1.0"
