"""Script components: standalone Python files speaking the seed's env-var/stdout protocol.

A script reads ``CANDLE_DATA``, ``CURRENT_INDEX``... from ``os.environ`` and
prints one ``INDICATOR_START``/``INDICATOR_END`` or ``SIGNAL_START``/``SIGNAL_END``
block per candle (:mod:`.environment` lists the variables, :mod:`.protocol`
the output rules).  :func:`run_script_component` runs it once per candle in
forks of warm worker processes (:mod:`.pool`, :mod:`.worker`).

The public names are imported lazily, so a worker process, which imports
:mod:`.worker`, does not load the pool, pandas or pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from candleflow._lazy import lazy_getattr

_PUBLIC = {
    "run_script_component": "candleflow.components.script.runner",
    "get_pool": "candleflow.components.script.pool",
    "shutdown_pool": "candleflow.components.script.pool",
}
__all__ = ["run_script_component", "get_pool", "shutdown_pool"]

if TYPE_CHECKING:
    from candleflow.components.script.pool import get_pool, shutdown_pool
    from candleflow.components.script.runner import run_script_component


__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
