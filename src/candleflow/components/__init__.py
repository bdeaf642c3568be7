"""Components: the registry, built-in indicators and signals, and script components.

The public names are imported lazily, so a script worker process, which
imports ``candleflow.components.script.worker``, does not load pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from candleflow._lazy import lazy_getattr

__all__ = ["Component", "Registry", "describe", "indicator", "signal"]
_HOMES = {"Registry": "candleflow.components.registry"}  # the rest: candleflow.components.declare

if TYPE_CHECKING:
    from candleflow.components.declare import Component, describe, indicator, signal
    from candleflow.components.registry import Registry


__getattr__ = lazy_getattr(__name__, {name: _HOMES.get(name, "candleflow.components.declare") for name in __all__},
                           globals())
