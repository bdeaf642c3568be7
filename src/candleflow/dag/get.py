"""Where a graph runs: one ``get`` per Dask backend, all with the same contract.

``get(dsk, keys, on_result=...)`` computes ``keys`` of the dict graph ``dsk``
and returns their values in order; ``on_result(key, value)`` is called in the
calling thread as each task finishes (so the executor can time, count and
cache every node, also those that finished before a failure); the first task
error is raised as it is.  Backends, chosen by one ``--scheduler`` value:

=====================  =============================================================
``sync``               one thread, in order (``dask.local.get_sync``): for debugging
``threads``            a thread pool (``dask.threaded``): the default
``processes``          a local process pool (``dask.multiprocessing``): GIL-bound components
``tcp://HOST:PORT``    a running ``distributed`` scheduler (``dask scheduler`` + workers)
=====================  =============================================================

Script-component progress callbacks only reach the caller with ``sync`` and ``threads``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from dask.callbacks import Callback
from dask.local import get_sync
from dask.threaded import get as threaded_get

from candleflow.errors import CandleflowError, ConfigError

LOCAL = ("threads", "sync", "processes")
OnResult = Callable[[str, Any], None]


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if it names a backend, else a one-line ConfigError."""
    if scheduler in LOCAL or scheduler.startswith("tcp://"):
        return scheduler
    raise ConfigError(f"--scheduler must be threads, sync, processes or tcp://HOST:PORT, not '{scheduler}'")


def in_process(scheduler: str) -> bool:
    """True when tasks run in this process (they may then call back into it)."""
    return scheduler in ("threads", "sync")


def get(dsk: dict[str, Any], keys: list[str], *, scheduler: str = "threads", num_workers: int | None = None,
        on_result: OnResult | None = None) -> list[Any]:
    """Compute ``keys`` of ``dsk`` on ``scheduler``; see the module docstring."""
    check_scheduler(scheduler)
    if scheduler in LOCAL:
        return _get_local(dsk, keys, scheduler=scheduler, num_workers=num_workers, on_result=on_result)
    with connect(scheduler) as client:
        return get_distributed(client, dsk, keys, on_result=on_result)


def _get_local(dsk, keys, *, scheduler: str, num_workers: int | None, on_result: OnResult | None) -> list[Any]:
    callbacks = ()
    if on_result is not None:
        hook = Callback(posttask=lambda key, value, _dsk, _state, _worker: on_result(key, value))
        # get_async takes (start, start_state, pretask, posttask, finish) tuples, and explicit ones replace
        # the globally active callbacks (``with Callback():``), so keep those too
        callbacks = (*Callback.active, hook._callback)
    if scheduler == "sync":
        return get_sync(dsk, keys, callbacks=callbacks)
    if scheduler == "threads":
        return threaded_get(dsk, keys, num_workers=num_workers, callbacks=callbacks)
    from dask.multiprocessing import get as processes_get  # imports multiprocessing's pools: only for processes

    return processes_get(dsk, keys, num_workers=num_workers, callbacks=callbacks)


def get_distributed(client, dsk: dict[str, Any], keys: list[str], *, on_result: OnResult | None = None) -> list[Any]:
    """Compute ``keys`` on a ``distributed.Client``; results arrive in completion order, errors as raised."""
    from distributed import as_completed  # distributed takes ~0.5 s to import: only for a cluster

    futures = client.get(dsk, keys, sync=False)
    values: dict[str, Any] = {}
    try:
        for future in as_completed(futures, loop=client.loop):
            if future.status == "error":
                future.result()  # raises the task's own exception
            values[future.key] = future.result()
            if on_result is not None:
                on_result(future.key, values[future.key])
    finally:
        client.cancel([f for f in futures if not f.done()])
    return [values[key] for key in keys]


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A client of the running scheduler at ``address`` that has at least one worker."""
    from candleflow.dag.cluster import connect as connect_cluster  # see get_distributed

    with connect_cluster(scheduler=address) as client:
        yield client


__all__ = ["LOCAL", "CandleflowError", "check_scheduler", "connect", "get", "get_distributed", "in_process"]
