"""A real Dask cluster for tests: a scheduler and N workers started with the distributed CLI on 127.0.0.1.

Every port, the HTTP (health) servers' included, is a free one on 127.0.0.1.

Each process gets its own session (process group), so :meth:`Cluster.stop` kills
each one with whatever it started, and never anything else.

:func:`kill_when_left` is the fault injector: a thread with its own client polls
the scheduler and, once only ``left`` of a sweep's tasks are still to compute,
SIGKILLs a worker (the one holding the most results) or the scheduler.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

START_TIMEOUT = 60.0


@dataclass
class Cluster:
    address: str
    folder: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is still alive after 3 s."""
        for process in reversed(self.processes):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for process in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # also whatever the process started in its group
            process.wait()

    @property
    def scheduler_pid(self) -> int:
        return self.processes[0].pid

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.folder.glob("*.log")))


def start_cluster(folder: Path, *, workers: int = 2) -> Cluster:
    """Start ``dask scheduler`` and ``workers`` x ``dask worker`` (1 thread, no nanny); wait until all joined.

    Without a nanny a killed worker stays dead, so a fault test shows the sweep finishing on the survivors.
    """
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    cluster = Cluster(address="", folder=folder)
    try:
        cluster.processes.append(_spawn(folder, "scheduler", [
            "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)]))
        cluster.address = _wait_for_address(scheduler_file, cluster.processes[0])
        for i in range(workers):
            cluster.processes.append(_spawn(folder, f"worker{i}", [
                "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                "--nthreads", "1", "--no-nanny", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                "--name", f"worker{i}",
                "--local-directory", str(folder / f"worker{i}")]))
        with Client(cluster.address, timeout=START_TIMEOUT, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _spawn(folder: Path, name: str, args: list[str]) -> subprocess.Popen:
    log = open(folder / f"{name}.log", "wb")
    with log:
        return subprocess.Popen([sys.executable, "-m", *args], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_for_address(scheduler_file: Path, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {process.returncode}")
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)
    raise TimeoutError(f"dask scheduler wrote no {scheduler_file} in {START_TIMEOUT:.0f} s")


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # start_new_session: the group id is the leader's pid
    except ProcessLookupError:
        pass


@dataclass
class Kill:
    """What :func:`kill_when_left` did: how many tasks were left when it killed, and which pid."""

    left: int | None = None
    pid: int | None = None
    error: BaseException | None = None


@contextlib.contextmanager
def kill_when_left(cluster: Cluster, *, total: int, left: int, target: Literal["worker", "scheduler"],
                   prefix: str = "metrics-") -> Iterator[Kill]:
    """SIGKILL ``target`` once ``1 <= n <= left`` of the ``total`` tasks named ``prefix...`` are not computed.

    A task counts as computed once it is in memory or, after being seen, forgotten (its
    result gathered and released).  Polls every 20 ms; the caller checks ``Kill.left``.
    """
    kill = Kill()
    stop = threading.Event()
    thread = threading.Thread(target=_watch, args=(cluster, total, left, target, prefix, kill, stop), daemon=True)
    thread.start()
    try:
        yield kill
    finally:
        stop.set()
        thread.join(timeout=30)
    if kill.error is not None:
        raise kill.error


def _watch(cluster: Cluster, total: int, left: int, target: str, prefix: str, kill: Kill,
           stop: threading.Event) -> None:
    from distributed import Client

    def states(prefix, dask_scheduler=None):  # runs on the scheduler (a local function travels by value)
        return {k: ts.state for k, ts in dask_scheduler.tasks.items() if str(k).startswith(prefix)}

    def fullest(dask_scheduler=None):
        return max(dask_scheduler.workers.values(), key=lambda ws: (len(ws.has_what), len(ws.processing))).address

    seen: set[str] = set()
    computed: set[str] = set()
    try:
        with Client(cluster.address, timeout=START_TIMEOUT, set_as_default=False) as client:
            while not stop.is_set():
                now = client.run_on_scheduler(states, prefix)
                seen |= now.keys()
                computed |= {k for k, state in now.items() if state == "memory"} | (seen - now.keys())
                to_go = total - len(computed)
                if len(seen) == total and 1 <= to_go <= left:
                    if target == "scheduler":
                        kill.pid = cluster.scheduler_pid
                    else:
                        worker = client.run_on_scheduler(fullest)
                        kill.pid = client.run(os.getpid, workers=[worker])[worker]
                    os.kill(kill.pid, signal.SIGKILL)
                    kill.left = to_go
                    return
                stop.wait(0.02)
    except BaseException as exc:  # reported by kill_when_left in the test's thread
        kill.error = exc
