"""A real Dask cluster for tests: a scheduler and N workers started with the distributed CLI on 127.0.0.1.

Every port, the HTTP (health) servers' included, is a free one on 127.0.0.1.

Each process gets its own session (process group), so :meth:`Cluster.stop` kills
each one with whatever it started, and never anything else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

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
