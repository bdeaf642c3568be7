"""The component registry: which components a run can use, by name.

Built-in components (:mod:`.indicators`, :mod:`.signals`) and those in workspace
folders (any ``.py`` that uses ``@indicator``/``@signal``, see :mod:`.declare`)
are collected into a :class:`Registry` per compile.

Components are found by scanning modules for decorated objects, so no global
registry is mutated at import time: :class:`Registry` holds what a run uses.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from candleflow.components import indicators, signals
from candleflow.components.declare import MARK, SOURCE_ATTR, Component, describe, indicator, signal
from candleflow.errors import CompileError

__all__ = ["Component", "Registry", "declares_components", "describe", "indicator", "signal"]


class Registry:
    """Components by name: the built-ins plus those found in workspace folders."""

    def __init__(self) -> None:
        self._components: dict[str, Component] = {}
        self.folders: list[Path] = []  # the component folders read, in order (none: built-ins only)

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
            if hasattr(value, MARK) and getattr(value, "__module__", None) == module.__name__:
                try:
                    component = describe(value, origin=origin)
                except ValueError as exc:  # a declaration that contradicts its function's signature
                    raise CompileError(f"{exc} ({origin})") from None
                self.add(component)

    def add_folder(self, folder: Path, *, root: Path | None = None) -> None:
        """Import every ``.py`` under ``folder`` that declares components.

        Files without a candleflow declaration (e.g. script components, which run
        top-level code) are never imported.  Every file and subfolder must resolve
        inside ``root`` (the workspace; default: ``folder`` itself), see :func:`component_files`.
        """
        if not folder.is_dir():
            raise CompileError(f"components folder not found: {folder}")
        self.folders.append(folder)
        for path in component_files(folder, root=root):
            if declares_components(path):
                self.add_module(_import_file(path), origin=str(path))

    @classmethod
    def default(cls, folders: list[Path] = (), *, workspace: Path | None = None) -> "Registry":
        """The built-ins plus ``folders``; those inside ``workspace`` must not link out of it."""
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


class _BytesLoader(importlib.machinery.SourceFileLoader):
    """Runs the exact bytes that were hashed, not whatever the file holds a moment later."""

    def __init__(self, fullname: str, path: str, data: bytes) -> None:
        super().__init__(fullname, path)
        self._data = data

    def get_data(self, path: str) -> bytes:
        return self._data if path == self.path else super().get_data(path)

    def path_stats(self, path: str):
        raise OSError("no bytecode cache for workspace components")  # always compile the bytes above


def _import_file(path: Path) -> ModuleType:
    """Import a workspace component file, again whenever its bytes change (also within one process).

    The module's ``SOURCE_ATTR`` holds the hash of the bytes it was executed from, which
    becomes its components' source hash, so an edited component never reuses stale memo keys.
    """
    data = path.read_bytes()
    source = hashlib.sha256(data).hexdigest()[:16]
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"candleflow_workspace.{path.stem}_{digest}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, SOURCE_ATTR, None) == source:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, path, loader=_BytesLoader(module_name, str(path), data))
    module = importlib.util.module_from_spec(spec)
    setattr(module, SOURCE_ATTR, source)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise CompileError(f"importing component file failed: {type(exc).__name__}: {exc}", file=str(path)) from None
    import cloudpickle  # a dask dependency

    cloudpickle.register_pickle_by_value(module)  # so dask.distributed ships workspace code to remote workers
    return module
