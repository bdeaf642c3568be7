"""Components: the registry, built-in indicators and signals, and script components.

The public names are imported lazily, so a script worker process, which
imports ``candleflow.components.script.worker``, does not load pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Component", "Registry", "describe", "indicator", "signal"]

if TYPE_CHECKING:
    from candleflow.components.registry import Component, Registry, describe, indicator, signal


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("candleflow.components.registry"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
