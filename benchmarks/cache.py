"""What the content-hash node cache saves: cold run, fees-only re-run, identical re-run.

For each strategy, one sequence of three end-to-end ``run_backtest`` calls on the same
candles and the same cache:

1. **cold**: a fresh cache, every node computed;
2. **fees changed**: the same strategy with another commission -- only the evaluator's
   key changes, so every indicator and signal node is a cache hit and only the
   evaluator (rules -> simulation -> metrics) runs;
3. **identical**: the fees-changed strategy again -- every node a hit.

Then the same with the on-disk cache: run 1 writes into a temporary folder, and runs 2
and 3 each use a *fresh* ``NodeCache`` on that folder (empty memory), so their hits are
read back from disk -- what a second ``candleflow run`` process sees.

The sequence is repeated ``--repeat`` times with fresh caches; each stage's best time is
reported, end to end and split into ``run_backtest``'s three steps: ``prepare`` (YAML load
and compile), ``load_data`` (candle validation) and ``run_compiled`` (hashing, the Dask
graph, the nodes).  The cache can only save node time inside ``run_compiled``; the
identical re-run shows what every run pays regardless.

Strategies: ``sma`` is the peers benchmark (SMA 20/50 crossover; cheap nodes), ``mixed``
adds an EMA, an RSI (incremental: a Python update per candle), Bollinger bands and MACD
feeding four signal nodes, with stops.

**Cost of a hit.**  For each strategy a child process (``_cache_hits.py``) times, per node,
reading one entry back from disk (read, verify the checksum and key, decode the Arrow
streams) and writing it, and the warm re-run whose every node is a disk hit.  With
``--compare-src PATH`` (the ``src`` folder of another checkout, e.g. one from before the
verified format, when entries were pickles) the same child runs on that code too, the two
alternating twice (best of both kept), and both are printed with their ratio.

    python benchmarks/cache.py [--candles 8760] [--repeat 5] [--strategies sma,mixed,script] [--profile]
                               [--compare-src PATH]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

MIXED_YAML = """\
name: mixed_bench
symbol: SYNTH
timeframe: 1h
data: {{sample: eurusd_1h}}    # replaced by the benchmark's candles
indicators:
  - {{name: sma_fast, component: sma, params: {{period: 20}}}}
  - {{name: sma_slow, component: sma, params: {{period: 50}}}}
  - {{name: ema_trend, component: ema, params: {{period: 200}}}}
  - {{name: rsi, component: rsi, params: {{period: 14}}}}
  - {{name: bb, component: bollinger, params: {{period: 20, stddev: 2.0}}}}
  - {{name: macd, component: macd, params: {{fast: 12, slow: 26, signal: 9}}}}
signals:
  - {{name: cross, component: ma_crossover, inputs: [sma_fast, sma_slow]}}
  - {{name: trend, component: ma_crossover, inputs: [sma_slow, ema_trend]}}
  - {{name: extremes, component: rsi_threshold, inputs: [rsi], params: {{lower: 30, upper: 70}}}}
  - {{name: bands, component: bollinger_breakout, inputs: {{upper: bb.upper, lower: bb.lower}}}}
  - {{name: momentum, component: ma_crossover, inputs: [macd.macd, macd.signal]}}
rules:
  entry: {{cross.golden_cross: buy, extremes.oversold: buy, cross.death_cross: sell}}
  exit: {{bands.breakout_up: close_long, trend.death_cross: close_long, momentum.golden_cross: close_short}}
execution: {{fill: next_open, commission: {commission}, spread: 0.00008, slippage: 0.00001}}
sizing: {{method: fraction, value: 1.0}}
risk: {{stop_loss: 0.01, take_profit: 0.02, allow_short: true}}
initial_cash: 100000
"""

SCRIPT_YAML = """\
name: script_bench
symbol: SYNTH
timeframe: 1h
data: {{sample: eurusd_1h}}    # replaced by the benchmark's candles
indicators:
  - {{name: sma_fast, component: sma, params: {{period: 20}}}}
  - {{name: sma_slow, component: sma, params: {{period: 50}}}}
signals:
  - {{name: golden, component: script, path: components/signals/ma_crossover.py, lookback: 60}}  # the seed's script
  - {{name: cross, component: ma_crossover, inputs: [sma_fast, sma_slow]}}
rules:
  entry: {{golden.golden_cross: buy}}
  exit: {{cross.death_cross: close}}
execution: {{fill: next_open, commission: {commission}}}
sizing: {{method: fraction, value: 1.0}}
initial_cash: 100000
"""
SEED_SCRIPT = Path(__file__).resolve().parent.parent / "components" / "signals" / "ma_crossover.py"

COMMISSIONS = (0.001, 0.0005)  # cold run, then the fees-changed and identical re-runs


def write(folder: Path, strategy: str, commission: float) -> Path:
    if strategy == "sma":
        return C.write_strategy(folder, commission=commission, name=f"sma_{commission}.yaml")
    path = folder / f"{strategy}_{commission}.yaml"
    if strategy == "script":
        script = folder / "components" / "signals" / "ma_crossover.py"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_bytes(SEED_SCRIPT.read_bytes())
    path.write_text((SCRIPT_YAML if strategy == "script" else MIXED_YAML).format(commission=commission),
                    encoding="utf-8")
    return path


STAGES = ("cold", "fees changed", "identical")
PARTS = ("total", "prepare", "load_data", "run_compiled")


def run_timed(path: Path, candles, cache, folder: Path) -> tuple[dict[str, float], dict]:
    """``run_backtest``'s three steps, each timed: prepare (YAML + compile), load_data, run_compiled."""
    from candleflow.backtest import load_data, prepare, run_compiled

    t0 = time.perf_counter()
    compiled, text = prepare(path, workspace=folder)
    t1 = time.perf_counter()
    data = load_data(compiled, candles)
    t2 = time.perf_counter()
    result = run_compiled(compiled, data, cache=cache, source_text=text)
    t3 = time.perf_counter()
    return dict(total=t3 - t0, prepare=t1 - t0, load_data=t2 - t1, run_compiled=t3 - t2), result.stats


def sequence(candles, folder: Path, strategy: str, *, disk: bool) -> tuple[list[tuple[str, dict, dict]], int]:
    """One cold / fees-changed / identical sequence: (stage, seconds by part, node stats) rows, cache bytes."""
    from candleflow.dag.cache import NodeCache

    first, second = (write(folder, strategy, c) for c in COMMISSIONS)
    cache_dir = C.workspace() if disk else None

    def new_cache():
        return NodeCache(cache_dir.name) if disk else NodeCache()

    shared = new_cache()
    rows = []
    for stage, path in zip(STAGES, (first, second, second)):
        cache = new_cache() if disk else shared  # disk: a fresh NodeCache (empty memory) reads the folder
        seconds, stats = run_timed(path, candles, cache, folder)
        rows.append((stage, seconds, stats))
    size = 0
    if cache_dir is not None:
        size = sum(p.stat().st_size for p in Path(cache_dir.name).rglob("*") if p.is_file())
        cache_dir.cleanup()
    return rows, size


def report(candles, strategy: str, repeat: int, *, disk: bool) -> dict[str, float]:
    from candleflow.backtest import run_backtest
    from candleflow.dag.cache import NodeCache

    tmp = C.workspace()
    folder = Path(tmp.name)
    run_backtest(write(folder, strategy, COMMISSIONS[0]), data=candles, cache=NodeCache(), workspace=folder)  # warm-up
    best = {stage: dict.fromkeys(PARTS, float("inf")) for stage in STAGES}
    for _ in range(max(1, repeat)):
        rows, size = sequence(candles, folder, strategy, disk=disk)
        for stage, seconds, _ in rows:
            for part in PARTS:
                best[stage][part] = min(best[stage][part], seconds[part])
    tmp.cleanup()

    where = "on-disk cache (a fresh NodeCache on the same folder for each re-run)" if disk else "in-memory cache"
    print(f"[{strategy}] {where}")
    print(f"  {'stage':<13} {'end to end':>10} {'vs cold':>8} {'prepare':>9} {'load_data':>10} {'run_compiled':>13} "
          f"{'vs cold':>8}  hits  computed nodes (own time, last sequence)")
    for stage, _, stats in rows:
        b = best[stage]
        hits = sum(s.cache == "hit" for s in stats.values())
        computed = ", ".join(f"{n} {C.fmt_s(s.seconds).strip()}" for n, s in stats.items() if s.cache != "hit")
        print(f"  {stage:<13} {C.fmt_s(b['total']):>10} {best['cold']['total'] / b['total']:>7.1f}x "
              f"{C.fmt_s(b['prepare']):>9} {C.fmt_s(b['load_data']):>10} {C.fmt_s(b['run_compiled']):>13} "
              f"{best['cold']['run_compiled'] / b['run_compiled']:>7.1f}x  {hits:>2}/{len(stats):<2} {computed or '-'}")
    if disk:
        print(f"  cache folder after one sequence: {size / 1e6:.2f} MB of entries")
    return dict(end_to_end=best["cold"]["total"] / best["fees changed"]["total"],
                execution=best["cold"]["run_compiled"] / best["fees changed"]["run_compiled"])


def hit_cost(candles_n: int, seed: int, strategy: str, repeat: int, compare_src: Path | None) -> None:
    """Per-entry read + verify and write time, and the all-hits warm re-run, for this checkout (and another)."""
    tmp = C.workspace()
    path = write(Path(tmp.name), strategy, COMMISSIONS[0])
    sources = {"new": C.REPO / "src", **({"old": compare_src} if compare_src else {})}
    reports: dict[str, dict] = {}
    for _ in range(2 if compare_src else 1):  # alternate new/old twice: the load on a shared machine drifts
        for label, src in sources.items():
            child = subprocess.run([sys.executable, str(Path(__file__).with_name("_cache_hits.py")), str(path),
                                    "--candles", str(candles_n), "--seed", str(seed), "--repeat", str(repeat)],
                                   env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True)
            if child.returncode != 0:
                raise SystemExit(f"_cache_hits.py failed on {src}:\n{child.stderr}")
            reports[label] = _best(reports.get(label), json.loads(child.stdout))
    tmp.cleanup()
    print(f"[{strategy}] cost of a cache hit: one entry read back from disk (a fresh NodeCache(folder, memory=False)"
          f".get: read, verify, decode) and written (put), best of {repeat}")
    for label, report in reports.items():
        print(f"  {label}: {report['candleflow']}")
    _hit_table(reports)


def _best(a: dict | None, b: dict) -> dict:
    """Two child reports merged: the lower of each time."""
    if a is None:
        return b
    entries = {name: {**e, "read": min(e["read"], b["entries"][name]["read"]),
                      "write": min(e["write"], b["entries"][name]["write"])} for name, e in a["entries"].items()}
    return {**a, "entries": entries, "warm_disk": min(a["warm_disk"], b["warm_disk"]),
            "warm_memory": min(a["warm_memory"], b["warm_memory"])}


def _hit_table(reports: dict[str, dict]) -> None:
    new, old = reports["new"], reports.get("old")
    head = f"  {'node':<12} {'kind':<10} {'new size':>9} {'read':>9} {'write':>9}"
    print(head + (f" {'old size':>9} {'read':>9} {'write':>9} {'read new/old':>13}" if old else ""))
    rows = [(name, e["kind"]) for name, e in new["entries"].items()]
    totals = {label: {k: sum(e[k] for e in r["entries"].values()) for k in ("bytes", "read", "write")}
              for label, r in reports.items()}
    for name, kind in rows + [("all entries", "")]:
        cells = {label: r["entries"][name] if name in r["entries"] else totals[label] for label, r in reports.items()}
        line = f"  {name:<12} {kind:<10} {cells['new']['bytes'] / 1e3:>6.1f} kB {C.fmt_s(cells['new']['read']):>9} " \
               f"{C.fmt_s(cells['new']['write']):>9}"
        if old:
            line += f" {cells['old']['bytes'] / 1e3:>6.1f} kB {C.fmt_s(cells['old']['read']):>9} " \
                    f"{C.fmt_s(cells['old']['write']):>9} {cells['new']['read'] / cells['old']['read']:>12.2f}x"
        print(line)
    line = f"  warm re-run, every node a disk hit (run_compiled): new {C.fmt_s(new['warm_disk']).strip()}"
    if old:
        line += f", old {C.fmt_s(old['warm_disk']).strip()} (new/old {new['warm_disk'] / old['warm_disk']:.2f}x)"
    print(line + f"; every node a memory hit: {C.fmt_s(new['warm_memory']).strip()}")


PROFILED = [  # (label, file suffix, function): where a fees-only re-run spends its time
    ("run_backtest", "candleflow/backtest.py", "run_backtest"),
    ("  prepare: YAML load + compile", "candleflow/backtest.py", "prepare"),
    ("    YAML parse + schema (load_strategy)", "candleflow/config/loader.py", "load_strategy"),
    ("      yaml.load", "yaml/__init__.py", "load"),
    ("    compile_strategy", "candleflow/dag/compiler.py", "compile_strategy"),
    ("      Registry.default", "candleflow/components/registry.py", "default"),
    ("      validate_params", "candleflow/components/registry.py", "validate_params"),
    ("  load_data: validate_candles", "candleflow/data/loader.py", "validate_candles"),
    ("  run_compiled", "candleflow/backtest.py", "run_compiled"),
    ("    node_keys (hash params, upstream keys)", "candleflow/dag/executor.py", "node_keys"),
    ("    evaluate (the one node recomputed)", "candleflow/nodes/evaluator.py", "evaluate"),
    ("      simulate", "candleflow/portfolio/simulate.py", "simulate"),
    ("        compute_metrics", "candleflow/portfolio/metrics.py", "compute_metrics"),
]


def profile(candles, strategy: str, runs: int) -> None:
    """cProfile the fees-changed re-run (sync scheduler, so the evaluator runs in the profiled thread)."""
    import cProfile
    import pstats

    from candleflow.backtest import run_backtest
    from candleflow.dag.cache import NodeCache

    tmp = C.workspace()
    folder = Path(tmp.name)
    first, second = (write(folder, strategy, c) for c in COMMISSIONS)
    profiler = cProfile.Profile()
    for _ in range(runs):
        cache = NodeCache()
        run_backtest(first, data=candles, cache=cache, workspace=folder, scheduler="sync")
        profiler.enable()
        run_backtest(second, data=candles, cache=cache, workspace=folder, scheduler="sync")
        profiler.disable()
    tmp.cleanup()
    table = pstats.Stats(profiler).stats  # (file, line, function) -> (cc, nc, tottime, cumtime, callers)
    cumulative = {}
    for (file, _, function), (_, _, _, cumtime, _) in table.items():
        for label, suffix, name in PROFILED:
            if function == name and file.replace("\\", "/").endswith(suffix):
                cumulative[label] = cumulative.get(label, 0.0) + cumtime
    total = cumulative.get("run_backtest", 0.0)
    print(f"[{strategy}] cProfile of the fees-changed re-run (sync scheduler), mean of {runs} runs, "
          f"times inflated by the profiler")
    for label, _, _ in PROFILED:
        if label in cumulative:
            print(f"  {label:<46} {C.fmt_s(cumulative[label] / runs):>10} {cumulative[label] / total:>5.0%}")


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="sma,mixed",
                        help="comma-separated: sma, mixed, script (default sma,mixed; script runs the seed's "
                             "script component per candle: use fewer --candles and --repeat 1)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the fees-changed re-run: where its time goes")
    parser.add_argument("--compare-src", type=Path, default=None,
                        help="the src folder of another candleflow checkout: also time its cache hits")
    args = parser.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    if not strategies or any(s not in ("sma", "mixed", "script") for s in strategies):
        parser.error("--strategies takes sma, mixed and/or script")

    from candleflow.data import generate_candles

    candles = generate_candles(args.candles, seed=args.seed)
    print(f"cache: cold vs fees-only vs identical re-run, end to end (run_backtest), {len(candles)} hourly candles "
          f"(seed {args.seed}), best of {args.repeat}")
    print(C.environment())
    results = []
    for strategy in strategies:
        for disk in (False, True):
            print()
            results.append((strategy, disk, report(candles, strategy, args.repeat, disk=disk)))
        print()
        hit_cost(args.candles, args.seed, strategy, args.repeat, args.compare_src)
    if args.profile:
        for strategy in strategies:
            print()
            profile(candles, strategy, max(5, args.repeat))
    print()
    for strategy, disk, ratio in results:
        label = f"{strategy}, {'disk' if disk else 'memory'}"
        verdict = "MET " if ratio["end_to_end"] >= 5 else "MISSED"
        print(f"target {verdict}  evaluator-only re-run >= 5x faster than cold [{label}]: "
              f"{ratio['end_to_end']:.1f}x end to end, {ratio['execution']:.1f}x in run_compiled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
