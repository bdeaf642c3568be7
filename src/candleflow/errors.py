"""User-facing errors.

Every mistake a user can make (a bad YAML field, a broken data file, a component
that crashes at candle 812) is raised as a :class:`CandleflowError`.  The CLI
prints ``str(error)`` as one line on stderr and exits with code 2; anything that
is not a ``CandleflowError`` is a bug in candleflow and keeps its traceback.

The message is built from *where* (file, YAML path, component, candle index)
and *what* (the message, plus an optional detail such as a stderr tail), so all
errors read alike:

>>> str(ConfigError("unknown indicator 'sma_200'", file="s.yaml", path="signals[0].inputs[1]"))
"s.yaml: signals[0].inputs[1]: unknown indicator 'sma_200'"

A fallback that lets the run go on (e.g. a damaged cache entry, recomputed) is not an
error but must not be silent: :func:`warn` issues a :class:`CandleflowWarning`, which
the CLI prints as one line ``warning: <where>: <what>`` on stderr.
"""

from __future__ import annotations

import warnings


class CandleflowError(Exception):
    """An error caused by user input; printed as one line, exit code 2."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        path: str | None = None,
        component: str | None = None,
        candle: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = None if file is None else str(file)
        self.path = path
        self.component = component
        self.candle = candle
        self.detail = detail

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.path:
            where.append(self.path)
        if self.component:
            where.append(f"component '{self.component}'")
        if self.candle is not None:
            where.append(f"candle {self.candle}")
        text = ": ".join(where + [self.message])
        if self.detail:
            text += f" ({_one_line(self.detail)})"
        return text


class ConfigError(CandleflowError):
    """The strategy YAML (or its template) is invalid."""


class DataError(CandleflowError):
    """The candle data file is missing or malformed."""


class CompileError(CandleflowError):
    """The strategy graph cannot be built (cycle, unknown component, dangling input)."""


class ComponentError(CandleflowError):
    """A component failed or produced invalid output while running."""


class OutputError(CandleflowError):
    """An output path cannot be written: wrong kind, under a file, read-only, or the disk is full."""


class CandleflowWarning(UserWarning):
    """Something the user should know about that did not stop the run (printed as one ``warning:`` line)."""


def warn(message: str) -> None:
    """Report a fallback; the caller decides how often (the CLI shows every one it receives)."""
    warnings.warn(message, CandleflowWarning, stacklevel=2)


def check_no_nul(path: object, what: str, error: type[CandleflowError] = ConfigError, **where: str) -> None:
    """Raise ``error`` if the path ``path`` holds a NUL byte, which no file name can (shown as ``\\0``)."""
    text = str(path)
    if "\0" in text:
        shown = text.replace("\0", "\\0")
        raise error(f"{what} '{shown}' contains a NUL byte", **where)


def _one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so a multi-line detail (stderr) fits on the error line."""
    flat = " | ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())
    return flat if len(flat) <= limit else "..." + flat[-limit:]
