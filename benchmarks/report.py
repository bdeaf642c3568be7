"""The HTML report: its size and the time to write it, for one year of hourly candles and for a long run.

For each example strategy on the bundled year of hourly EURUSD (``strategies/*.yaml`` that read it), and for
the benchmark strategy (``_common.STRATEGY_YAML``) on ``generate_candles(--candles)`` hourly candles, in this
one process, best of ``--repeat``: **backtest** (``run_backtest``, fresh cache) and **report**
(``write_report`` of the result: chart, tables, graph), the report's size, and report / backtest.
The page embeds plotly.js's finance bundle (1.3 MB) once.

Target (issue 15): <= 3 MB for one year of hourly candles.

    python benchmarks/report.py [--candles 1000000] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

EXAMPLES = ("ma_crossover", "ma_crossover_filtered", "mean_reversion", "trend_daily_filter")


def measure(run, folder: Path, name: str, repeat: int) -> tuple[float, float, int, object]:
    """(backtest seconds, report seconds, report bytes, result) of ``run()``."""
    from candleflow import write_report

    backtest, _, result = C.best_of(run, repeat)
    path = folder / f"{name}.html"
    report = C.best_of(lambda: write_report(result, path), repeat)[0]
    return backtest, report, path.stat().st_size, result


def main() -> None:
    args = C.base_parser(__doc__.splitlines()[0], candles=1_000_000, repeat=3).parse_args()
    print(C.environment())
    from candleflow import NodeCache, run_backtest  # after environment() is printed, like the other scripts
    from candleflow.data import generate_candles

    tmp = C.workspace()
    folder = Path(tmp.name)
    rows = {name: measure(lambda name=name: run_backtest(C.REPO / "strategies" / f"{name}.yaml", cache=NodeCache()),
                          folder, name, args.repeat) for name in EXAMPLES}
    strategy = C.write_strategy(folder)
    data = generate_candles(args.candles, seed=args.seed)
    rows[f"{args.candles:,} candles"] = measure(
        lambda: run_backtest(strategy, data=data, cache=NodeCache(), workspace=folder), folder, "long", args.repeat)
    tmp.cleanup()
    print(f"best of {args.repeat}")
    print(f"  {'run':<24} {'candles':>9} {'trades':>7} {'backtest':>9} {'report':>9} {'size':>9}  report/backtest")
    for name, (backtest, report, size, result) in rows.items():
        print(f"  {name:<24} {len(result.candles):>9,} {len(result.trades):>7,} {C.fmt_s(backtest):>9} "
              f"{C.fmt_s(report):>9} {size / 1e6:>7.2f} MB  {report / backtest:.1f}x")
    largest = max(rows[name][2] for name in EXAMPLES)
    print(f"target {'MET' if largest <= 3e6 else 'MISSED'}   <= 3 MB for one year of hourly candles: "
          f"largest example {largest / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
