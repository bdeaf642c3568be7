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
        """The section's ``signal type -> action`` mapping; empty when it is in condition form.

        A partial exit ``{rsi_high: {close_long: 0.5}}`` maps to its action (``close_long``).
        """
        if self.form(section) != "signals":
            return {}
        mapping = getattr(self, section)
        return {key: next(iter(value)) if _is_partial(value) else value for key, value in mapping.items()}

    def exit_fractions(self) -> dict[str, float]:
        """The partial exits: ``{signal type: fraction}`` (signal form) or ``{action: fraction}`` (condition form)."""
        form = self.form("exit")
        if form == "signals":
            return {key: next(iter(value.values())) for key, value in self.exit.items() if _is_partial(value)}
        if form == "conditions":
            return {action: value["fraction"] for action, value in self.exit.items()
                    if isinstance(value, dict) and "when" in value and "fraction" in value}
        return {}


def _is_partial(value: Any) -> bool:
    """``{close_long: 0.5}``: an exit action closing a fraction of each trade."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXIT_ACTIONS


class Distance(_Strict):
    """A distance or a price: ``fraction`` of a reference price, ``multiple`` x an ``atr`` node's value, or the
    value of a ``price`` node (``bb.lower``), each read on the candle whose close decided the order.

    A bare number is a fraction: ``stop_loss: 0.02`` is ``{fraction: 0.02}``.

    >>> Distance.model_validate(0.02).fraction, Distance.model_validate({"atr": "atr14", "multiple": 2}).multiple
    (0.02, 2.0)
    """

    fraction: float | None = Field(default=None, allow_inf_nan=False)
    atr: str | None = None
    multiple: float | None = Field(default=None, allow_inf_nan=False)
    price: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return _number_as(value, "fraction",
                          "a fraction (0.02), {atr: <atr node>, multiple: 2} or {price: <indicator>}")

    @property
    def size(self) -> float:
        """The fraction or ATR multiple (a price level counts as 1: it has no sign to check)."""
        return 1.0 if self.price is not None else self.fraction if self.fraction is not None else self.multiple

    @model_validator(mode="after")
    def _one_form(self) -> "Distance":
        forms = [self.fraction is not None, self.atr is not None or self.multiple is not None, self.price is not None]
        if sum(forms) != 1:
            raise ValueError("give one of: a fraction (0.02), {atr: <atr node>, multiple: 2} or {price: <indicator>}")
        if (self.atr is None) != (self.multiple is None):
            raise ValueError("an ATR distance needs both 'atr' (an indicator) and 'multiple'")
        return self

    def refs(self) -> list[tuple[str, str]]:
        """``(field, indicator output)`` for the indicator this distance reads, if any."""
        return [(key, ref) for key, ref in (("atr", self.atr), ("price", self.price)) if ref is not None]

    def text(self) -> str:
        if self.fraction is not None:
            return f"{self.fraction:g}"
        if self.price is not None:
            return self.price
        return f"{self.multiple:g} x {self.atr}"


def _number_as(value: Any, key: str, forms: str) -> Any:
    """A bare number as ``{key: number}``; a string (not a mapping) is an error naming the accepted ``forms``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {key: value}
    if isinstance(value, (str, bool, list)):
        raise ValueError(f"give {forms}, got {value!r}")
    return value


class Commission(_Strict):
    """Per fill: ``max(minimum, fraction x size x price + per_unit x size + per_order)``."""

    fraction: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)
    per_unit: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    per_order: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    minimum: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return _number_as(value, "fraction", "a fraction of notional (0.001) or {fraction, per_unit, per_order, "
                                             "minimum}")


    def text(self) -> str:
        """Short text for the graph ("" when free)."""
        parts = [f"{self.fraction:g}" if self.fraction else "", f"{self.per_unit:g}/unit" if self.per_unit else "",
                 f"{self.per_order:g}/order" if self.per_order else "", f"min {self.minimum:g}" if self.minimum else ""]
        return " + ".join(part for part in parts if part)


class PriceCost(_Strict):
    """A spread or slippage: ``units`` of price (a bare number) or ``bps`` (basis points) of the price."""

    units: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    bps: float = Field(default=0.0, ge=0, lt=10_000, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return _number_as(value, "units", "a number in price units (0.0001) or {bps: 1.5}")

    def text(self) -> str:
        """Short text for the graph ("" when free)."""
        return " + ".join(part for part in (f"{self.units:g}" if self.units else "",
                                            f"{self.bps:g} bps" if self.bps else "") if part)


class Execution(_Strict):
    """How orders fill and what they cost.  See README "How orders fill"."""

    fill: Literal["next_open", "close"] = "next_open"
    commission: Commission = Field(default_factory=Commission)
    spread: PriceCost = Field(default_factory=PriceCost)
    slippage: PriceCost = Field(default_factory=PriceCost)
    close_at_end: bool = False  # close what is still open at the last candle's close (costs paid)
    trade_from: str | None = None  # no order decided before this time: earlier candles only warm up indicators

    @field_validator("trade_from")
    @classmethod
    def _a_time(cls, value: str | None) -> str | None:
        if value is not None:
            trade_from_time(value)
        return value

    def trade_from_bar(self, index: "pd.DatetimeIndex") -> int:
        """The first candle of ``index`` at or after ``trade_from`` (0 without it)."""
        return 0 if self.trade_from is None else int(index.searchsorted(trade_from_time(self.trade_from)))


def trade_from_time(value: str) -> "pd.Timestamp":
    """``value`` (ISO-8601; naive means UTC) as a UTC timestamp; ValueError if it is none."""
    import pandas as pd  # pandas: only when a strategy sets trade_from

    try:
        time = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"'{value}' is not a time; use ISO-8601, e.g. 2023-07-01 or 2023-07-01T09:00Z") from None
    if time is pd.NaT:
        raise ValueError(f"'{value}' is not a time; use ISO-8601, e.g. 2023-07-01")
    return time.tz_localize("UTC") if time.tz is None else time.tz_convert("UTC")


class EntryOrder(_Strict):
    """How an entry signal is placed: a market order, or a working limit, stop or stop-limit order.

    The order's price is a ``price`` node's value on the signal candle, or an ``offset`` from the signal
    candle's close: a buy limit below it, a buy stop above it (mirrored for sells).  A stop-limit's limit
    is ``limit_offset`` beyond its stop (a buy pays at most ``stop + limit_offset``).  ``valid_for``: the
    number of candles the order works before it is cancelled (default: until filled or replaced).
    """

    type: Literal["market", "limit", "stop", "stop_limit"] = "market"
    price: str | None = None
    offset: Distance | None = None
    limit_offset: Distance | None = None
    valid_for: int | None = Field(default=None, ge=1)

    @field_validator("offset", "limit_offset")
    @classmethod
    def _not_negative(cls, distance: Distance | None, info) -> Distance | None:
        if distance is None or distance.size >= 0:
            return distance
        if info.field_name == "offset":
            raise ValueError(f"an offset is a distance from the close (a buy limit below it, a buy stop above it): "
                             f"got {distance.size}, use >= 0")
        raise ValueError(f"a stop-limit's limit lies at or beyond its stop (a buy pays at most stop + limit_offset, "
                         f"a sell gets at least stop - limit_offset): got {distance.size}, use >= 0")

    @model_validator(mode="after")
    def _consistent(self) -> "EntryOrder":
        if self.type == "market":
            given = [k for k in ("price", "offset", "limit_offset", "valid_for") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"a market order takes no '{given[0]}'; use type: limit, stop or stop_limit")
            return self
        if self.price is not None and self.offset is not None:
            raise ValueError(f"give a {self.type} order 'price' or 'offset', not both")
        if self.price is None and self.offset is None:
            raise ValueError(f"a {self.type} order needs 'price' (an indicator output) or 'offset' (from the close)")
        for name in ("offset", "limit_offset"):
            distance = getattr(self, name)
            if distance is not None and distance.price is not None:
                raise ValueError(f"'{name}' is a fraction or an ATR multiple; an indicator price goes in 'price'")
        if self.type == "stop_limit" and self.limit_offset is None:
            raise ValueError("a stop_limit order needs 'limit_offset': how far beyond its stop the limit is "
                             "(0 for a limit at the stop)")
        if self.type != "stop_limit" and self.limit_offset is not None:
            raise ValueError("'limit_offset' is only for type: stop_limit")
        return self

    def text(self) -> str:
        """Short text for the graph: ``limit close-0.001 · 10 candles``."""
        if self.type == "market":
            return "market"
        toward = "-" if self.type == "limit" else "+"
        price = self.price if self.price else f"close{toward}{self.offset.text()}"
        limit = f" limit +{self.limit_offset.text()}" if self.limit_offset is not None else ""
        return f"{self.type} {price}{limit}" + (f" · {self.valid_for} candles" if self.valid_for else "")

    def refs(self) -> list[tuple[str, str]]:
        """``(field, indicator output)`` for every indicator this order reads."""
        refs = [("price", self.price)] if self.price else []
        return refs + [(f"{name}.atr", d.atr) for name in ("offset", "limit_offset")
                       if (d := getattr(self, name)) is not None and d.atr]


class Orders(_Strict):
    """Entry orders: ``entry`` for both directions, ``buy``/``sell`` to differ per direction; pyramiding."""

    entry: EntryOrder = Field(default_factory=EntryOrder)
    buy: EntryOrder | None = None
    sell: EntryOrder | None = None
    max_entries: int = Field(default=1, ge=1)  # pyramiding: open trades allowed in one direction

    def for_side(self, side: int) -> EntryOrder:
        """The order an entry of ``side`` (+1 buy, -1 sell) places."""
        own = self.buy if side > 0 else self.sell
        return own if own is not None else self.entry


class Sizing(_Strict):
    """``fraction``: notional = value x equity; ``fixed``: value units; ``risk``: lose value x equity at the stop."""

    method: Literal["fraction", "fixed", "risk"] = "fraction"
    value: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    whole_units: bool = False
    max_leverage: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("value")
    @classmethod
    def _fraction_range(cls, value: float, info) -> float:
        method = info.data.get("method")
        if method in ("fraction", "risk") and value > 1:
            raise ValueError(f"{method} sizing takes a value in (0, 1] (a fraction of equity), got {value}")
        return value


class Risk(_Strict):
    """Protective exits (each a fraction of the entry price, an ATR multiple or an indicator price), a
    time exit, a break-even move, and the short-selling switch.  See README "How orders fill"."""

    stop_loss: Distance | None = None
    take_profit: Distance | None = None
    trailing_stop: Distance | None = None
    break_even: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_bars: int | None = Field(default=None, ge=1)
    allow_short: bool = True

    @field_validator("stop_loss", "take_profit", "trailing_stop")
    @classmethod
    def _distance(cls, distance: Distance | None, info) -> Distance | None:
        if distance is None:
            return None
        if not distance.size > 0:
            raise ValueError(f"a distance of zero or less exits at once: got {distance.size}, give more than 0")
        if info.field_name != "take_profit" and distance.fraction is not None and distance.fraction >= 1:
            raise ValueError("as a fraction it must be less than 1 (0.02 is 2 %)")
        if info.field_name == "trailing_stop" and distance.price is not None:
            raise ValueError("a trailing stop is a fraction or {atr: <node>, multiple: k}; it trails the closes")
        return distance

    def refs(self) -> list[tuple[str, str]]:
        """``(field, indicator output)`` for every indicator these exits read."""
        return [(f"{name}.{key}", ref) for name in ("stop_loss", "take_profit", "trailing_stop")
                if (d := getattr(self, name)) is not None for key, ref in d.refs()]


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
    orders: Orders = Field(default_factory=Orders)
    sizing: Sizing = Field(default_factory=Sizing)
    risk: Risk = Field(default_factory=Risk)
    initial_cash: float = Field(default=10_000.0, gt=0, allow_inf_nan=False)

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        if parse_timeframe(value) is None:
            raise ValueError(f"timeframe '{value}' not understood; use e.g. 1m, 15m, 1h, 4h, 1d")
        return value

    def order_lines(self) -> list[str]:
        """The order settings in a few short lines (the evaluator's box in the graph drawing).

        >>> Strategy.model_validate({"name": "x", "symbol": "S", "timeframe": "1h", "data": {"sample": "s"},
        ...     "rules": {"entry": {}}, "risk": {"stop_loss": 0.02}}).order_lines()
        ['fill next_open', 'entry market', 'size fraction 1', 'stop-loss 0.02']
        """
        execution, orders, sizing, risk = self.execution, self.orders, self.sizing, self.risk
        costs = [f"{name} {value}" for name, value in (("commission", execution.commission.text()),
                                                      ("spread", execution.spread.text()),
                                                      ("slippage", execution.slippage.text())) if value]
        lines = [" · ".join([f"fill {execution.fill}", *costs, *(["close at end"] if execution.close_at_end else [])])]
        sides = [("entry", orders.entry)] + [(key, getattr(orders, key)) for key in ("buy", "sell")
                                             if getattr(orders, key) is not None]
        lines += [f"{key} {order.text()}" for key, order in sides]
        size = [f"size {sizing.method} {sizing.value:g}", *(["whole units"] if sizing.whole_units else []),
                *([f"leverage {sizing.max_leverage:g}"] if sizing.max_leverage else []),
                *([f"pyramiding {orders.max_entries}"] if orders.max_entries > 1 else [])]
        lines.append(" · ".join(size))
        distances = (("stop-loss", risk.stop_loss), ("take-profit", risk.take_profit), ("trailing", risk.trailing_stop))
        exits = [f"{label} {d.text()}" for label, d in distances if d is not None]
        exits += [f"break-even {risk.break_even:g}"] if risk.break_even else []
        exits += [f"max {risk.max_bars} bars"] if risk.max_bars else []
        exits += [] if risk.allow_short else ["long only"]
        return lines + ([" · ".join(exits)] if exits else [])

    def order_refs(self) -> list[tuple[str, str]]:
        """``(YAML path, indicator output)`` for every indicator the evaluator reads (order prices, stops)."""
        refs = [(f"risk.{name}", ref) for name, ref in self.risk.refs()]
        for key in ("entry", "buy", "sell"):
            order = getattr(self.orders, key)
            refs += [(f"orders.{key}.{name}", ref) for name, ref in (order.refs() if order is not None else [])]
        return refs


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
