"""The script component output protocol: find the marked block, validate it.

A script prints, per candle, one marked JSON block somewhere in its stdout::

    INDICATOR_START                       SIGNAL_START
    {"values": [...], "current": 1.08}    [{"timestamp": "2024-01-01T05:00:00",
    INDICATOR_END                           "signal_type": "golden_cross",
                                            "strength": 0.85, "metadata": {...}}]
                                          SIGNAL_END

Algorithm (stateless, one candle's stdout at a time): locate every occurrence
of the START and END markers (anywhere in the text, as the seed's parser does;
:mod:`.blocks`); zero of both is "no block" (:class:`NoBlockError`); exactly
one START followed by one END is the block; anything else is an error.  The text between the
markers is parsed with :func:`json.loads` and validated by the pydantic models
below (strict: no strings for numbers, no unknown keys, no NaN/inf outside
``metadata``).  The text before and after the block is returned as the log.

Signal timestamps are ISO-8601 strings (a naive one is UTC, as the seed's
``isoformat()`` prints) or epoch seconds; one later than the current candle's
time is look-ahead and an error.  ``current: null`` means "no value yet".

Whether a missing block is acceptable depends on the candles before it (a
warm-up period prints nothing); that rule is stateful and lives in
:func:`missing_block_error` / :func:`never_printed_error`, applied by the
worker within a chunk and by the runner across chunks.

Where it runs: the worker only cuts the block out of the stdout
(:func:`extract_block`, plain ``str`` methods a script cannot patch, in the
light module :mod:`.blocks`, so workers need not import pandas or pydantic); the
JSON is parsed and validated in candleflow's own process
(:func:`parse_block`), so a script that patches ``json`` or ``pydantic`` in
its worker cannot change how any output, its own included, is read.

>>> parse_indicator_output("warming\\nINDICATOR_START\\n{\\"values\\": [1.5], \\"current\\": 1.5}\\nINDICATOR_END\\n",
...                        component="sma", candle=3)
(1.5, 'warming')
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Annotated, Any, NamedTuple

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError

from candleflow.components.script.blocks import (  # noqa: F401 -- re-exported: the protocol's whole API is here
    MARKERS,
    SNIPPET,
    Kind,
    NoBlockError,
    extract_block,
    missing_block_error,
    never_printed_error,
    stdout_tail,
)
from candleflow.errors import ComponentError


class SignalEvent(NamedTuple):
    """One validated event from a signal block; ``timestamp`` is a UTC Timestamp."""

    timestamp: pd.Timestamp
    signal_type: str
    strength: float
    metadata: dict[str, Any] | None


def _to_timestamp(value: object) -> pd.Timestamp:
    """ISO-8601 string (naive = UTC) or epoch seconds -> UTC Timestamp."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"timestamp {value!r} is not ISO-8601") from None
        stamp = pd.Timestamp(moment)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"timestamp {value!r} is not finite")
        try:
            return pd.Timestamp(datetime.fromtimestamp(value, tz=timezone.utc))
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp {value!r} is out of range for epoch seconds") from None
    raise ValueError(f"timestamp must be an ISO-8601 string or epoch seconds, not {type(value).__name__}")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class IndicatorPayload(_Payload):
    """``{"values": [...last N values, null for NaN], "current": x | null}``."""

    values: list[float | None] = Field(default_factory=list)
    current: float | None


class SignalEventPayload(_Payload):
    """One element of the signal block's JSON list."""

    timestamp: Annotated[pd.Timestamp, PlainValidator(_to_timestamp)]
    signal_type: str = Field(min_length=1)
    strength: float
    metadata: dict[str, Any] | None = None


_SIGNAL_LIST = TypeAdapter(list[SignalEventPayload])


def parse_indicator_output(stdout: str, *, component: str, candle: int) -> tuple[float | None, str]:
    """The ``current`` value of an indicator block (None = no value yet) and the log."""
    block, log = extract_block(stdout, "indicator", component=component, candle=candle)
    return parse_indicator_block(block, component=component, candle=candle), log


def parse_signal_output(stdout: str, *, component: str, candle: int,
                        candle_time: pd.Timestamp) -> tuple[list[SignalEvent], str]:
    """The events of a signal block and the log; rejects look-ahead timestamps."""
    block, log = extract_block(stdout, "signal", component=component, candle=candle)
    return parse_signal_block(block, component=component, candle=candle, candle_time=candle_time), log


def parse_block(kind: Kind, block: str, *, component: str, candle: int,
                candle_time: pd.Timestamp | None = None) -> float | None | list[SignalEvent]:
    """The value of a block's text (as cut out by :func:`extract_block`): see the two functions below."""
    if kind == "indicator":
        return parse_indicator_block(block, component=component, candle=candle)
    return parse_signal_block(block, component=component, candle=candle, candle_time=candle_time)


def parse_indicator_block(block: str, *, component: str, candle: int) -> float | None:
    """The ``current`` value of an indicator block's text (None = no value yet)."""
    data = _load_json(block, "indicator", component=component, candle=candle)
    try:
        payload = IndicatorPayload.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, "indicator", block, component=component, candle=candle) from None
    return payload.current


def parse_signal_block(block: str, *, component: str, candle: int, candle_time: pd.Timestamp) -> list[SignalEvent]:
    """The events of a signal block's text; rejects look-ahead timestamps."""
    data = _load_json(block, "signal", component=component, candle=candle)
    try:
        payloads = _SIGNAL_LIST.validate_python(data)
    except ValidationError as exc:
        raise _invalid(exc, "signal", block, component=component, candle=candle) from None
    events = []
    for payload in payloads:
        if payload.timestamp > candle_time:
            raise ComponentError(
                f"signal timestamp {payload.timestamp.isoformat()} is after the current candle's time "
                f"{candle_time.isoformat()} (look-ahead)",
                component=component, candle=candle, detail=_snippet(block))
        events.append(SignalEvent(payload.timestamp, payload.signal_type, payload.strength, payload.metadata))
    return events


def _snippet(text: str, around: int | None = None) -> str:
    text = text.strip() if around is None else text
    if around is None:
        return text if len(text) <= SNIPPET else text[:SNIPPET] + "..."
    lo, hi = max(0, around - SNIPPET // 2), around + SNIPPET // 2
    return ("..." if lo else "") + text[lo:hi] + ("..." if hi < len(text) else "")


def _load_json(block: str, kind: Kind, *, component: str, candle: int) -> Any:
    start_marker, end_marker = MARKERS[kind]
    try:
        return json.loads(block)
    except json.JSONDecodeError as exc:
        raise ComponentError(
            f"invalid JSON between {start_marker} and {end_marker}: {exc.msg} at line {exc.lineno} column {exc.colno}",
            component=component, candle=candle, detail=_snippet(block, exc.pos)) from None
    except RecursionError:
        raise ComponentError(f"JSON between {start_marker} and {end_marker} is nested too deeply",
                             component=component, candle=candle, detail=_snippet(block)) from None


def _invalid(exc: ValidationError, kind: Kind, block: str, *, component: str, candle: int) -> ComponentError:
    first = exc.errors()[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ComponentError(f"invalid {kind} output: {where or 'value'}: {message}{more}",
                          component=component, candle=candle, detail=_snippet(block))
