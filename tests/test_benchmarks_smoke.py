"""The benchmark scripts still run: each in a tiny mode, in a subprocess, checking its report lines.

The scripts start together (they are mostly imports and child processes), so the
module takes about as long as the slowest one.

Figures are not asserted (this machine's timing is not a test); only that every script
finishes, prints its tables and agrees on the strategy's trades where it compares them.
vectorbt is left out here: its import and numba compilation alone take tens of seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


COMMANDS = {
    "peers": ["peers.py", "--candles", "1500", "--repeat", "1", "--peers", "backtesting,backtrader",
              "--no-import-times"],
    "scale": ["scale.py", "--sizes", "1000,3000", "--repeat", "1"],
    "cache": ["cache.py", "--candles", "1500", "--repeat", "1", "--strategies", "sma"],
    "conditions": ["conditions.py", "--candles", "3000", "--repeat", "1"],
    "orders": ["orders.py", "--candles", "3000", "--repeat", "1"],
    "output": ["output.py", "--candles", "3000", "--repeat", "1"],
    "report": ["report.py", "--candles", "3000", "--repeat", "1"],
}


@pytest.fixture(scope="module")
def outputs():
    """Start the scripts at once (they are mostly imports and subprocesses); collect them lazily."""
    env = dict(os.environ, TQDM_DISABLE="1")
    procs = {name: subprocess.Popen([sys.executable, str(BENCHMARKS / script), *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env)
             for name, (script, *args) in COMMANDS.items()}
    done: dict[str, str] = {}

    def output(name: str) -> str:
        if name not in done:
            try:
                out, err = procs[name].communicate(timeout=180)
            except subprocess.TimeoutExpired:
                procs[name].kill()
                raise
            assert procs[name].returncode == 0, out + err
            done[name] = out
        return done[name]

    yield output
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_peers_runs_and_libraries_agree(outputs):
    pytest.importorskip("backtesting")
    pytest.importorskip("backtrader")
    out = outputs("peers")
    rows = {m.group(1): (int(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"^(candleflow|backtesting\.py|backtrader) .*?\s(\d+)\s+(\d+\.\d+)\s+[+-]", out, re.M)}
    assert set(rows) == {"candleflow", "backtesting.py", "backtrader"}, out
    trades, equity = rows["candleflow"]
    assert trades > 0
    for name in ("backtesting.py", "backtrader"):
        assert rows[name][0] == trades, out
        assert rows[name][1] == pytest.approx(equity, rel=1e-3), out
    assert re.search(r"dask: 4 tasks ran for 4 nodes", out), out
    assert "candleflow warm" in out


def test_scale_runs_each_size_in_its_own_process(outputs):
    out = outputs("scale")
    assert re.search(r"^\s+1000\s", out, re.M) and re.search(r"^\s+3000\s", out, re.M), out
    assert "time(3000) / time(1000)" in out


def test_cache_reruns_hit_the_cache(outputs):
    out = outputs("cache")
    fees = re.findall(r"fees changed .*?(\d+)/(\d+)", out)
    same = re.findall(r"identical .*?(\d+)/(\d+)", out)
    assert len(fees) == 2 and len(same) == 2, out  # memory and disk
    assert all(int(h) == int(n) - 1 for h, n in fees), out  # everything but the evaluator is a hit
    assert all(int(h) == int(n) for h, n in same), out
    assert re.search(r"^\s+all entries\s", out, re.M) and "warm re-run, every node a disk hit" in out, out  # hit cost


def test_conditions_compares_with_the_plain_crossover(outputs):
    out = outputs("conditions")
    assert re.search(r"^\s+plain\s.*4 nodes \(0 conditions\)", out, re.M), out
    assert re.search(r"^\s+conditions\s.*16 nodes \(10 conditions\)", out, re.M), out
    assert re.search(r"^conditions / plain = \d+\.\d+x$", out, re.M), out


def test_orders_compares_limit_entries_and_trailing_stops_with_market_orders(outputs):
    out = outputs("orders")
    assert re.search(r"^\s+plain\s.*exits \{'signal': \d+", out, re.M), out
    assert re.search(r"^\s+orders\s.*'trailing_stop': \d+", out, re.M), out
    assert re.search(r"^orders / plain = \d+\.\d+x$", out, re.M), out


def test_output_times_writing_against_computing_and_loading(outputs):
    out = outputs("output")
    assert re.search(r"^\s+compute\s", out, re.M), out
    assert re.search(r"^\s+write parquet\s.*write / compute = \d+\.\d+x$", out, re.M), out
    assert re.search(r"^\s+write csv\s.*write / compute = \d+\.\d+x$", out, re.M), out
    assert re.search(r"^\s+load csv\s.*3,000 rows$", out, re.M), out


def test_report_times_and_sizes_the_reports(outputs):
    out = outputs("report")
    for name in ("ma_crossover", "ma_crossover_filtered", "mean_reversion", "trend_daily_filter", "3,000 candles"):
        assert re.search(rf"^\s+{name}\s+[\d,]+\s+[\d,]+\s.*MB\s+\d+\.\dx$", out, re.M), out
    assert re.search(r"^target (MET|MISSED)\s+<= 3 MB for one year of hourly candles", out, re.M), out
