"""candleflow against backtesting.py, backtrader and vectorbt on one strategy and one series.

The strategy (see ``_common.STRATEGY_YAML``): SMA(20) / SMA(50) crossover on hourly
candles, long only -- a golden cross (fast crosses above slow: ``fast[i-1] <= slow[i-1]``
and ``fast[i] > slow[i]``) buys, a death cross closes -- decided on a candle's close and
filled at the next candle's open, all-in sizing, commission 0.1 % of notional per side,
no spread, slippage or stops, 100,000 initial cash, on ``generate_candles(8760, seed=7)``.

Timing: every library gets its candles already in its own input format (not timed); its
import is timed on its own in a fresh interpreter, and so is its first call (numba JIT compilation for vectorbt,
lazy imports and caches for the others); then the best of ``--repeat`` calls is reported.
candleflow runs end to end through ``run_backtest`` (YAML load, compile, candle
validation, Dask execution, simulation, metrics) with a fresh in-memory ``NodeCache``
each time (cold); the warm figure re-runs with the cache of a previous run (every node
a cache hit).

    python benchmarks/peers.py [--candles 8760] [--repeat 5] [--peers backtesting,backtrader,vectorbt]
                               [--no-import-times] [--fresh-numba-cache]
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar (read when tqdm is imported)

import _common as C  # noqa: E402

PEERS = ("backtesting", "backtrader", "vectorbt")
IMPORT_TIMES = True  # --no-import-times turns the fresh-interpreter import timings off


# --------------------------------------------------------------------------- candleflow

def bench_candleflow(candles, repeat: int) -> dict:
    import_s = C.import_seconds("candleflow.backtest") if IMPORT_TIMES else math.nan
    from candleflow.backtest import prepare, run_backtest
    from candleflow.dag.cache import NodeCache

    tmp = C.workspace()
    folder = Path(tmp.name)
    strategy = C.write_strategy(folder)

    def cold():
        return run_backtest(strategy, data=candles, cache=NodeCache(), workspace=folder)

    first, _ = C.timed(cold)
    best, _, result = C.best_of(cold, repeat)
    shared = NodeCache()
    run_backtest(strategy, data=candles, cache=shared, workspace=folder)
    warm, _, warm_result = C.best_of(
        lambda: run_backtest(strategy, data=candles, cache=shared, workspace=folder), repeat)
    assert all(s.cache == "hit" for s in warm_result.stats.values())
    compiled, _ = prepare(strategy, workspace=folder)
    overhead = C.scheduler_overhead(compiled, candles, repeat=repeat)
    overhead_sync = C.scheduler_overhead(compiled, candles, repeat=repeat, scheduler="sync")
    tmp.cleanup()
    return dict(name="candleflow", import_s=import_s, first=first, best=best, warm=warm,
                trades=int(result.metrics["n_trades"]), equity=float(result.metrics["final_equity"]),
                open_at_end=bool((result.trades["exit_reason"] == "open").any()),
                nodes=len(result.stats), dask=overhead, dask_sync=overhead_sync)


# ------------------------------------------------------------------------- backtesting.py

def bench_backtesting(candles, repeat: int) -> dict:
    import warnings

    import_s = C.import_seconds("backtesting") if IMPORT_TIMES else math.nan
    import pandas as pd
    from backtesting import Backtest, Strategy

    data = candles.rename(columns=str.capitalize)
    data.index = data.index.tz_localize(None)

    def sma(values, n):
        return pd.Series(values).rolling(n, min_periods=n).mean()

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, C.FAST)
            self.slow = self.I(sma, self.data.Close, C.SLOW)

        def next(self):
            fast, slow = self.fast, self.slow
            if fast[-2] <= slow[-2] and fast[-1] > slow[-1]:
                if not self.position:
                    self.buy()  # default size: all available equity, in whole units
            elif fast[-2] >= slow[-2] and fast[-1] < slow[-1]:
                self.position.close()

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = Backtest(data, SmaCross, cash=C.INITIAL_CASH, commission=C.COMMISSION, trade_on_close=False,
                          exclusive_orders=False, finalize_trades=False)
            return bt.run()

    first, _ = C.timed(run)
    best, _, stats = C.best_of(run, repeat)
    return dict(name="backtesting.py", import_s=import_s, first=first, best=best,
                trades=int(stats["# Trades"]), equity=float(stats["Equity Final [$]"]),
                open_at_end=bool(len(stats._strategy.trades)))


# ------------------------------------------------------------------------------ backtrader

def bench_backtrader(candles, repeat: int) -> dict:
    import_s = C.import_seconds("backtrader") if IMPORT_TIMES else math.nan
    import backtrader as bt

    data = candles.copy()
    data.index = data.index.tz_localize(None)

    class SmaCross(bt.Strategy):
        def __init__(self):
            self.fast = bt.indicators.SMA(self.data.close, period=C.FAST)
            self.slow = bt.indicators.SMA(self.data.close, period=C.SLOW)
            self.closed_trades = 0

        def notify_trade(self, trade):
            if trade.isclosed:
                self.closed_trades += 1

        def next_open(self):
            # cheat-on-open: called with this bar's open known while the indicators still hold
            # the previous bar's values, so a cross decided on bar i's close fills at bar i+1's
            # open, sized with that open price (all in, commission included).
            fast, slow = self.fast, self.slow
            if fast[-1] <= slow[-1] and fast[0] > slow[0]:
                if not self.position:
                    # (1 - 1e-12): without it float rounding can price the order a hair above the
                    # cash and backtrader rejects it (Margin)
                    size = self.broker.getcash() / (self.data.open[0] * (1 + C.COMMISSION)) * (1 - 1e-12)
                    self.buy(size=size)
            elif fast[-1] >= slow[-1] and fast[0] < slow[0]:
                if self.position:
                    self.close()

    def run():
        cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
        cerebro.adddata(bt.feeds.PandasData(dataname=data))
        cerebro.addstrategy(SmaCross)
        cerebro.broker.setcash(C.INITIAL_CASH)
        cerebro.broker.setcommission(commission=C.COMMISSION)
        strategy = cerebro.run()[0]
        return strategy, cerebro.broker.getvalue()

    first, _ = C.timed(run)
    best, _, (strategy, equity) = C.best_of(run, repeat)
    return dict(name="backtrader", import_s=import_s, first=first, best=best, trades=strategy.closed_trades,
                equity=float(equity), open_at_end=bool(strategy.position))


# -------------------------------------------------------------------------------- vectorbt

def bench_vectorbt(candles, repeat: int) -> dict:
    import_s = C.import_seconds("vectorbt") if IMPORT_TIMES else math.nan
    import vectorbt as vbt

    close, open_ = candles["close"], candles["open"]

    def run():
        fast = vbt.MA.run(close, C.FAST)
        slow = vbt.MA.run(close, C.SLOW)
        golden = fast.ma_crossed_above(slow)
        death = fast.ma_crossed_below(slow)
        # decided on bar i's close, filled at bar i+1's open: shift the signals, price = open
        pf = vbt.Portfolio.from_signals(close, entries=golden.shift(1, fill_value=False),
                                        exits=death.shift(1, fill_value=False), price=open_,
                                        fees=C.COMMISSION, init_cash=C.INITIAL_CASH, size=math.inf, freq="1h")
        return pf, int(pf.trades.closed.count()), float(pf.final_value()), int(pf.trades.open.count())

    first, _ = C.timed(run)  # compiles vectorbt's numba kernels for these dtypes
    best, _, (_, trades, equity, still_open) = C.best_of(run, repeat)
    return dict(name="vectorbt", import_s=import_s, first=first, best=best, jit=max(first - best, 0.0),
                trades=trades, equity=equity, open_at_end=bool(still_open))


BENCHES = {"backtesting": bench_backtesting, "backtrader": bench_backtrader, "vectorbt": bench_vectorbt}


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated peers to run (default {','.join(PEERS)}; '' for candleflow alone)")
    parser.add_argument("--no-import-times", action="store_true",
                        help="skip timing each library's import in a fresh interpreter (quicker)")
    parser.add_argument("--fresh-numba-cache", action="store_true",
                        help="point NUMBA_CACHE_DIR at an empty folder, so vectorbt's first call really compiles "
                             "(by default numba reuses kernels cached by an earlier run)")
    args = parser.parse_args(argv)
    if args.fresh_numba_cache:
        numba_cache = C.workspace()
        os.environ["NUMBA_CACHE_DIR"] = numba_cache.name  # read when numba is first imported
    global IMPORT_TIMES
    IMPORT_TIMES = not args.no_import_times
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in BENCHES]
    if unknown:
        parser.error(f"unknown peer(s): {', '.join(unknown)}")

    from candleflow.data import generate_candles

    candles = generate_candles(args.candles, seed=args.seed)
    print(f"peers: SMA({C.FAST}/{C.SLOW}) crossover, long only, next-open fills, all in, commission "
          f"{C.COMMISSION:.1%}/side, {len(candles)} hourly candles (seed {args.seed}), best of {args.repeat}")
    print(C.environment())
    rows = [bench_candleflow(candles, args.repeat)]
    for peer in peers:
        rows.append(BENCHES[peer](candles, args.repeat))
    cf = rows[0]

    print()
    print(f"{'library':<15} {'import':>10} {'first call':>11} {'best':>11} {'trades':>7} {'final equity':>14} "
          f"{'equity diff':>11}  candleflow faster by")
    for row in rows:
        diff = (row["equity"] / cf["equity"] - 1) if cf["equity"] else math.nan
        ratio = "" if row is cf else f"{row['best'] / cf['best']:.1f}x"
        print(f"{row['name']:<15} {C.fmt_s(row['import_s']):>10} {C.fmt_s(row['first']):>11} "
              f"{C.fmt_s(row['best']):>11} {row['trades']:>7} {row['equity']:>14.2f} {diff:>+11.2e}  {ratio}")
    print(f"{'candleflow warm':<15} {'':>10} {'':>11} {C.fmt_s(cf['warm']):>11} {cf['trades']:>7} "
          f"{cf['equity']:>14.2f} {'':>11}  (every node a cache hit)")
    for row in rows[1:]:
        jit = ""
        if "jit" in row:
            source = "compiled from scratch" if args.fresh_numba_cache else "or loaded from numba's on-disk cache"
            jit = f"; numba JIT (first call - best, {source}) {row['jit']:.2f} s, not in 'best'"
        print(f"  {row['name']}: candleflow cold {row['best'] / cf['best']:.1f}x, warm {row['best'] / cf['warm']:.1f}x "
              f"faster{jit}")
    opened = [r["name"] for r in rows if r.get("open_at_end")]
    if opened:
        print(f"  a position is still open at the end in: {', '.join(opened)} (in the final equity, "
              f"marked at the last close; not counted as a trade)")

    d = cf["dask"]
    print()
    print(f"dask: {d['tasks']} tasks ran for {d['nodes']} nodes on {len(candles)} candles (one task per node, "
          f"{d['keys']} graph keys incl. the candles)")
    for label, d in (("threads (default)", cf["dask"]), ("sync", cf["dask_sync"])):
        print(f"  {label + ' scheduler:':<28} cold run_compiled {C.fmt_s(d['wall']).strip()}, node code "
              f"{C.fmt_s(d['busy']).strip()}, executor + scheduler overhead {C.fmt_s(d['overhead']).strip()} "
              f"({d['overhead'] / d['wall']:.0%} of run_compiled, {d['overhead'] / cf['best']:.0%} of the "
              f"end-to-end best)")
    d = cf["dask"]
    rest = d["overhead"] - d["hashing"]
    print(f"  of the threads overhead: content hashing (candles + node keys) {C.fmt_s(d['hashing']).strip()}, "
          f"the rest (Dask graph + scheduling, cache writes, stats) {C.fmt_s(rest).strip()} = "
          f"{rest / cf['best']:.0%} of the end-to-end best")

    print()
    by_name = {r["name"]: r for r in rows}
    checks = [(f"{len(candles)} candles end to end < 1 s", cf["best"] < 1.0, f"{cf['best']:.3f} s")]
    if "backtesting.py" in by_name:
        r = by_name["backtesting.py"]["best"] / cf["best"]
        checks.append(("faster than backtesting.py", r > 1, f"{r:.1f}x"))
    if "backtrader" in by_name:
        r = by_name["backtrader"]["best"] / cf["best"]
        checks.append(("at least 5x faster than backtrader", r >= 5, f"{r:.1f}x"))
    for label, ok, value in checks:
        print(f"target {'MET ' if ok else 'MISSED'}  {label}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
