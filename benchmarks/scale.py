"""How candleflow's end-to-end time and memory grow with the number of candles.

Each size runs in a fresh Python process (so one size's memory never inflates
another's peak): a helper process generates ``generate_candles(n, seed=7)`` and
pickles it; the measuring child reads it back (not timed), then runs the benchmark strategy
(``_common.STRATEGY_YAML``, SMA 20/50 crossover) end to end through
``run_backtest`` with a fresh in-memory cache, best of ``--repeat``.

Peak RSS is the child's ``VmHWM`` (Linux; the high-water mark of its own process
image), cross-checked with its ``getrusage(RUSAGE_SELF).ru_maxrss``.  Neither
``ru_maxrss`` nor the parent's ``RUSAGE_CHILDREN`` is used as the figure: on Linux
they carry over the peak of the process that *started* the child (here, a parent
that generated 1M candles would have put ~700 MB into every child's figure).  So
the candles are generated in a separate process and the parent stays small.  The
figure includes the interpreter, the imported libraries and the candles
("after load": the peak once the candles are read, before any run).

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--repeat 3]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def child(n: int, repeat: int, candles_file: str) -> dict:
    """Measure one size in this (fresh) process; returns what the parent prints."""
    import pandas as pd

    from candleflow.backtest import prepare, run_backtest
    from candleflow.dag.cache import NodeCache

    candles = pd.read_pickle(candles_file)
    assert len(candles) == n
    tmp = C.workspace()
    folder = Path(tmp.name)
    strategy = C.write_strategy(folder)
    loaded_rss = C.hwm_rss_mb()

    def cold():
        return run_backtest(strategy, data=candles, cache=NodeCache(), workspace=folder)

    best, times, result = C.best_of(cold, repeat)
    compiled, _ = prepare(strategy, workspace=folder)
    dask_row = C.scheduler_overhead(compiled, candles, repeat=1)
    tmp.cleanup()
    return dict(n=n, best=best, times=times, peak_rss_mb=C.hwm_rss_mb(), maxrss_mb=C.peak_rss_mb(),
                loaded_rss_mb=loaded_rss,
                trades=int(result.metrics["n_trades"]), nodes={k: round(v.seconds, 4) for k, v in result.stats.items()},
                dask=dask_row)


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0], candles=None, repeat=3)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated candle counts (default 10000,100000,1000000)")
    parser.add_argument("--child", type=int, help=argparse_hidden())
    parser.add_argument("--candles-file", help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.repeat, args.candles_file)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"scale: SMA({C.FAST}/{C.SLOW}) crossover end to end (run_backtest, cold cache), best of {args.repeat}, "
          f"one fresh process per size")
    print(C.environment())
    print()
    print(f"{'candles':>10} {'best':>10} {'per candle':>11} {'peak RSS':>10} {'after load':>11} {'trades':>7} "
          f"{'tasks':>6} {'overhead':>14} {'of it hashing':>14}   slowest node")
    rows = []
    tmp = C.workspace()
    for n in sizes:
        # generated in a process of its own and read back by the child: generating 1M candles
        # takes more memory than running on them, and this parent should stay small
        candles_file = Path(tmp.name) / f"candles_{n}.pkl"
        subprocess.run([sys.executable, "-c", "import sys; from candleflow.data import generate_candles; "
                        "generate_candles(int(sys.argv[1]), seed=int(sys.argv[2])).to_pickle(sys.argv[3])",
                        str(n), str(args.seed), str(candles_file)], check=True)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--repeat", str(args.repeat),
                               "--candles-file", str(candles_file)], capture_output=True, text=True)
        candles_file.unlink()
        if proc.returncode:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"size {n} failed (exit {proc.returncode})")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["process_s"] = time.perf_counter() - started
        rows.append(row)
        d = row["dask"]
        slowest = max(row["nodes"].items(), key=lambda kv: kv[1])
        print(f"{n:>10} {C.fmt_s(row['best']):>10} {row['best'] / n * 1e6:>8.2f} us {row['peak_rss_mb']:>7.0f} MB "
              f"{row['loaded_rss_mb']:>8.0f} MB {row['trades']:>7} {d['tasks']:>6} "
              f"{C.fmt_s(d['overhead']).strip():>9} {d['overhead'] / row['best']:>4.0%} "
              f"{C.fmt_s(d['hashing']).strip():>14}   {slowest[0]} {C.fmt_s(slowest[1]).strip()}")

    tmp.cleanup()
    print()
    by_n = {r["n"]: r for r in rows}
    for small, big in zip(sizes, sizes[1:]):
        growth = by_n[big]["best"] / by_n[small]["best"]
        marginal = (by_n[big]["best"] - by_n[small]["best"]) / (big - small)
        print(f"time({big}) / time({small}) = {growth:.2f}  (candles x{big / small:g}; purely linear would be "
              f"{big / small:g}; below it = a fixed per-run cost); marginal {marginal * 1e6:.2f} us per added candle")
    print("tasks per run stay the number of nodes at every size: one Dask task per node, never per candle")
    if 1_000_000 in by_n:
        big = by_n[1_000_000]
        print(f"target {'MET ' if big['best'] < 20 else 'MISSED'}  1M candles < 20 s: {big['best']:.2f} s")
        print(f"target {'MET ' if big['peak_rss_mb'] < 2048 else 'MISSED'}  1M candles peak memory < 2 GB: "
              f"{big['peak_rss_mb']:.0f} MB (the child's getrusage ru_maxrss: {big['maxrss_mb']:.0f} MB)")
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
