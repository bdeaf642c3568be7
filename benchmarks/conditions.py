"""The strategy language's cost: five conditions and a daily filter vs the plain SMA crossover, same candles.

Both strategies run end to end through ``run_backtest`` on ``generate_candles(n, seed=7)`` hourly candles
(default 1M) with a fresh in-memory cache, best of ``--repeat``, in this one process, alternating:

* **plain**: the benchmark strategy (``_common.STRATEGY_YAML``: SMA 20/50 crossover, 4 nodes);
* **conditions**: the same crossover, plus RSI(14) and a *daily* SMA(20) node (``timeframe: 1d``), and
  entry/exit rules made of condition nodes: ``all`` of the golden cross, ``rsi < 70``, ``close > daily``,
  ``sma_fast > daily`` and ``rsi > 40 within the last 24 candles``; ``any`` of the death cross and
  ``close`` crossing below the daily SMA.

Target (issue 13): conditions within 2x of plain.

    python benchmarks/conditions.py [--candles 1000000] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

CONDITIONS_YAML = """\
name: conditions_bench
symbol: SYNTH
timeframe: 1h
data: {sample: eurusd_1h}    # replaced by the benchmark's candles
indicators:
  - {name: sma_fast, component: sma, params: {period: 20}}
  - {name: sma_slow, component: sma, params: {period: 50}}
  - {name: rsi, component: rsi, params: {period: 14}}
  - {name: daily, component: sma, params: {period: 20}, timeframe: 1d}
signals:
  - {name: cross, component: ma_crossover, inputs: [sma_fast, sma_slow]}
conditions:
  - {name: uptrend, above: [close, daily]}
rules:
  entry:
    buy: {all: [golden_cross, {below: [rsi, 70]}, uptrend, {above: [sma_fast, daily]},
                {within: {n: 24, of: {above: [rsi, 40]}}}]}
  exit:
    close: {any: [death_cross, {crosses_below: [close, daily]}]}
execution: {fill: next_open, commission: 0.001, spread: 0.0, slippage: 0.0}
sizing: {method: fraction, value: 1.0}
initial_cash: 100000
"""


def main() -> None:
    args = C.base_parser(__doc__.splitlines()[0], candles=1_000_000, repeat=3).parse_args()
    print(C.environment())
    best, results = C.compare_with_plain(CONDITIONS_YAML, "conditions", candles=args.candles, repeat=args.repeat,
                                         seed=args.seed)
    print(f"{args.candles:,} hourly candles, best of {args.repeat}, end to end (run_backtest, fresh cache)")
    for name, result in results.items():
        kinds = [s.kind for s in result.stats.values()]
        slowest = max(result.stats.values(), key=lambda s: s.seconds)
        print(f"  {name:<11} {C.fmt_s(best[name])}  {len(kinds)} nodes ({kinds.count('condition')} conditions), "
              f"{int(result.metrics['n_trades'])} trades; slowest node {slowest.name} {C.fmt_s(slowest.seconds)}")
    C.print_ratio(best, "conditions", limit=2, target="five conditions + a daily filter within 2x of plain")


if __name__ == "__main__":
    main()
