"""A 200-combination sweep on a LocalCluster vs the same backtests one after another in-process.

Grid: fast SMA 4..22 step 2 (10 values) x slow SMA 30..90 step 15 (5) x stop-loss 0.5..2 % (4),
``strategies/ma_crossover_sweep.yaml`` on the bundled ``eurusd_1h`` sample.

* **sequential**: ``run_backtest`` per combination in this process on candles loaded once, twice:
  with no cache (every node of every combination computed: what a plain loop does), and with one
  in-memory ``NodeCache`` shared by all runs (equal indicators and signals computed once: the
  fairest sequential baseline);
* **sweep**: ``run_sweep`` on an embedded ``LocalCluster`` (``--workers`` processes, 1 thread
  each): one Dask graph, indicator tasks deduplicated by content hash.  Its time includes
  compiling every combination on the client.

Everything is timed in the same run, after one warm-up (imports) on each side; the cluster's
start-up is reported apart.  All must agree on every metric.  Prints the times, the speed-ups,
and how many indicator and signal tasks the graph deduplicated.

    python benchmarks/sweep.py [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "strategies" / "ma_crossover_sweep.yaml"
GRID = {
    "parameters": {
        "fast": {"start": 4, "stop": 22, "step": 2},
        "slow": {"start": 30, "stop": 90, "step": 15},
        "stop_loss": [0.005, 0.01, 0.015, 0.02],
    },
    "symbols": [{"symbol": "EURUSD", "sample": "eurusd_1h"}],
    "rank": {"by": "sharpe", "direction": "max"},
}


def sequential(spec, candles, *, shared_cache: bool) -> tuple[float, dict[tuple, dict]]:
    """Every combination through ``run_backtest``, one after another; seconds and metrics by parameters."""
    from candleflow.backtest import run_backtest
    from candleflow.dag.cache import NodeCache
    from candleflow.sweep import combinations

    cache = NodeCache() if shared_cache else None
    started = time.perf_counter()
    metrics = {tuple(c.params.values()):
               run_backtest(TEMPLATE, variables=c.variables, data=candles, cache=cache).metrics
               for c in combinations(spec)}
    return time.perf_counter() - started, metrics


def warm_worker() -> None:
    """Import what a sweep task needs, so the timing compares steady states on both sides."""
    import importlib

    for module in ("candleflow.sweep.tasks", "candleflow.nodes.compute", "candleflow.nodes.evaluator",
                   "candleflow.portfolio.simulate"):
        importlib.import_module(module)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    args = parser.parse_args()

    from candleflow.backtest import run_backtest
    from candleflow.data import sample_candles
    from candleflow.sweep import SweepSpec, combinations, run_sweep
    from candleflow.dag.cluster import connect

    spec = SweepSpec.model_validate(GRID)
    candles = sample_candles("eurusd_1h")
    n = len(combinations(spec))
    run_backtest(TEMPLATE, variables={"fast": 10, "slow": 50}, data=candles, cache=None)  # warm-up: imports
    plain_seconds, plain_metrics = sequential(spec, candles, shared_cache=False)
    seq_seconds, seq_metrics = sequential(spec, candles, shared_cache=True)
    assert plain_metrics.keys() == seq_metrics.keys()

    started = time.perf_counter()
    with connect(workers=args.workers) as client:
        client.run(warm_worker)
        startup = time.perf_counter() - started
        result = run_sweep(TEMPLATE, spec, client=client)
    frame = result.frame
    assert len(frame) == n and frame["error"].isna().all(), frame["error"].dropna().tolist()[:3]
    names = list(spec.parameters)
    for row in frame.to_dict("records"):
        key = tuple(row[p] for p in names)
        for expected in (plain_metrics[key], seq_metrics[key]):
            assert all(same(row[k], v) for k, v in expected.items()), row

    sizes = " x ".join(f"{name} {len(values)}" for name, values in spec.values().items())
    print(f"{n} combinations ({sizes}) on eurusd_1h ({len(candles):,} candles), {os.cpu_count()} CPUs")
    for label, seconds in (("no cache:    ", plain_seconds), ("shared cache:", seq_seconds)):
        print(f"sequential run_backtest, {label}  {seconds:7.2f} s  ({seconds / n * 1000:.0f} ms a combination)")
    print(f"sweep, LocalCluster {args.workers} workers:         {result.seconds:7.2f} s  "
          f"(+ {startup:.2f} s cluster start-up)")
    print(f"speed-up: {plain_seconds / result.seconds:.2f}x vs no cache, {seq_seconds / result.seconds:.2f}x vs shared "
          f"cache ({plain_seconds / (result.seconds + startup):.2f}x, "
          f"{seq_seconds / (result.seconds + startup):.2f}x including the start-up)")
    for kind in ("indicator", "signal"):
        uses, tasks = result.shared[kind]
        print(f"{kind} tasks: {tasks} for {uses} uses ({result.deduplicated(kind)} deduplicated)")


if __name__ == "__main__":
    main()
