"""Lazy public names for a package's ``__init__``: each name's module is imported on first use.

Used where a light process must not pay for heavy imports it never uses: a script
worker imports ``candleflow.components.script.worker`` and must not load pandas,
pydantic, Dask or networkx through the packages above it.

>>> __getattr__ = lazy_getattr("pkg", {"dumps": "json"}, {})
>>> __getattr__("dumps")("x")
'"x"'
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, homes: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``homes[name]`` on first use and caches the name in ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            value = getattr(importlib.import_module(homes[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
