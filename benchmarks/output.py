"""The cost of the result files and of loading candles: writing ``--out`` vs computing the backtest, at 1M candles.

On ``generate_candles(n, seed=7)`` hourly candles (default 1M), in this one process, best of ``--repeat``:

* **compute**: ``run_backtest`` of the benchmark strategy (``_common.STRATEGY_YAML``) with a fresh in-memory cache;
* **write parquet** / **write csv**: ``result.write(folder)`` (what ``candleflow run --out`` adds), the per-candle
  series (equity, indicators, candles) as Parquet (the default) and as CSV (``--format csv``), every float exact;
* **load csv**: ``load_candles`` of the same candles written as a CSV file (``write_candles``), all checks included.

Targets (issue 15): compute + write (Parquet) < 2 s end to end; a 1M-row CSV loads in < 1.5 s.

    python benchmarks/output.py [--candles 1000000] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def main() -> None:
    args = C.base_parser(__doc__.splitlines()[0], candles=1_000_000, repeat=3).parse_args()
    print(C.environment())
    from candleflow import NodeCache, run_backtest  # after environment() is printed, like the other scripts
    from candleflow.data import generate_candles, load_candles, write_candles

    data = generate_candles(args.candles, seed=args.seed)
    tmp = C.workspace()
    folder = Path(tmp.name)
    strategy = C.write_strategy(folder)
    compute, _, result = C.best_of(lambda: run_backtest(strategy, data=data, cache=NodeCache(), workspace=folder),
                                   args.repeat)
    writes = {fmt: C.best_of(lambda: result.write(folder / f"out-{fmt}", format=fmt), args.repeat)[0]
              for fmt in ("parquet", "csv")}
    write_candles(data, folder / "candles.csv")
    load = C.best_of(lambda: load_candles(folder / "candles.csv"), args.repeat)[0]
    sizes = {fmt: sum(p.stat().st_size for p in (folder / f"out-{fmt}").iterdir()) for fmt in writes}
    tmp.cleanup()
    print(f"{args.candles:,} hourly candles, best of {args.repeat}, {int(result.metrics['n_trades'])} trades")
    print(f"  compute        {C.fmt_s(compute)}  run_backtest, fresh cache")
    for fmt, seconds in writes.items():
        print(f"  write {fmt:<8} {C.fmt_s(seconds)}  {sizes[fmt] / 2**20:6.1f} MiB; write / compute = "
              f"{seconds / compute:.2f}x")
    print(f"  load csv       {C.fmt_s(load)}  load_candles, {args.candles:,} rows")
    total = compute + writes["parquet"]
    print(f"target {'MET' if total < 2 else 'MISSED'}   compute + write (parquet) < 2 s end to end: {total:.2f} s")
    print(f"target {'MET' if load < 1.5 else 'MISSED'}   {args.candles:,}-row CSV loads in < 1.5 s: {load:.2f} s")


if __name__ == "__main__":
    main()
