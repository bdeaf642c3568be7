"""Benchmark: the seed's ma_crossover.py over one year of hourly candles.

Compares the worker pool (candleflow.components.script) in its two isolation
modes with the seed's naive method -- a fresh ``python ma_crossover.py`` per
candle, candles passed in the environment -- on 8760 deterministic hourly
candles (a mean-reverting random walk around 1.10, seed 42).

* warm pool (``isolation: warm``, the default), lookback 60: the full series,
  timed (workers started beforehand);
* process isolation (``isolation: process``, a fresh fork per candle),
  lookback 60: timed on the first ``--strict-candles`` candles (default
  1500) and EXTRAPOLATED to 8760 unless that is all of them; the warm pool is
  timed on the same slice for a like-for-like ratio, and both modes once more
  with ``components/indicators/sma.py``, which imports only the standard
  library (its workers hold no pandas: cheaper to fork);
* naive, lookback 60: a fresh subprocess per candle, timed on a sample of
  candles spread over the series and EXTRAPOLATED to 8760;
* naive, no lookback: ``CANDLE_DATA`` holds candles 0..i and the environment
  string outgrows Linux's ``MAX_ARG_STRLEN`` (128 KiB), so ``execve`` fails
  with E2BIG; shown at the first failing candle and at a late one;
* warm pool, no lookback: the full series (skip with ``--skip-full``).

Wall times depend on what else runs on the machine, so each run also prints
the CPU seconds it used (worker processes and the processes they forked, read
from ``/proc`` and ``getrusage``; naive subprocesses from ``os.times``) and
the load average.

Run: ``python benchmarks/script_protocol.py [--sample 40] [--strict-candles 1500] [--skip-full]``;
``--warm-only`` times the warm pool alone, and also runs against a checkout of candleflow from
before isolation (``PYTHONPATH=<that checkout>/src``), for a before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from candleflow.components.script import get_pool, run_script_component
from candleflow.components.script.environment import RunData
from candleflow.components.script.protocol import parse_signal_output

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "components" / "signals" / "ma_crossover.py"
SMA_SCRIPT = ROOT / "components" / "indicators" / "sma.py"
N_CANDLES = 8760
LOOKBACK = 60
MAX_ARG_STRLEN = 32 * 4096  # Linux: the longest single argument or "NAME=value" environment string


def make_candles(n: int = N_CANDLES, seed: int = 42) -> pd.DataFrame:
    """Hourly candles: a mean-reverting random walk around 1.10."""
    rng = np.random.default_rng(seed)
    close = np.empty(n)
    level = 1.10
    for i, shock in enumerate(rng.normal(0.0, 0.0008, n)):
        level += 0.002 * (1.10 - level) + shock
        close[i] = level
    open_ = np.r_[1.10, close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.0004, n))
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close,
                         "volume": rng.integers(100, 5000, n).astype(float)}, index=index)


def pandas_golden_crosses(close: pd.Series) -> list[int]:
    fast, slow = close.rolling(20).mean(), close.rolling(50).mean()
    return np.flatnonzero(((fast.shift(1) <= slow.shift(1)) & (fast > slow)).to_numpy()).tolist()


def run_pool(candles: pd.DataFrame, lookback: int | None, isolation: str = "warm",
             script: Path = SCRIPT) -> tuple[float, float, pd.DataFrame | pd.Series]:
    """(wall seconds, CPU seconds of the worker processes and their forks, signal frame or indicator)."""
    settle()
    cpu = workers_cpu()
    started = time.perf_counter()
    kind = "signal" if script == SCRIPT else "indicator"
    options = {} if isolation == "warm" else {"isolation": isolation}  # --warm-only also runs on older candleflow
    frame = run_script_component(script, kind=kind, name=script.stem, candles=candles, symbol="EURUSD",
                                 timeframe="1h", lookback=lookback, **options)
    seconds = time.perf_counter() - started
    settle()
    return seconds, workers_cpu() - cpu, frame


def settle(limit: float = 5.0) -> None:
    """Wait until no worker has a child left: a chunk process's CPU is counted once its worker reaps it,
    which may be just after the run returned."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy = False
        for pid in get_pool().pids():
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as children:
                    busy = busy or bool(children.read().strip())
            except OSError:
                return  # no /proc children file: the CPU figures may lag a little
        if not busy:
            return
        time.sleep(0.01)


def workers_cpu() -> float:
    """User + system CPU seconds so far of the pool's workers and every process they forked and reaped
    (Linux /proc), plus the workers already stopped (this process's reaped children); NaN without /proc."""
    total = 0
    try:
        for pid in get_pool().pids():
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += sum(int(field) for field in fields[11:15])  # utime, stime, cutime, cstime
    except OSError:
        return float("nan")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total / os.sysconf("SC_CLK_TCK") + children.ru_utime + children.ru_stime


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def naive_env(data: RunData, i: int) -> dict[str, str]:
    """The environment of the seed's method: only the protocol variables, plus PATH."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **data.static_env}
    env.update((key, value) for key, value in data.candle_env(i).items() if key != "INDICATOR_DATA")
    return env


def run_naive(data: RunData, i: int) -> list:
    result = subprocess.run([sys.executable, str(SCRIPT)], env=naive_env(data, i), capture_output=True,
                            text=True, check=True)
    candle_time = pd.Timestamp(data.times[i], unit="s", tz="UTC")
    if "SIGNAL_START" not in result.stdout:  # the seed script prints nothing while warming up
        return []
    return parse_signal_output(result.stdout, component="ma_crossover", candle=i, candle_time=candle_time)[0]


def first_oversized_candle(data: RunData) -> int:
    """The first candle whose ``CANDLE_DATA=[...]`` string (with its NUL) exceeds MAX_ARG_STRLEN."""
    sizes = np.array(data.candles.ends) + len("CANDLE_DATA=[]") + 1
    return int(np.argmax(sizes > MAX_ARG_STRLEN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=40, help="candles timed for the naive method")
    parser.add_argument("--strict-candles", type=int, default=1500,
                        help="candles timed in process isolation (8760: all, nothing extrapolated)")
    parser.add_argument("--skip-full", action="store_true", help="skip the pool run without lookback")
    parser.add_argument("--warm-only", action="store_true",
                        help="only the warm pool with lookback 60 (runs on candleflow before isolation too: A/B)")
    args = parser.parse_args()

    candles = make_candles()
    expected = pandas_golden_crosses(candles["close"])
    workers = get_pool().size
    print(f"{N_CANDLES} hourly candles, seed script {SCRIPT.relative_to(ROOT)}; "
          f"{workers} workers on {os.cpu_count()} cores; {load()} at start")

    started = time.perf_counter()
    run_pool(candles.iloc[:200], LOOKBACK)
    print(f"pool start + warm-up (200 candles):         {time.perf_counter() - started:8.2f} s")

    pool_seconds, pool_cpu, frame = run_pool(candles, LOOKBACK)
    assert frame["bar"].tolist() == expected, "pool signals differ from the pandas golden crosses"
    print(f"warm pool, lookback {LOOKBACK}, {N_CANDLES} candles:  {pool_seconds:8.2f} s measured "
          f"({len(frame)} golden crosses, same as pandas)")
    print(f"   workers' CPU {pool_cpu:.1f} s = {pool_cpu / N_CANDLES * 1e3:.2f} ms/candle, "
          f"i.e. {pool_cpu / workers:.1f} s on {workers} idle cores; {load()}")
    if args.warm_only:
        return

    strict = run_strict(candles, expected, min(args.strict_candles, N_CANDLES), workers)

    windowed = RunData.build(candles, kind="signal", name="ma_crossover", symbol="EURUSD", timeframe="1h",
                             lookback=LOOKBACK)
    sample = np.linspace(0, N_CANDLES - 1, args.sample).astype(int)
    sample = np.unique(np.r_[sample, [i for i in expected if i > 3000][:2]])  # include a couple of crosses
    children = os.times()
    started = time.perf_counter()
    naive_bars = [int(i) for i in sample if run_naive(windowed, int(i))]
    naive_each = (time.perf_counter() - started) / len(sample)
    naive_cpu = sum(os.times()[2:4]) - sum(children[2:4])
    assert naive_bars == [int(i) for i in sample if i in set(expected)]
    print(f"naive subprocess per candle, lookback {LOOKBACK}: {naive_each * N_CANDLES:8.0f} s EXTRAPOLATED "
          f"from {len(sample)} sampled candles ({naive_each * 1e3:.0f} ms/candle x {N_CANDLES})")
    print(f"   subprocesses' CPU {naive_cpu / len(sample) * 1e3:.0f} ms/candle, i.e. "
          f"{naive_cpu / len(sample) * N_CANDLES / workers:.0f} s on {workers} idle cores (EXTRAPOLATED); {load()}")
    print(f"ratio naive / warm pool: {naive_each * N_CANDLES / pool_seconds:.0f}x wall, "
          f"{naive_cpu / len(sample) * N_CANDLES / pool_cpu:.0f}x CPU")
    print(f"ratio naive / process isolation: {naive_each / strict[0]:.0f}x wall, "
          f"{naive_cpu / len(sample) / strict[1]:.0f}x CPU")

    full = RunData.build(candles, kind="signal", name="ma_crossover", symbol="EURUSD", timeframe="1h")
    limit = first_oversized_candle(full)
    run_naive(full, limit - 1)
    print(f"naive without lookback: candle {limit - 1} runs "
          f"(CANDLE_DATA {len(full.candle_env(limit - 1)['CANDLE_DATA']):,} characters)")
    for i in (limit, N_CANDLES - 1):
        size = len(full.candle_env(i)["CANDLE_DATA"])
        try:
            run_naive(full, i)
        except OSError as exc:
            print(f"   candle {i}: {type(exc).__name__} [Errno {exc.errno}] {exc.strerror} "
                  f"(CANDLE_DATA {size:,} characters > MAX_ARG_STRLEN {MAX_ARG_STRLEN:,})")
        else:
            print(f"   candle {i}: ran -- this system has no MAX_ARG_STRLEN limit")

    if args.skip_full:
        print("warm pool, no lookback: skipped (--skip-full)")
        return
    full_seconds, full_cpu, full_frame = run_pool(candles, None)
    assert full_frame["bar"].tolist() == expected
    print(f"warm pool, no lookback, {N_CANDLES} candles:   {full_seconds:8.2f} s measured "
          f"(CANDLE_DATA up to {len(full.candle_env(N_CANDLES - 1)['CANDLE_DATA']) / 2**20:.1f} MiB)")
    print(f"   workers' CPU {full_cpu:.1f} s, i.e. {full_cpu / workers:.1f} s on {workers} idle cores; {load()}")


def run_strict(candles: pd.DataFrame, expected: list[int], n: int, workers: int) -> tuple[float, float]:
    """Process isolation on the first ``n`` candles, next to the warm pool on the same slice; per-candle
    (wall, CPU) seconds of process isolation."""
    head = candles.iloc[:n]
    run_pool(candles.iloc[:50], LOOKBACK, "process")  # the same workers; nothing to warm but the first fork
    warm_seconds, warm_cpu, _ = run_pool(head, LOOKBACK)
    strict_seconds, strict_cpu, frame = run_pool(head, LOOKBACK, "process")
    assert frame["bar"].tolist() == [bar for bar in expected if bar < n], "process isolation differs from pandas"
    scope = "measured" if n == N_CANDLES else f"EXTRAPOLATED from the first {n} candles"
    print(f"process isolation, lookback {LOOKBACK}:      {strict_seconds / n * N_CANDLES:8.2f} s {scope} "
          f"({strict_seconds / n * 1e3:.1f} ms/candle; {len(frame)} golden crosses, same as pandas)")
    print(f"   workers' CPU {strict_cpu / n * 1e3:.2f} ms/candle, i.e. {strict_cpu / n * N_CANDLES / workers:.1f} s "
          f"on {workers} idle cores; {load()}")
    print(f"   same {n} candles, warm pool: {warm_seconds:.2f} s, CPU {warm_cpu / n * 1e3:.2f} ms/candle; "
          f"process / warm: {strict_seconds / warm_seconds:.1f}x wall, {strict_cpu / warm_cpu:.1f}x CPU")
    run_pool(candles.iloc[:100], LOOKBACK, script=SMA_SCRIPT)  # starts its workers (they hold no pandas)
    sma = {isolation: run_pool(head, LOOKBACK, isolation, script=SMA_SCRIPT) for isolation in ("warm", "process")}
    print(f"   {SMA_SCRIPT.name} (imports only the standard library: smaller workers to fork), same {n} candles: "
          f"warm CPU {sma['warm'][1] / n * 1e3:.2f} ms/candle, process {sma['process'][1] / n * 1e3:.2f} ms/candle")
    return strict_seconds / n, strict_cpu / n


if __name__ == "__main__":
    main()
