"""Parameter sweeps and multi-symbol runs on Dask.

>>> from candleflow.sweep import run_sweep                                      # doctest: +SKIP
>>> run_sweep("strategies/ma_crossover_sweep.yaml", "strategies/grid.yaml", workers=2).frame.head()  # doctest: +SKIP

Modules: :mod:`~candleflow.sweep.grid` (the spec and its combinations),
:mod:`~candleflow.sweep.plan` (every combination's build merged into one
content-keyed Dask graph, see :mod:`candleflow.dag.build`), :mod:`~candleflow.sweep.run`
(submit on :mod:`candleflow.dag.cluster`, collect, rank),
:mod:`~candleflow.sweep.output` and :mod:`~candleflow.sweep.display` (file and terminal).
"""

from candleflow.sweep.grid import Combination, SweepSpec, combinations, load_grid
from candleflow.sweep.run import SchedulerLost, SweepResult, run_sweep

__all__ = ["Combination", "SchedulerLost", "SweepResult", "SweepSpec", "combinations", "load_grid", "run_sweep"]
