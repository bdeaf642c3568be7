"""Where a graph runs remotely: an embedded ``distributed.LocalCluster``, or a running scheduler.

:func:`connect` yields a ``distributed.Client`` and closes everything it opened.
The embedded cluster runs one single-threaded worker process per requested
worker (components need not be thread-safe; no GIL is shared), listens on
127.0.0.1 only, has no dashboard and stays quiet (shutdown races log tracebacks
at ERROR level; task errors reach the sweep through its futures).  Its workers
are not daemonic, so script components can start their own processes.

A given scheduler is used as it is, once it has a worker; its workers need
candleflow installed (workspace components travel with the tasks) and, for
script components, ``DASK_DISTRIBUTED__WORKER__DAEMON=False`` when run under a nanny.

While the client lives (its closing included), distributed's logging in this
process is raised to CRITICAL: a lost scheduler or worker otherwise prints pages
of reconnection tracebacks.  What matters reaches the sweep through its futures
(task errors, cancellations) and is reported by :mod:`~candleflow.sweep.run`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Iterator

import dask

from candleflow.errors import CandleflowError, ConfigError

CONNECT_TIMEOUT = 10.0
WORKERS_TIMEOUT = 60.0

if TYPE_CHECKING:
    from distributed import Client


@contextlib.contextmanager
def connect(*, scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a new local cluster of ``workers`` processes."""
    from distributed import Client, LocalCluster  # distributed takes ~0.5 s to import: only for a cluster

    if scheduler is None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(quiet_logs())
            stack.enter_context(dask.config.set({"distributed.worker.daemon": False}))  # also for restarts
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=logging.CRITICAL,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}))  # its health endpoint: any free local port
            yield stack.enter_context(Client(cluster, set_as_default=False))
        return
    if workers is not None:
        raise ConfigError(f"--workers sizes the embedded cluster; the scheduler at {scheduler} has its own workers")
    from distributed.comm.addressing import parse_address, parse_host_port  # see above

    try:
        parse_host_port(parse_address(scheduler)[1])
    except ValueError as exc:
        raise ConfigError(f"--scheduler expects tcp://HOST:PORT, got '{scheduler}' ({exc})") from None
    with quiet_logs():
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise CandleflowError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
            except TimeoutError:
                raise CandleflowError(f"the Dask scheduler at {scheduler} has no workers "
                                      f"(waited {WORKERS_TIMEOUT:.0f} s)") from None
            yield client


@contextlib.contextmanager
def quiet_logs(level: int = logging.CRITICAL) -> Iterator[None]:
    """Raise the level of distributed's loggers (and of tornado's and asyncio's) in this process, then restore it."""
    names = ["distributed", "tornado", "asyncio"]
    names += [name for name in logging.root.manager.loggerDict if name.startswith(("distributed.", "tornado."))]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, levels):
            logger.setLevel(old)
