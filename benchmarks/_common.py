"""Helpers shared by the benchmark scripts (``peers.py``, ``scale.py``, ``cache.py``).

Nothing here is timed itself; it builds the benchmark strategy, times callables
(best of N), measures memory and counts what Dask actually ran.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent

# Measure the candleflow next to these scripts, whatever an editable install points at; child
# processes (scale.py's sizes, import timings) inherit it through PYTHONPATH.
if (REPO / "src" / "candleflow").is_dir():
    sys.path.insert(0, str(REPO / "src"))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
SEED = 7  # generate_candles(n, seed=SEED): the same candles on every machine
INITIAL_CASH = 100_000.0
COMMISSION = 0.001  # 0.1 % of notional per side
FAST, SLOW = 20, 50

# The benchmark strategy: SMA(20/50) crossover, long only, all in, next-open fills, no spread,
# slippage or stops.  The peers (backtesting.py, backtrader, vectorbt) implement exactly this.
STRATEGY_YAML = """\
name: sma_crossover_bench
symbol: SYNTH
timeframe: 1h
data: {{sample: eurusd_1h}}    # replaced by the benchmark's candles (run_backtest(data=...))
indicators:
  - {{name: sma_fast, component: sma, params: {{period: {fast}}}}}
  - {{name: sma_slow, component: sma, params: {{period: {slow}}}}}
signals:
  - {{name: cross, component: ma_crossover, inputs: [sma_fast, sma_slow]}}
rules:
  entry: {{golden_cross: buy}}
  exit: {{death_cross: close}}
execution: {{fill: next_open, commission: {commission}, spread: 0.0, slippage: 0.0}}
sizing: {{method: fraction, value: 1.0}}
risk: {{allow_short: false}}
initial_cash: {cash}
"""


def write_strategy(folder: Path, *, commission: float = COMMISSION, name: str = "strategy.yaml") -> Path:
    """Write the benchmark strategy into ``folder`` (its own workspace) and return the file."""
    path = Path(folder) / name
    path.write_text(STRATEGY_YAML.format(fast=FAST, slow=SLOW, commission=commission, cash=INITIAL_CASH),
                    encoding="utf-8")
    return path


def workspace() -> tempfile.TemporaryDirectory:
    """A temporary folder to hold benchmark strategy files and on-disk caches."""
    return tempfile.TemporaryDirectory(prefix="candleflow-bench-")


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """Call ``fn`` ``repeat`` times; return (best seconds, all seconds, last result)."""
    times, result = [], None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), times, result


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def import_seconds(module: str) -> float:
    """Seconds to import ``module`` in a fresh interpreter (interpreter start-up excluded)."""
    import subprocess

    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB, as ``getrusage(RUSAGE_SELF)`` reports it.

    On Linux this counts from before ``exec``: a child started by a big parent inherits
    the parent's peak.  :func:`hwm_rss_mb` does not.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def hwm_rss_mb() -> float:
    """Peak RSS of this process image (Linux ``VmHWM``, reset by ``exec``), in MiB; else :func:`peak_rss_mb`."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def fmt_s(seconds: float) -> str:
    if seconds != seconds:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:7.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:7.1f} ms"
    return f"{seconds:7.2f} s "


def environment() -> str:
    """One line naming the machine and library versions, printed above every benchmark."""
    import dask
    import numpy
    import pandas

    coretype = os.environ.get("OPENBLAS_CORETYPE")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"python {platform.python_version()}, numpy {numpy.__version__}, pandas {pandas.__version__}, "
            f"dask {dask.__version__}; {os.cpu_count()} CPUs, {platform.machine()}, load average {load}; "
            f"OPENBLAS_CORETYPE={coretype if coretype is not None else '(unset)'}")


def base_parser(description: str, *, candles: int | None = 8760, repeat: int = 5) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    if candles is not None:
        parser.add_argument("--candles", type=int, default=candles,
                            help=f"number of hourly candles (default {candles})")
    parser.add_argument("--repeat", type=int, default=repeat,
                        help=f"timed repeats; the best is reported (default {repeat})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"generate_candles seed (default {SEED})")
    return parser


@dataclass
class NodeClock:
    """``on_node_done`` hook: records when each node's task ran (start = end - its own seconds)."""

    intervals: list[tuple[float, float]] = field(default_factory=list)
    stats: list[Any] = field(default_factory=list)

    def __call__(self, stats) -> None:
        end = time.perf_counter()
        self.stats.append(stats)
        if stats.cache != "hit":
            self.intervals.append((end - stats.seconds, end))

    def busy(self) -> float:
        """Wall time during which at least one node's own code was running (overlaps merged)."""
        total, last_end = 0.0, -1e300
        for start, end in sorted(self.intervals):
            if end <= last_end:
                continue
            total += end - max(start, last_end)
            last_end = end
        return total

    def node_seconds(self) -> float:
        return sum(end - start for start, end in self.intervals)


def dask_task_counter():
    """A Dask callback counting the tasks the scheduler ran (``.tasks``) and the graph's keys (``.keys``)."""
    from dask.callbacks import Callback

    class Counter(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.tasks = 0
            self.keys = 0

        def _start_state(self, dsk, state) -> None:
            self.keys += len(dsk)

        def _posttask(self, key, result, dsk, state, worker_id) -> None:
            self.tasks += 1

    return Counter()


def scheduler_overhead(compiled, candles, *, repeat: int = 5, scheduler: str = "threads") -> dict[str, float]:
    """Best-of-``repeat`` cold ``run_compiled`` split into node time and everything else.

    ``overhead`` = wall time of ``run_compiled`` minus the time some node's own code was
    running: content hashing of the candles and keys (``hashing``, timed on its own),
    building the Dask graph, the scheduler's bookkeeping and thread hand-offs, the cache
    writes.
    """
    from candleflow.backtest import run_compiled
    from candleflow.dag.cache import NodeCache

    best = None
    for _ in range(max(1, repeat)):
        clock, counter = NodeClock(), dask_task_counter()
        with counter:
            started = time.perf_counter()
            run_compiled(compiled, candles, cache=NodeCache(), scheduler=scheduler, on_node_done=clock)
            wall = time.perf_counter() - started
        row = dict(wall=wall, busy=clock.busy(), node_seconds=clock.node_seconds(), overhead=wall - clock.busy(),
                   tasks=counter.tasks, keys=counter.keys, nodes=len(clock.stats))
        if best is None or row["wall"] < best["wall"]:
            best = row
    best["hashing"] = hashing_seconds(compiled, candles, repeat=repeat)
    return best


def hashing_seconds(compiled, candles, *, repeat: int = 5) -> float:
    """Best time of what ``execute`` does before scheduling: hash the candles, key every node."""
    from dask.base import tokenize

    from candleflow.dag.executor import node_keys

    return best_of(lambda: node_keys(compiled, f"candles-{tokenize(candles)}"), repeat)[0]


def compare_with_plain(other_yaml: str, name: str, *, candles: int, repeat: int, seed: int):
    """End-to-end ``run_backtest`` times of the benchmark strategy ("plain") and ``other_yaml`` on the same
    candles, each with a fresh in-memory cache, alternating so a load spike hits both; both warmed up first.

    Returns ``(best seconds by name, last result by name)``.
    """
    from candleflow import NodeCache, run_backtest  # after environment() is printed, like the other scripts
    from candleflow.data import generate_candles

    data = generate_candles(candles, seed=seed)
    tmp = workspace()
    folder = Path(tmp.name)
    paths = {"plain": write_strategy(folder), name: folder / f"{name}.yaml"}
    paths[name].write_text(other_yaml, encoding="utf-8")
    best = dict.fromkeys(paths, float("inf"))
    results = {}
    for path in paths.values():  # untimed: the first simulation in a process loads the compiled kernel
        run_backtest(path, data=data.iloc[:500], cache=NodeCache(), workspace=folder)
    for _ in range(max(1, repeat)):
        for label, path in paths.items():
            seconds, result = timed(lambda: run_backtest(path, data=data, cache=NodeCache(), workspace=folder))
            best[label], results[label] = min(best[label], seconds), result
    tmp.cleanup()
    return best, results


def print_ratio(best: dict[str, float], name: str, *, limit: float, target: str) -> None:
    """``name / plain = 1.23x`` and whether ``target`` (at most ``limit`` times plain) is met."""
    ratio = best[name] / best["plain"]
    print(f"{name} / plain = {ratio:.2f}x")
    print(f"target {'MET' if ratio <= limit else 'MISSED'}   {target}: {ratio:.2f}x")
