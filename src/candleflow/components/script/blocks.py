"""Finding the marked block in one candle's stdout: plain string work, run in the worker.

The first half of the output protocol (:mod:`.protocol` holds the whole of it
and re-exports these names): count the START and END markers; none of either
is "no block" (:class:`NoBlockError`), one START before one END is the block,
anything else is an error.  Only ``str`` methods are used, which a script
cannot patch, and nothing beyond the standard library is imported, so a
worker process stays small and fast to fork (see :mod:`.worker`).

>>> extract_block("warming\\nINDICATOR_START\\n{}\\nINDICATOR_END", "indicator", component="x", candle=0)
('{}', 'warming')
"""

from __future__ import annotations

from typing import Literal

from candleflow.errors import ComponentError

Kind = Literal["indicator", "signal"]
MARKERS: dict[str, tuple[str, str]] = {
    "indicator": ("INDICATOR_START", "INDICATOR_END"),
    "signal": ("SIGNAL_START", "SIGNAL_END"),
}
SNIPPET = 200  # characters of offending text quoted in an error's detail


class NoBlockError(ComponentError):
    """The candle's stdout holds no marked block at all (maybe still warming up)."""


def extract_block(stdout: str, kind: Kind, *, component: str, candle: int) -> tuple[str, str]:
    """Split stdout into (text between the markers, text outside them), both stripped."""
    start_marker, end_marker = MARKERS[kind]
    starts, ends = stdout.count(start_marker), stdout.count(end_marker)
    if starts == 0 and ends == 0:
        raise NoBlockError(f"printed no {start_marker}/{end_marker} block",
                           component=component, candle=candle, detail=stdout_tail(stdout))
    if starts > 1 or ends > 1:
        raise ComponentError(f"printed {max(starts, ends)} {start_marker}/{end_marker} blocks; expected one per candle",
                             component=component, candle=candle, detail=stdout_tail(stdout))
    start, end = stdout.find(start_marker), stdout.find(end_marker)
    if starts == 0 or ends == 0 or end < start:
        missing = end_marker if ends == 0 else start_marker
        raise ComponentError(f"{start_marker}/{end_marker} block without {missing}",
                             component=component, candle=candle, detail=stdout_tail(stdout))
    block = stdout[start + len(start_marker):end].strip()
    log = (stdout[:start].strip() + "\n" + stdout[end + len(end_marker):].strip()).strip()
    return block, log


def missing_block_error(kind: Kind, *, component: str, candle: int, stdout: str) -> ComponentError:
    """A candle printed no block although the candle before it did."""
    start_marker, end_marker = MARKERS[kind]
    return ComponentError(
        f"printed no {start_marker}/{end_marker} block after printing one on candle {candle - 1} "
        f"(only candles before a component's first block may lack one)",
        component=component, candle=candle, detail=f"stdout: {stdout_tail(stdout)}")


def never_printed_error(kind: Kind, *, component: str, n_candles: int, last_stdout: str) -> ComponentError:
    """The component printed no block on any candle of the run."""
    start_marker, end_marker = MARKERS[kind]
    return ComponentError(
        f"printed no {start_marker}/{end_marker} block on any of {n_candles} candles",
        component=component, candle=n_candles - 1, detail=f"last stdout: {stdout_tail(last_stdout)}")


def stdout_tail(text: str, limit: int = SNIPPET) -> str:
    """The last ``limit`` characters of ``text`` (``(empty)`` if blank), for error details."""
    text = text.strip()
    if not text:
        return "(empty)"
    return text if len(text) <= limit else "..." + text[-limit:]
