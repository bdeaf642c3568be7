"""The jinja2 sandbox strategy templates render in, with their work bounded.

jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` keeps a template away from
Python's internals, but not from unbounded work: ``{{ 2**(2**40) }}``,
``{{ 'a'*10**10 }}`` or two nested ``range(100000)`` loops run until memory or
patience runs out.  :class:`BoundedSandbox` adds, per render:

* **integers**: ``*`` and ``**`` refuse a result of more than
  :data:`MAX_INT_DIGITS` digits, judged from the operands' sizes before computing;
* **strings and lists**: whatever ``*``, ``+``, ``~``, ``%``, the padding, joining,
  replacing and formatting methods and filters would build is estimated first and
  refused above :data:`MAX_SIZE` characters or items; so is every ``{{ value }}``
  by the length of its text (sized without building it: ``[s] * 1000`` shares
  ``s``), and every call's and filter's result, every block of template text
  (macro bodies, ``{% set %}`` blocks) and the output as they are built;
* **loops**: every ``for`` iterable is wrapped, when the template is compiled, in
  a counter; all loops of a render may run :data:`MAX_ITERATIONS` iterations in
  all (macro calls count too), and ``range`` stays jinja2's, of at most 100,000 items;
* **time**, the backstop for whatever a template can still make slow with bounded
  values (comparing long strings in a long loop): at each iteration, call,
  operator or filter, a render past :data:`MAX_SECONDS` of wall time stops.

State: the current render's :class:`_Budget` (iterations left, deadline) lives in
a context variable that :meth:`BoundedTemplate.render` / ``generate`` set.  A bound
is reported by raising :class:`TemplateLimitError` (a jinja2 ``SecurityError``)
from inside the template's code, so the loader's message names the template line.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import jinja2
from jinja2 import nodes
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

MAX_INT_DIGITS = 4300  # Python's own limit for int <-> str
MAX_SIZE = 1_000_000  # characters or items of any string or list built, and of the output
MAX_ITERATIONS = 100_000  # loop iterations and macro calls, in all, per render
MAX_SECONDS = 10.0  # wall time per render


class TemplateLimitError(SecurityError):
    """A template went over one of the bounds above."""


@dataclass
class _Budget:
    iterations: int = MAX_ITERATIONS
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)

    def tick(self, iterations: int = 0) -> None:
        self.iterations -= iterations
        if self.iterations < 0:
            raise TemplateLimitError(f"loops and macro calls run more than {MAX_ITERATIONS:,} times in all")
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"rendering takes more than {MAX_SECONDS:g} s")


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("candleflow_template_budget")


def _budget() -> _Budget:
    budget = _BUDGET.get(None)
    return budget if budget is not None else _Budget()  # (only a macro called from Python renders unbudgeted)


class BoundedTemplate(jinja2.Template):
    """A template whose ``render`` and ``generate`` each run under a fresh :class:`_Budget`."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        return self.environment.concat(self.generate(*args, **kwargs))

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        token = _BUDGET.set(_Budget())
        try:
            yield from super().generate(*args, **kwargs)
        finally:
            _BUDGET.reset(token)


class BoundedSandbox(SandboxedEnvironment):
    """jinja2's sandbox with the bounds of this module (see the module docstring)."""

    template_class = BoundedTemplate
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):  # noqa: ANN001 - jinja2's
        if isinstance(source, str):
            source = self.parse(source, name, filename)
        source = _Rewrite().visit(source)
        source.set_environment(self)
        return super().compile(source, name, filename, raw, defer_init)

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """Join template text (the output, a macro's body, a ``{% set %}`` block), refusing it past MAX_SIZE."""
        out, size, budget = [], 0, _budget()
        for part in parts:
            size += len(part)
            if size > MAX_SIZE:
                raise TemplateLimitError(f"the rendered text is longer than {MAX_SIZE:,} characters")
            out.append(part)
            budget.tick()
        return "".join(out)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _budget().tick()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _budget().tick(1 if isinstance(__obj, (Macro, LoopContext)) else 0)  # a macro call may recurse
        if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop iterates again
            args = (_Counted(args[0]), *args[1:])
        args = _check_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (list, dict, set)):  # list.append / extend, dict.update... grew it in place
            _check_size(owner, f"{type(owner).__name__}.{getattr(__obj, '__name__', '?')}")
        return _check_size(result, getattr(__obj, "__name__", "a call"))

    @staticmethod
    def bounded_iter(iterable: Any) -> "_Counted":
        return _Counted(iterable)

    @staticmethod
    def bounded_join(*parts: Any) -> str:
        """``a ~ b ~ c``."""
        return "".join(_checked_parts(parts, "~"))


class _Counted:
    """An iterable that charges the render's budget one iteration per item."""

    def __init__(self, iterable: Any) -> None:
        self._iterable = iterable

    def __len__(self) -> int:
        return len(self._iterable)  # a TypeError for iterators: LoopContext then counts them itself

    def __iter__(self) -> Iterator[Any]:
        budget = _budget()
        for item in self._iterable:
            budget.tick(1)
            yield item


class _Rewrite(NodeTransformer):
    """Route every ``for`` iterable through ``bounded_iter`` and every ``~`` through ``bounded_join``."""

    def visit_For(self, node: nodes.For) -> nodes.For:  # noqa: N802 - NodeTransformer's naming
        node = self.generic_visit(node)
        node.iter = _environment_call("bounded_iter", [node.iter], node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:  # noqa: N802
        node = self.generic_visit(node)
        return _environment_call("bounded_join", node.nodes, node.lineno)


def _environment_call(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name, lineno=lineno), args, [], None, None, lineno=lineno)


# --- the checks ----------------------------------------------------------------------------------------------------

_INT_BOUND = 10 ** MAX_INT_DIGITS
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 24 else f"<{_digits(value)}-digit int>"
    return text if len(text) <= 30 else text[:27] + "..."


def _digits(value: int) -> int:
    return max(1, math.ceil(abs(value).bit_length() * math.log10(2)))


def _too_big(what: str) -> TemplateLimitError:
    return TemplateLimitError(f"{what} would be longer than {MAX_SIZE:,} characters or items")


def _text_size(value: Any, memo: dict[int, int] | None = None) -> int:
    """About ``len(str(value))``, found without building the text (which for ``[s] * 1000`` would be huge).

    A string inside a container counts four characters per character (escapes);
    each container is sized once (``memo``, by ``id``; one being sized counts as
    ``[...]``), so shared parts cost nothing to size again but count at every use.
    """
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bool, float, type(None))):
        return 32
    if isinstance(value, int):
        return _digits(value) + 1
    if not isinstance(value, (bytes, list, tuple, dict, set, frozenset)):
        return len(str(value))  # (a StrictUndefined raises here, as printing it would)
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    memo[id(value)] = 5
    if isinstance(value, bytes):
        size = 4 * len(value) + 3
    else:
        parts = value.items() if isinstance(value, dict) else ((item,) for item in value)
        size = 2
        for part in parts:
            size += sum(4 * len(x) + 4 if isinstance(x, str) else _text_size(x, memo) + 2 for x in part)
            if size > MAX_SIZE:
                break
    memo[id(value)] = size
    return size


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}``, before it is turned into text."""
    if _text_size(value) > MAX_SIZE:
        raise _too_big("{{ ... }}")
    return value


def _check_size(value: Any, what: str) -> Any:
    """``value`` itself, if it is within the bounds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) >= _INT_BOUND:
        raise TemplateLimitError(f"{what} gave an integer of more than {MAX_INT_DIGITS} digits")
    if isinstance(value, _SIZED) and len(value) > MAX_SIZE:
        raise _too_big(what)
    return value


def _check_binop(operator: str, left: Any, right: Any) -> None:
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**" and ints and right > 0 and abs(left) > 1:
        if right * math.log10(abs(left)) > MAX_INT_DIGITS:
            raise TemplateLimitError(f"{_short(left)} ** {_short(right)} would have more than {MAX_INT_DIGITS} digits")
    elif operator == "*" and ints:
        if _digits(left) + _digits(right) > MAX_INT_DIGITS + 1:
            raise TemplateLimitError(f"{_short(left)} * {_short(right)} would have more than {MAX_INT_DIGITS} digits")
    elif operator == "*":
        sequence, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sequence, _SIZED) and isinstance(count, int) and len(sequence) * count > MAX_SIZE:
            raise _too_big(f"{_short(sequence)} * {_short(count)}")
    elif operator == "+" and isinstance(left, _SIZED) and isinstance(right, _SIZED):
        if len(left) + len(right) > MAX_SIZE:
            raise _too_big("'+'")
    elif operator == "%" and isinstance(left, str):
        values = right if isinstance(right, tuple) else list(right.values()) if isinstance(right, dict) else [right]
        _check_format(left, values, "'%'")


def _check_format(fmt: str, values: list[Any], what: str) -> None:
    """Refuse ``fmt % values`` / ``fmt.format(*values)`` if an upper bound of its length is past MAX_SIZE.

    The bound: the format itself, every number in it taken as a width, and every
    field filled with the longest value; when widths come from the values
    (``%*d``, ``{:{}}``), every integer value counts as a width too.
    """
    numbers = re.findall(r"\d+", fmt)
    widths = sum(int(n) if len(n) <= 9 else MAX_SIZE + 1 for n in numbers)
    longest = max((_text_size(v) for v in values), default=0)
    fields = fmt.count("%") + fmt.count("{")
    if "*" in fmt or re.search(r"\{[^{}]*\{", fmt):
        widths += sum(v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0)
    if len(fmt) + widths + fields * longest > MAX_SIZE:
        raise _too_big(what)


def _materialized(iterable: Any, what: str) -> list[Any]:
    """``iterable`` as a list, refusing more than MAX_SIZE items (it may be a lazy ``map`` or ``select``)."""
    items = []
    for item in iterable:
        items.append(item)
        if len(items) > MAX_SIZE:
            raise _too_big(what)
    return items


def _checked_parts(parts: Iterable[Any], what: str) -> list[str]:
    memo: dict[int, int] = {}
    if sum(_text_size(part, memo) for part in parts) > MAX_SIZE:
        raise _too_big(what)
    return [str(part) for part in parts]


def _check_join(separator: str, items: list[Any], what: str) -> None:
    memo: dict[int, int] = {}
    if len(separator) * len(items) + sum(_text_size(item, memo) for item in items) > MAX_SIZE:
        raise _too_big(what)


def _check_replace(text: str, old: str, new: str, count: int | None, what: str) -> None:
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * max(0, len(new) - len(old)) > MAX_SIZE:
        raise _too_big(what)


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_SIZE:
        raise _too_big(what)


def _check_call(obj: Any, args: tuple, kwargs: dict) -> tuple:
    """Pre-check the str/bytes methods that can build far more than they are given; returns the arguments."""
    obj = getattr(obj, "__wrapped__", obj)  # the sandbox hands out str.format wrapped
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if obj is generate_lorem_ipsum:
        bound = inspect.signature(obj).bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.arguments["n"] * bound.arguments["max"] > MAX_SIZE // 10:
            raise _too_big("lipsum")
        return args
    if not isinstance(owner, (str, bytes)):
        return args
    what = f"{type(owner).__name__}.{name}"
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_width(args[0], what)
    elif name == "expandtabs":
        size = kwargs.get("tabsize", args[0] if args else 8)
        tabs = owner.count("\t" if isinstance(owner, str) else b"\t")
        if isinstance(size, int) and len(owner) + tabs * size > MAX_SIZE:
            raise _too_big(what)
    elif name == "join" and args:
        args = (_materialized(args[0], what), *args[1:])
        _check_join(owner, args[0], what)
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count"), what)
    elif name in ("format", "format_map"):
        values = list(args) + list(kwargs.values())
        if name == "format_map" and args and isinstance(args[0], dict):
            values = list(args[0].values())
        _check_format(str(owner), values, what)
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, (str, bytes))), default=1)
        if len(owner) * max(1, longest) > MAX_SIZE:
            raise _too_big(what)
    return args


def _check_filter(name: str, value: str, arguments: dict[str, Any]) -> None:
    """Pre-check the filters that can build far more than they are given.

    ``arguments`` are the filter's, by jinja2's parameter names; ``value`` names the
    filtered value among them.  ``join`` gets its value as a list, counted.
    """
    what = f"filter '{name}'"
    if name in ("string", "tojson", "pprint") and 2 * _text_size(arguments[value]) > MAX_SIZE:
        raise _too_big(what)
    if name == "center":
        _check_width(arguments["width"], what)
    elif name in ("batch", "slice"):
        _check_width(arguments["linecount" if name == "batch" else "slices"], what)
    elif name == "indent":
        width, text = arguments["width"], str(arguments["s"])
        step = width if isinstance(width, int) else len(str(width))
        if len(text) + (text.count("\n") + 1) * step > MAX_SIZE:
            raise _too_big(what)
    elif name == "join":
        arguments["value"] = _materialized(arguments["value"], what)
        _check_join(str(arguments["d"]), arguments["value"], what)
    elif name == "replace":
        _check_replace(str(arguments["s"]), str(arguments["old"]), str(arguments["new"]), arguments["count"], what)
    elif name == "format":
        _check_format(str(arguments["value"]), list(arguments["args"]) + list(arguments["kwargs"].values()), what)
    elif name == "wordwrap":
        wrap = arguments["wrapstring"] or "\n"
        if len(str(arguments["s"])) * (1 + len(wrap)) > MAX_SIZE and len(wrap) > 1:
            raise _too_big(what)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its arguments pre-checked and its result size-checked; keeps jinja2's pass_* marker."""
    inner = inspect.unwrap(func)  # jinja2's sync/async filters: the signature is the sync function's
    signature = inspect.signature(inner)
    own = 1 if getattr(inner, "jinja_pass_arg", None) else 0  # a context argument in that signature
    added = (1 if getattr(func, "jinja_pass_arg", None) else 0) - own  # one the wrapper takes and drops
    value = list(signature.parameters)[own]

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _budget().tick()
        bound = signature.bind(*args[added:], **kwargs)
        bound.apply_defaults()
        _check_filter(name, value, bound.arguments)
        return _check_size(func(*args[:added], *bound.args, **bound.kwargs), f"filter '{name}'")

    return bounded


@functools.lru_cache(maxsize=1)
def bounded_environment() -> BoundedSandbox:
    """The one environment strategy templates are compiled in: sandboxed, bounded, strict about undefined names."""
    return BoundedSandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, finalize=_finalize)
