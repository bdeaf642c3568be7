"""Components: plain typed Python functions (or small classes) turned into graph nodes.

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

Components are found by scanning modules for decorated objects, so no global
registry is mutated at import time: :class:`Registry` holds what a run uses.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from candleflow.errors import CompileError

CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
_MARK = "__candleflow_component__"


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
    fields = {}
    for name, param in component.params.items():
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, default)
    return create_model(f"{component.name}_params", __config__=ConfigDict(strict=False, extra="forbid"), **fields)


def indicator(name: str | None = None, *, outputs: tuple[str, ...] | None = None):
    """Declare an indicator component (function: vectorized; class: incremental)."""
    return _declare("indicator", name, outputs=outputs)


def signal(name: str | None = None, *, signal_types: tuple[str, ...] | None = None):
    """Declare a signal component; ``signal_types`` lets the compiler check the rules."""
    return _declare("signal", name, signal_types=signal_types)


def _declare(kind, name, **extra):
    def mark(target):
        setattr(target, _MARK, dict(kind=kind, name=name or target.__name__, **extra))
        return target
    return mark


@functools.lru_cache(maxsize=None)
def describe(target: Callable[..., Any], *, origin: str = "builtin") -> Component:
    """Build the :class:`Component` for a decorated function or class (once per target)."""
    meta = getattr(target, _MARK)
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
                     origin=origin, source_hash=_source_hash(target))


def _positional(func) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in inspect.signature(func).parameters.values() if p.kind in kinds]


def _source_hash(target) -> str:
    """Hash of the defining module's source: editing a component (or a helper beside it) invalidates its cache."""
    module = sys.modules.get(target.__module__)
    try:
        source = inspect.getsource(module) if module else inspect.getsource(target)
    except (OSError, TypeError):
        source = target.__qualname__
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class Registry:
    """Components by name: the built-ins plus those found in workspace folders."""

    def __init__(self) -> None:
        self._components: dict[str, Component] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._components

    def __getitem__(self, name: str) -> Component:
        return self._components[name]

    def names(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, c in self._components.items() if kind is None or c.kind == kind)

    def add(self, component: Component) -> None:
        previous = self._components.get(component.name)
        if previous is not None and previous.target is not component.target:
            raise CompileError(f"component '{component.name}' is defined twice: in {previous.origin} and in "
                               f"{component.origin}; rename one")
        self._components[component.name] = component

    def add_module(self, module: ModuleType, *, origin: str) -> None:
        for value in vars(module).values():
            if hasattr(value, _MARK) and getattr(value, "__module__", None) == module.__name__:
                self.add(describe(value, origin=origin))

    def add_folder(self, folder: Path, *, root: Path | None = None) -> None:
        """Import every ``.py`` under ``folder`` that declares components.

        Files without a candleflow declaration (e.g. script components, which run
        top-level code) are never imported.  Every file and subfolder must resolve
        inside ``root`` (the workspace; default: ``folder`` itself), see :func:`component_files`.
        """
        if not folder.is_dir():
            raise CompileError(f"components folder not found: {folder}")
        for path in component_files(folder, root=root):
            if declares_components(path):
                self.add_module(_import_file(path), origin=str(path))

    @classmethod
    def default(cls, folders: list[Path] = (), *, workspace: Path | None = None) -> "Registry":
        """The built-ins plus ``folders``; those inside ``workspace`` must not link out of it."""
        from candleflow.components import indicators, signals

        registry = cls()
        registry.add_module(indicators, origin="builtin")
        registry.add_module(signals, origin="builtin")
        for folder in folders:
            inside = workspace is not None and _inside(folder.resolve(), workspace.resolve())
            registry.add_folder(folder, root=workspace if inside else None)
        return registry


def component_files(folder: Path, *, root: Path | None = None) -> list[Path]:
    """Every ``.py`` file under ``folder``, sorted, each resolved through its symlinks.

    A depth-first walk that resolves every ``.py`` file and folder it meets: a
    symlink among them that leads outside ``root`` (default: ``folder``) is a
    CompileError naming the link, relative to ``root``, and never its target; one
    that stays inside is followed (each real folder is walked once, so link loops
    end).  Nothing found is read or run here.
    """
    boundary = f"the workspace {root.resolve()}" if root is not None else f"the components folder {folder}"
    root = (root or folder).resolve()
    files: set[Path] = set()
    walked: set[Path] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        real = current.resolve()
        if real in walked:
            continue
        walked.add(real)
        for entry in sorted(current.iterdir()):
            if entry.suffix != ".py" and not entry.is_dir():
                continue  # not a component file: a data file or a dangling link is none of our business
            target = _real(entry, root, boundary) if entry.is_symlink() else entry.resolve()
            if target.is_dir():
                stack.append(entry)
            elif target.is_file():
                files.add(target)
    return sorted(files)


def _real(link: Path, root: Path, boundary: str) -> Path:
    """Where the symlink ``link`` leads; a CompileError naming the link if that is outside ``root``."""
    shown = _shown(link, root)
    try:
        target = link.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise CompileError(f"symlink cannot be resolved (a loop?) in {boundary}", file=shown) from None
    if not _inside(target, root):
        raise CompileError(f"symlink leads outside {boundary}; component files and folders must stay inside it",
                           file=shown)
    return target


def _shown(link: Path, root: Path) -> str:
    """``link`` as the user knows it: relative to ``root`` when it lies (unresolved) under it."""
    parent = link.parent.resolve()
    return str((parent / link.name).relative_to(root)) if _inside(parent, root) else str(link)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def declares_components(path: Path) -> bool:
    """True if the file uses ``@indicator``/``@signal`` (a static check, nothing is run)."""
    stat = path.stat()
    return _declares_components(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1024)
def _declares_components(path: Path, mtime_ns: int, size: int) -> bool:
    """``declares_components`` for one version of a file (keyed by its mtime and size)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise CompileError(f"cannot parse component file: {exc}", file=str(path)) from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if name in ("indicator", "signal"):
                    return True
    return False


def _import_file(path: Path) -> ModuleType:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"candleflow_workspace.{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise CompileError(f"importing component file failed: {type(exc).__name__}: {exc}", file=str(path)) from None
    import cloudpickle  # a dask dependency

    cloudpickle.register_pickle_by_value(module)  # so dask.distributed ships workspace code to remote workers
    return module
