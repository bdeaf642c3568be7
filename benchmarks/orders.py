"""The order model's cost: limit entries and a trailing stop vs market orders, same crossover, same candles.

Both strategies run end to end through ``run_backtest`` on ``generate_candles(n, seed=7)`` hourly candles
(default 1M) with a fresh in-memory cache, best of ``--repeat``, in this one process, alternating:

* **plain**: the benchmark strategy (``_common.STRATEGY_YAML``: SMA 20/50 crossover, market orders at the
  next open, long only);
* **orders**: the same crossover, long and short, each entry a limit order 0.1 % better than the signal
  close working for 10 candles, each trade protected by a 1 % trailing stop, a 2 % take-profit and a
  break-even move after 0.5 %; commission and spread in basis points.

Target (issue 19): orders within 1.5x of plain.

    python benchmarks/orders.py [--candles 1000000] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

ORDERS_YAML = """\
name: orders_bench
symbol: SYNTH
timeframe: 1h
data: {sample: eurusd_1h}    # replaced by the benchmark's candles
indicators:
  - {name: sma_fast, component: sma, params: {period: 20}}
  - {name: sma_slow, component: sma, params: {period: 50}}
signals:
  - {name: cross, component: ma_crossover, inputs: [sma_fast, sma_slow]}
rules:
  entry: {golden_cross: buy, death_cross: sell}
orders:
  entry: {type: limit, offset: 0.001, valid_for: 10}
execution: {fill: next_open, commission: 0.001, spread: {bps: 1}}
sizing: {method: fraction, value: 1.0}
risk: {trailing_stop: 0.01, take_profit: 0.02, break_even: 0.005}
initial_cash: 100000
"""


def main() -> None:
    args = C.base_parser(__doc__.splitlines()[0], candles=1_000_000, repeat=3).parse_args()
    print(C.environment())
    best, results = C.compare_with_plain(ORDERS_YAML, "orders", candles=args.candles, repeat=args.repeat,
                                         seed=args.seed)
    print(f"{args.candles:,} hourly candles, best of {args.repeat}, end to end (run_backtest, fresh cache)")
    for name, result in results.items():
        reasons = result.trades["exit_reason"].value_counts().to_dict()
        evaluator = result.stats["evaluator"].seconds
        print(f"  {name:<7} {C.fmt_s(best[name])}  evaluator {C.fmt_s(evaluator)}, "
              f"{len(result.trades)} trades, exits {reasons}")
    C.print_ratio(best, "orders", limit=1.5, target="limit entries + trailing stop within 1.5x of market orders")


if __name__ == "__main__":
    main()
