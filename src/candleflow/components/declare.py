"""Declaring components: plain typed Python functions (or small classes) turned into graph nodes.

A component is declared with :func:`indicator` or :func:`signal`.  Its
*positional* parameters are its data inputs (bound by name to candle columns,
``open high low close volume``, or, through the YAML ``inputs``, to other
nodes); its *keyword-only* parameters are its params, validated by pydantic
from their annotations and defaults:

>>> @indicator("my_sma")
... def my_sma(close, *, period: int = 20):
...     return close.rolling(period, min_periods=period).mean()
>>> describe(my_sma).inputs, list(describe(my_sma).params)
(('close',), ['period'])

Two execution modes:

* ``vectorized`` (a function): receives whole causal series, returns a series
  whose value at ``i`` may depend only on inputs ``0..i``;
* ``incremental`` (a class): ``__init__(**params)`` then ``update(*inputs_at_i)``
  once per candle, returning that candle's value(s); causal by construction.

Declaring only marks the object; :mod:`.registry` finds marked objects in
modules, so no global registry is mutated at import time.  The built-in
components import this module, and the registry imports them: no cycle.
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model

from candleflow.vocab import source_hash

MARK = "__candleflow_component__"
SOURCE_ATTR = "__candleflow_source__"  # set by the registry on workspace modules


@dataclass(frozen=True)
class Component:
    """What the compiler and executor need to know about one component."""

    name: str
    kind: Literal["indicator", "signal"]
    mode: Literal["vectorized", "incremental"]
    target: Callable[..., Any] = field(repr=False)
    inputs: tuple[str, ...]
    params: dict[str, inspect.Parameter] = field(repr=False)
    outputs: tuple[str, ...] | None = None
    signal_types: tuple[str, ...] | None = None
    levels: tuple[str, ...] = ()  # params that are levels on the inputs' scale (drawn on their report panels)
    origin: str = "builtin"
    source_hash: str = ""

    def validate_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Check params against the annotations; return them with defaults filled in.

        Raises ``ValueError`` with ``(param, message)`` pairs in ``args[0]``.
        """
        unknown = [key for key in values if key not in self.params]
        problems = [(key, f"unknown parameter; {self.name} takes: {', '.join(self.params) or 'no params'}")
                    for key in unknown]
        try:
            model = _params_model(self)(**{k: v for k, v in values.items() if k in self.params})
        except ValidationError as exc:
            for err in exc.errors():
                msg = err["msg"].removeprefix("Value error, ")
                problems.append((str(err["loc"][0]), f"{msg}, got {err.get('input')!r}"))
            model = None
        if problems:
            raise ValueError(problems)
        return model.model_dump()


_PARAM_MODELS: dict[Any, type[BaseModel]] = {}


def _params_model(component: Component) -> type[BaseModel]:
    """The pydantic model of ``component``'s params, built once per component."""
    model = _PARAM_MODELS.get(component.target)
    if model is None:
        model = _PARAM_MODELS[component.target] = _build_params_model(component)
    return model


def _build_params_model(component: Component) -> type[BaseModel]:
    """Lax (``5.0`` is a fine ``int``), but a number is never a boolean (``period: true`` is not period 1) and
    floats are finite (``.inf`` and ``.nan`` are refused)."""
    fields = {}
    for name, param in component.params.items():
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        if _unannotated(annotation) in (int, float, int | float):
            annotation = Annotated[annotation, BeforeValidator(_not_bool)]
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, default)
    config = ConfigDict(strict=False, extra="forbid", allow_inf_nan=False)
    return create_model(f"{component.name}_params", __config__=config, **fields)


def _unannotated(annotation: Any) -> Any:
    """``Annotated[int, Field(ge=1)]`` -> ``int``."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    return value


def indicator(name: str | None = None, *, outputs: tuple[str, ...] | None = None):
    """Declare an indicator component (function: vectorized; class: incremental)."""
    return _declare("indicator", name, outputs=outputs)


def signal(name: str | None = None, *, signal_types: tuple[str, ...] | None = None, levels: tuple[str, ...] = ()):
    """Declare a signal component; ``signal_types`` lets the compiler check the rules.

    ``levels`` names keyword params that are values on the scale of the signal's inputs (an RSI
    threshold): the report draws them as horizontal lines on those inputs' panels.
    """
    return _declare("signal", name, signal_types=signal_types, levels=tuple(levels))


def _declare(kind, name, **extra):
    def mark(target):
        setattr(target, MARK, dict(kind=kind, name=name or target.__name__, **extra))
        return target
    return mark


@functools.lru_cache(maxsize=None)
def describe(target: Callable[..., Any], *, origin: str = "builtin") -> Component:
    """Build the :class:`Component` for a decorated function or class (once per target)."""
    meta = getattr(target, MARK)
    if inspect.isclass(target):
        mode = "incremental"
        call = target.update
        inputs = tuple(p.name for p in _positional(call)[1:])  # drop self
        params = {p.name: p for p in inspect.signature(target.__init__, eval_str=True).parameters.values()
                  if p.kind is inspect.Parameter.KEYWORD_ONLY}
    else:
        mode = "vectorized"
        inputs = tuple(p.name for p in _positional(target))
        params = {p.name: p for p in inspect.signature(target, eval_str=True).parameters.values()
                  if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return Component(name=meta["name"], kind=meta["kind"], mode=mode, target=target, inputs=inputs,
                     params=params, outputs=meta.get("outputs"), signal_types=meta.get("signal_types"),
                     levels=_levels(meta, params), origin=origin, source_hash=_source_hash(target))


def _levels(meta: dict[str, Any], params: dict[str, inspect.Parameter]) -> tuple[str, ...]:
    """The declared ``levels``, each a keyword param (a level naming none would silently draw nothing)."""
    levels = tuple(meta.get("levels", ()))
    unknown = [level for level in levels if level not in params]
    if unknown:
        raise ValueError(f"{meta['kind']} '{meta['name']}': levels={unknown} name no keyword param "
                        f"(its params: {', '.join(params) or 'none'})")
    return levels


def _positional(func) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in inspect.signature(func).parameters.values() if p.kind in kinds]


def _source_hash(target) -> str:
    """Hash of the defining module's source: editing a component (or a helper beside it) invalidates its cache."""
    module = sys.modules.get(target.__module__)
    if getattr(module, SOURCE_ATTR, None):  # a workspace file: the hash of the bytes it was run from
        return getattr(module, SOURCE_ATTR)
    return source_hash(module or target)
