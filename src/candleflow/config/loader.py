"""Load a strategy file: read text, render the jinja2 template, parse YAML, validate.

Every failure becomes a :class:`~candleflow.errors.ConfigError` naming the file
and the YAML path of the offending field (``signals[0].inputs[1]``), or the
template line for rendering errors.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from pydantic import ValidationError

from candleflow.config.models import Strategy
from candleflow.errors import ConfigError, check_no_nul


def load_strategy(path: str | Path, *, variables: Mapping[str, Any] | None = None) -> Strategy:
    """Read, render and validate the strategy at ``path``.

    ``variables`` fill a jinja2 template (``fast: {{ fast }}``); a plain YAML file
    renders to itself.
    """
    return read_strategy(path, variables=variables)[0]


def read_strategy(path: str | Path, *, variables: Mapping[str, Any] | None = None) -> tuple[Strategy, str]:
    """The strategy at ``path`` and its rendered text (rendered once)."""
    check_no_nul(path, "strategy path")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("strategy file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read strategy file: {exc}", file=str(path)) from None
    rendered = render_template(text, variables or {}, file=str(path))  # first: an undefined variable's line
    check_variables(text, variables or {}, file=str(path), where=lambda name: f"--set {name}")
    return parse_strategy(rendered, file=str(path)), rendered


def is_template(text: str) -> bool:
    """Whether ``text`` holds any jinja2 markup (a plain YAML file renders to itself)."""
    return "{{" in text or "{%" in text or "{#" in text


def template_variables(text: str) -> set[str] | None:
    """The variables the template ``text`` reads (``{{ fast }}``, ``{{ x | default(1) }}``); none for plain YAML.

    None for a syntax error: rendering reports it with its line.
    """
    if not is_template(text):
        return set()
    import jinja2  # templates only: see render_template
    from jinja2 import meta  # templates only: see render_template

    from candleflow.config.sandbox import bounded_environment  # imports jinja2: see render_template

    try:
        return set(meta.find_undeclared_variables(bounded_environment().parse(text)))
    except jinja2.TemplateSyntaxError:
        return None


def check_variables(text: str, variables: Mapping[str, Any], *, file: str, where: Callable[[str], str],
                    error_file: str | None = None) -> None:
    """Refuse a variable the strategy ``text`` never reads (``--set bogus=1``, a grid parameter): it would change
    nothing.  ``where(name)`` is the error's path (``--set fast``, ``parameters.fast``) in ``error_file``
    (default: the strategy's ``file``)."""
    if not variables:
        return
    used = template_variables(text)
    unused = [name for name in variables if used is not None and name not in used]
    if not unused:
        return
    strategy = "the strategy" if error_file is None else f"the strategy {file}"
    if not is_template(text):
        problem = f"{strategy} is not a template (no {{{{ ... }}}}), so '{unused[0]}' would change nothing"
    else:
        problem = (f"{strategy} never uses template variable '{unused[0]}' "
                   f"(it uses: {', '.join(sorted(used)) or 'none'})")
    raise ConfigError(problem, file=error_file or file, path=where(unused[0]))


def render_template(text: str, variables: Mapping[str, Any], *, file: str) -> str:
    """Render ``text`` as a strict jinja2 template (undefined variables are errors).

    The template runs in jinja2's sandbox: it can format values but not reach
    Python internals (``{{ lipsum.__globals__ }}`` is an error), so a strategy
    file never executes code, template or not; and its work is bounded
    (:mod:`candleflow.config.sandbox`): ``{{ 2**(2**40) }}`` is an error, not a hang.
    """
    if not is_template(text):
        return text
    import jinja2  # templates only: a plain strategy file never loads jinja2

    try:
        return _compiled_template(text).render(**variables)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template syntax error: {exc.message}", file=file, path=f"line {exc.lineno}") from None
    except jinja2.UndefinedError as exc:
        line = _template_line(exc)
        where = f"line {line}" if line else None
        if str(exc.message).endswith("is undefined"):
            raise ConfigError(f"template variable {exc.message}; pass it with --set NAME=VALUE or in the sweep grid",
                              file=file, path=where) from None
        raise ConfigError(f"template error: {exc.message}", file=file, path=where) from None
    except jinja2.TemplateError as exc:  # a sandbox violation, a filter failing at render time...
        line = _template_line(exc)
        raise ConfigError(f"template error: {exc}", file=file, path=f"line {line}" if line else None) from None
    except Exception as exc:  # an expression failing while rendering, e.g. {{ 1 / 0 }}
        line = _template_line(exc)
        raise ConfigError(f"template error: {type(exc).__name__}: {exc}", file=file,
                          path=f"line {line}" if line else None) from None


@functools.lru_cache(maxsize=64)
def _compiled_template(text: str):
    """The sandboxed, bounded, strict template for ``text``, compiled once (a sweep renders it per combination)."""
    from candleflow.config.sandbox import bounded_environment  # imports jinja2: see render_template

    return bounded_environment().from_string(text)


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
    raw = load_yaml(text, file=file)
    if raw is None:
        raise ConfigError("strategy file is empty", file=file)
    if not isinstance(raw, dict):
        raise ConfigError(f"top level must be a mapping, not {type(raw).__name__}", file=file)
    try:
        return Strategy.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, file=file) from None


def load_yaml(text: str, *, file: str) -> Any:
    """Parse one YAML document with :class:`StrictSafeLoader`; every failure is a ConfigError naming the line."""
    try:
        return yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass: builds no Python objects
    except DuplicateKeyError as exc:
        raise ConfigError(f"duplicate key '{exc.key}' (first at line {exc.first_line})", file=file,
                          path=f"line {exc.line}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        limit = isinstance(exc, YamlLimitError)
        if problem == "exceeded maximum nesting depth":  # PyYAML 6.0.4's libyaml stops at 1,000 levels deep while
            problem, limit = f"nested more than {MAX_DEPTH} levels deep", True  # scanning ahead of the composer
        prefix = "" if limit else "invalid YAML: "
        raise ConfigError(prefix + problem, file=file, path=where) from None


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


class YamlLimitError(yaml.MarkedYAMLError):
    """A YAML document over one of the bounds below (its ``problem`` says which, its mark where)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


MAX_INT_DIGITS = 4300  # Python's own limit for int <-> str (sys.int_info.default_max_str_digits)
MAX_ALIAS_VALUES = 100_000  # values that aliases (*name) may add to one document, in all
MAX_DEPTH = 100  # nesting levels of sequences and mappings


class _BoundedComposer(yaml.composer.Composer):
    """PyYAML's Python composer (libyaml's recurses in C and crashes on deep nesting), with bounds.

    State while a document is composed: the current nesting depth; for every
    finished node, how many values it holds once its aliases are expanded
    (1 + its children's, by ``id``); and how many values the aliases seen so far
    add.  An alias adds its node's expanded size in O(1), so a "billion laughs"
    document is refused at the first alias that crosses :data:`MAX_ALIAS_VALUES`,
    before anything walks the expanded structure; an alias to a collection still
    being composed (a recursive structure) has no size yet and is refused too.
    """

    def __init__(self) -> None:
        yaml.composer.Composer.__init__(self)
        self._depth = 0
        self._sizes: dict[int, int] = {}
        self._aliased = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event, parent, index)
        if isinstance(event, yaml.ScalarEvent):
            return super().compose_node(parent, index)  # one value (the size of anything not in _sizes)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlLimitError(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        children = node.value if isinstance(node, yaml.SequenceNode) else [part for pair in node.value for part in pair]
        self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        return node

    def _alias(self, event: Any, parent: Any, index: Any) -> Any:
        node = self.anchors.get(event.anchor)
        if node is not None:
            size = self._sizes.get(id(node))
            if size is None:
                raise YamlLimitError(f"alias *{event.anchor} is inside the collection it refers to "
                                     f"(a recursive structure)", event.start_mark)
            self._aliased += size
            if self._aliased > MAX_ALIAS_VALUES:
                raise YamlLimitError(f"aliases expand this document by more than {MAX_ALIAS_VALUES:,} values "
                                     f"(an alias bomb?); write the values out", event.start_mark)
        return super().compose_node(parent, index)  # an undefined alias: PyYAML's own error


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictSafeLoader(_BoundedComposer, _BaseLoader):
    """Safe YAML loading (libyaml's C parser when present) that rejects a key given twice in one mapping
    (YAML would keep the last silently), and bounds: integers of at most :data:`MAX_INT_DIGITS` digits,
    nesting and alias expansion (see :class:`_BoundedComposer`)."""

    def __init__(self, stream: Any) -> None:
        _BaseLoader.__init__(self, stream)
        _BoundedComposer.__init__(self)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *anchor' keys may be overridden
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, line, seen[key])
                    seen[key] = line
                except TypeError:  # unhashable key: the base class reports it
                    continue
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        try:
            value = super().construct_yaml_int(node)
        except ValueError:  # Python refuses int() of more than 4300 digits
            value = None
        if value is None or abs(value) >= _INT_BOUND:
            raise YamlLimitError(f"integer of {len(node.value):,} characters has more than {MAX_INT_DIGITS} digits; "
                                 f"write a smaller number (or quote it to make it a string)", node.start_mark)
        return value


_INT_BOUND = 10 ** MAX_INT_DIGITS
StrictSafeLoader.add_constructor("tag:yaml.org,2002:int", StrictSafeLoader.construct_yaml_int)


def validation_error(exc: ValidationError, *, file: str) -> ConfigError:
    """Turn a pydantic error into one ConfigError: the first problem, plus a count of the rest."""
    problems = [(format_loc(err["loc"]), _message(err)) for err in _merge_union_branches(exc.errors())]
    path, message = problems[0]
    if len(problems) > 1:
        others = "; ".join(f"{p}: {m}" for p, m in problems[1:4])
        more = f" (and {len(problems) - 1} more: {others}{'; ...' if len(problems) > 4 else ''})"
        message += more
    return ConfigError(message, file=file, path=path or None)


_TAG = re.compile(r"^(str|int|float|bool|none|[a-z][a-z-]*\[.*\])$")


def _is_tag(part: Any) -> bool:
    """pydantic's union-member / validator tags in an error location (``list[str]``, ``function-after[...]``)."""
    return isinstance(part, str) and bool(_TAG.match(part))


def format_loc(loc: tuple) -> str:
    """``('signals', 0, 'inputs', 1)`` -> ``signals[0].inputs[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _is_tag(part):
            continue  # pydantic union/validator tags, not YAML keys
        else:
            out += f".{part}" if out else str(part)
    return out


def _merge_union_branches(errors: list[dict]) -> list[dict]:
    """pydantic reports a failed union (``list[str] | dict[str, str]``) once per member.

    Keep the member that got furthest (an error inside the value), or, when every
    member rejected the value's type, one error: "Input should be a valid list or
    a valid dictionary".
    """
    out: list[Any] = []
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        tag = next((i for i, part in enumerate(loc) if _is_tag(part) and not str(part).startswith("function-")), None)
        if tag is None:
            out.append(err)
            continue
        if loc[:tag] not in groups:
            groups[loc[:tag]] = []
            out.append(loc[:tag])
        groups[loc[:tag]].append((tag, err))
    merged: list[dict] = []
    for item in out:
        if isinstance(item, dict):
            merged.append(item)
            continue
        members = groups[item]
        deeper = [err for tag, err in members if len(err["loc"]) > tag + 1]
        if deeper:
            merged.extend(deeper)
            continue
        messages = list(dict.fromkeys(err["msg"] for _, err in members))
        text = messages[0] + "".join(" or " + m.removeprefix("Input should be ") for m in messages[1:])
        merged.append({**members[0][1], "loc": item, "msg": text, "type": "union_type"})
    return merged


def _message(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see README for the schema)"
    if kind == "missing":
        return "required field missing"
    if kind == "model_type":  # "Input should be a valid dictionary or instance of DataSource"
        return f"expected a mapping (key: value pairs), got {err['input']!r}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind not in ("value_error",) and "input" in err and not isinstance(err["input"], (dict, list)):
        msg += f", got {err['input']!r}"
    return msg
