"""Script components: standalone Python files speaking the seed's env-var/stdout protocol.

A script reads ``CANDLE_DATA``, ``CURRENT_INDEX``... from ``os.environ`` and
prints one ``INDICATOR_START``/``INDICATOR_END`` or ``SIGNAL_START``/``SIGNAL_END``
block per candle (:mod:`.environment` lists the variables, :mod:`.protocol`
the output rules).  :func:`run_script_component` runs it once per candle in
warm worker processes (:mod:`.pool`, :mod:`.worker`).
"""

from candleflow.components.script.pool import get_pool, shutdown_pool
from candleflow.components.script.runner import run_script_component

__all__ = ["run_script_component", "get_pool", "shutdown_pool"]
