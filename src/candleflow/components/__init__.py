"""Components: the registry, built-in indicators and signals, and script components.

The public names are imported lazily, so a script worker process, which
imports ``candleflow.components.script.worker``, does not load pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Component", "Registry", "describe", "indicator", "signal"]
_HOMES = {"Registry": "candleflow.components.registry"}  # the rest: candleflow.components.declare

if TYPE_CHECKING:
    from candleflow.components.declare import Component, describe, indicator, signal
    from candleflow.components.registry import Registry


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = _HOMES.get(name, "candleflow.components.declare")
        value = getattr(importlib.import_module(module), name)  # lazy: see the module docstring
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
