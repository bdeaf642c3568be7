"""The strategy file's schema (pydantic v2, strict: unknown keys are errors).

>>> s = Strategy.model_validate({"name": "x", "symbol": "EURUSD", "timeframe": "1h",
...     "data": {"sample": "eurusd_1h"},
...     "indicators": [{"name": "fast", "component": "sma", "params": {"period": 5}}],
...     "signals": [], "rules": {"entry": {}, "exit": {}}})
>>> s.indicators[0].params
{'period': 5}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENTRY_ACTIONS = ("buy", "sell")
EXIT_ACTIONS = ("close", "close_long", "close_short")
SECTION_ACTIONS = {"entry": ENTRY_ACTIONS, "exit": EXIT_ACTIONS}
SCRIPT = "script"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # initial_cash: 1e400 is inf: refused


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("a path cannot contain a NUL byte")
    return value


PathText = Annotated[str, AfterValidator(_no_nul)]  # a file or folder path: no NUL byte, which no OS accepts


class DataSource(_Strict):
    """Where the candles come from: a CSV/Parquet file, or a bundled sample."""

    path: PathText | None = None
    sample: str | None = None
    format: Literal["csv", "parquet"] | None = None
    start: str | None = None
    end: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "DataSource":
        if (self.path is None) == (self.sample is None):
            raise ValueError("give exactly one of 'path' or 'sample'")
        return self


class Reference(_Strict):
    """Another series (a symbol, an index) whose candle columns nodes may read as ``name.close``.

    ``timeframe`` is its candles' period (default: the strategy's); a reference candle is seen from its close on.
    """

    path: PathText
    format: Literal["csv", "parquet"] | None = None
    timeframe: str | None = None

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str | None) -> str | None:
        if value is not None and not parse_timeframe(value):
            raise ValueError(f"timeframe '{value}' not understood; use e.g. 1h, 1d")
        return value


class ComponentSpec(_Strict):
    """Fields shared by indicator and signal nodes."""

    name: str = Field(pattern=NAME_PATTERN)
    component: str
    params: dict[str, Any] = Field(default_factory=dict)
    # script components only
    path: PathText | None = None
    lookback: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    isolation: Literal["warm", "process"] | None = None  # "process": a fresh process per candle
    # a higher timeframe (4h, 1d, 1w) and its boundaries' shift from 00:00 UTC (17h: days run 17:00 to 17:00)
    timeframe: str | None = None
    timeframe_offset: str | None = None

    @field_validator("timeframe", "timeframe_offset")
    @classmethod
    def _timeframe(cls, value: str | None) -> str | None:
        if value is not None and parse_timeframe(value) is None:
            raise ValueError(f"'{value}' not understood; use e.g. 4h, 1d, 1w")
        return value

    @model_validator(mode="after")
    def _script_fields(self) -> "ComponentSpec":
        if self.component == SCRIPT and not self.path:
            raise ValueError("a 'script' component needs 'path' (e.g. components/signals/ma_crossover.py)")
        if self.component != SCRIPT:
            for field in ("path", "lookback", "timeout", "isolation"):
                if getattr(self, field) is not None:
                    raise ValueError(f"'{field}' is only for component: script")
        if self.timeframe_offset is not None and self.timeframe is None:
            raise ValueError("'timeframe_offset' needs a 'timeframe'")
        return self


class IndicatorSpec(ComponentSpec):
    """An indicator node; ``inputs`` may name other indicators (e.g. an EMA of an RSI)."""

    inputs: list[str] | dict[str, str] = Field(default_factory=list)


class SignalSpec(ComponentSpec):
    """A signal node; ``inputs`` name indicators (``sma_fast`` or ``bb.upper``)."""

    inputs: list[str] | dict[str, str] = Field(default_factory=list)


class Rules(_Strict):
    """What the evaluator does on which candle, in one of two forms per section.

    * *signal form* (``{golden_cross: buy}``): a signal type mapped to an action;
      ``entry`` actions are ``buy`` (open long) and ``sell`` (open short), ``exit``
      actions ``close``, ``close_long`` and ``close_short``.  A signal type may be
      qualified by its node (``cross.golden_cross``).
    * *condition form* (``{buy: {all: [golden_cross, {below: [rsi, 70]}]}}``): every key
      an action, mapped to a condition (see ``dag.conditions``).

    The values are checked by the compiler, which reports every problem with its path.
    """

    entry: dict[str, Any] = Field(default_factory=dict)
    exit: dict[str, Any] = Field(default_factory=dict)

    def form(self, section: str) -> Literal["signals", "conditions", "mixed", "ambiguous"]:
        """Which form ``section`` (``entry``/``exit``) is written in; an empty section is in signal form.

        >>> Rules(entry={"buy": "golden_cross"}).form("entry"), Rules(entry={"golden_cross": "buy"}).form("entry")
        ('conditions', 'signals')
        """
        actions = SECTION_ACTIONS[section]
        mapping = getattr(self, section)
        action_keys = [key in actions for key in mapping]
        if not any(action_keys):
            return "signals"
        if not all(action_keys):
            return "mixed"
        if all(isinstance(value, str) and value in actions for value in mapping.values()):
            return "ambiguous"
        return "conditions"

    def signal_rules(self, section: str) -> dict[str, str]:
        """The section's ``signal type -> action`` mapping; empty when it is in condition form."""
        return getattr(self, section) if self.form(section) == "signals" else {}


class Execution(_Strict):
    """How orders fill and what they cost.  See README "How orders fill"."""

    fill: Literal["next_open", "close"] = "next_open"
    commission: float = Field(default=0.0, ge=0, lt=1)
    spread: float = Field(default=0.0, ge=0)
    slippage: float = Field(default=0.0, ge=0)


class Sizing(_Strict):
    """``fraction``: notional = value x equity; ``fixed``: value units per trade."""

    method: Literal["fraction", "fixed"] = "fraction"
    value: float = Field(default=1.0, gt=0)
    whole_units: bool = False

    @model_validator(mode="after")
    def _fraction_range(self) -> "Sizing":
        if self.method == "fraction" and self.value > 1:
            raise ValueError("fraction sizing takes a value in (0, 1]")
        return self


class Risk(_Strict):
    """Stops as fractions of the entry price (0.02 = 2 %); short selling switch."""

    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    take_profit: float | None = Field(default=None, gt=0)
    allow_short: bool = True


class Strategy(_Strict):
    name: str
    symbol: str
    timeframe: str
    data: DataSource
    references: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Reference] = Field(default_factory=dict)
    components: list[PathText] = Field(default_factory=list)
    indicators: list[IndicatorSpec] = Field(default_factory=list)
    signals: list[SignalSpec] = Field(default_factory=list)
    conditions: list[dict[str, Any]] = Field(default_factory=list)  # named conditions: {name: x, above: [a, b]}
    rules: Rules
    execution: Execution = Field(default_factory=Execution)
    sizing: Sizing = Field(default_factory=Sizing)
    risk: Risk = Field(default_factory=Risk)
    initial_cash: float = Field(default=10_000.0, gt=0)

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        if parse_timeframe(value) is None:
            raise ValueError(f"timeframe '{value}' not understood; use e.g. 1m, 15m, 1h, 4h, 1d")
        return value


_TIMEFRAME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_timeframe(value: str) -> int | None:
    """Seconds per candle for ``15m``, ``1h``, ``1d``...; None if not understood.

    >>> parse_timeframe("4h")
    14400
    """
    match = re.fullmatch(r"(\d+)([smhdw])", value.strip().lower())
    if not match:
        return None
    return int(match.group(1)) * _TIMEFRAME_UNITS[match.group(2)]
