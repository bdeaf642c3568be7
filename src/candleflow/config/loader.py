"""Load a strategy file: read text, render the jinja2 template, parse YAML, validate.

Every failure becomes a :class:`~candleflow.errors.ConfigError` naming the file
and the YAML path of the offending field (``signals[0].inputs[1]``), or the
template line for rendering errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from candleflow.config.models import Strategy
from candleflow.errors import ConfigError


def load_strategy(path: str | Path, *, variables: Mapping[str, Any] | None = None) -> Strategy:
    """Read, render and validate the strategy at ``path``.

    ``variables`` fill a jinja2 template (``fast: {{ fast }}``); a plain YAML file
    renders to itself.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("strategy file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read strategy file: {exc}", file=str(path)) from None
    rendered = render_template(text, variables or {}, file=str(path))
    return parse_strategy(rendered, file=str(path))


def render_template(text: str, variables: Mapping[str, Any], *, file: str) -> str:
    """Render ``text`` as a strict jinja2 template (undefined variables are errors)."""
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return text
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        return env.from_string(text).render(**variables)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template syntax error: {exc.message}", file=file, path=f"line {exc.lineno}") from None
    except jinja2.UndefinedError as exc:
        line = _template_line(exc)
        where = f"line {line}" if line else None
        raise ConfigError(f"template variable {exc.message}; pass it with --set NAME=VALUE or in the sweep grid",
                          file=file, path=where) from None


def _template_line(exc: BaseException) -> int | None:
    """The template line an UndefinedError came from (jinja2 marks template frames)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def parse_strategy(text: str, *, file: str = "<strategy>") -> Strategy:
    """Parse YAML text and validate it into a :class:`Strategy`."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", file=file, path=where) from None
    if raw is None:
        raise ConfigError("strategy file is empty", file=file)
    if not isinstance(raw, dict):
        raise ConfigError(f"top level must be a mapping, not {type(raw).__name__}", file=file)
    try:
        return Strategy.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, file=file) from None


def validation_error(exc: ValidationError, *, file: str) -> ConfigError:
    """Turn a pydantic error into one ConfigError: the first problem, plus a count of the rest."""
    problems = [(format_loc(err["loc"]), _message(err)) for err in exc.errors()]
    path, message = problems[0]
    if len(problems) > 1:
        others = "; ".join(f"{p}: {m}" for p, m in problems[1:4])
        more = f" (and {len(problems) - 1} more: {others}{'; ...' if len(problems) > 4 else ''})"
        message += more
    return ConfigError(message, file=file, path=path or None)


def format_loc(loc: tuple) -> str:
    """``('signals', 0, 'inputs', 1)`` -> ``signals[0].inputs[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-after", "function-before", "literal[", "list[", "dict[", "str", "int")):
            continue  # pydantic union/validator tags, not YAML keys
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see README for the schema)"
    if kind == "missing":
        return "required field missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind not in ("value_error",) and "input" in err and not isinstance(err["input"], (dict, list)):
        msg += f", got {err['input']!r}"
    return msg
