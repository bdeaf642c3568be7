"""Script components end to end: warm worker pool, seed script, failures and recovery."""

from __future__ import annotations

import logging
import multiprocessing
import os
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from candleflow.components.script import get_pool, run_script_component, shutdown_pool
from candleflow.components.script.environment import RunData
from candleflow.components.script.pool import ScriptPool
from candleflow.components.script.worker import ScriptJob
from candleflow.errors import ComponentError

ROOT = Path(__file__).resolve().parents[1]
SEED_PLAN = ROOT.parent / "shared" / "seed" / "orchestrator-component-execution-plan.md"  # CI lays shared/ beside the clone
MA_CROSSOVER = ROOT / "components" / "signals" / "ma_crossover.py"
MA_DEATH_CROSS = ROOT / "components" / "signals" / "ma_death_cross.py"
SMA = ROOT / "components" / "indicators" / "sma.py"
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def make_candles(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.10 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": np.r_[close[0], close[:-1]], "high": close * 1.001, "low": close * 0.999,
                         "close": close, "volume": rng.integers(100, 1000, n).astype(float)}, index=index)


def run(path: Path, candles: pd.DataFrame, *, kind: str = "signal", name: str | None = None, **kwargs):
    return run_script_component(path, kind=kind, name=name or path.stem, candles=candles, symbol="EURUSD",
                                timeframe="1h", **kwargs)


def pandas_golden_crosses(close: pd.Series) -> list[int]:
    fast, slow = close.rolling(20).mean(), close.rolling(50).mean()
    cross = (fast.shift(1) <= slow.shift(1)) & (fast > slow)
    return np.flatnonzero(cross.to_numpy()).tolist()


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return make_candles(300)


@pytest.fixture(scope="module")
def seed_signals(candles) -> pd.DataFrame:
    """The verbatim seed script over all 300 candles, no lookback."""
    return run(MA_CROSSOVER, candles, name="ma_crossover")


@pytest.fixture(scope="module", autouse=True)
def stop_pool_after_module():
    """Shutting the pool down leaves no worker process behind."""
    yield
    pids = worker_pids()
    shutdown_pool()
    assert not any(alive(pid) for pid in pids)
    assert not [p for p in multiprocessing.active_children() if p.name == "candleflow-script-worker"]


def worker_pids() -> set[int]:
    return set(get_pool().pids())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


# --- the seed's script ------------------------------------------------------------


def test_ma_crossover_is_the_seed_script_verbatim():
    block = SEED_PLAN.read_text().split("### Update MA Crossover Signal", 1)[1].split("```python\n", 1)[1]
    assert MA_CROSSOVER.read_text() == block.split("```", 1)[0]


def test_seed_script_finds_exactly_the_pandas_golden_crosses(candles, seed_signals):
    expected = pandas_golden_crosses(candles["close"])
    assert len(expected) >= 2
    frame = seed_signals
    assert frame["bar"].tolist() == expected
    assert set(frame["signal_type"]) == {"golden_cross"} and set(frame["strength"]) == {0.85}
    fast = candles["close"].rolling(20).mean()
    assert [m["fast_ma"] for m in frame["metadata"]] == pytest.approx(fast.iloc[expected].tolist(), rel=1e-12)


def test_lookback_60_gives_the_same_signals_as_no_lookback(candles, seed_signals):
    windowed = run(MA_CROSSOVER, candles, lookback=60)
    pd.testing.assert_frame_equal(seed_signals.drop(columns="metadata"), windowed.drop(columns="metadata"))
    for full, window in zip(seed_signals["metadata"], windowed["metadata"]):
        assert full == pytest.approx(window, rel=1e-12)  # rolling sums over a different start


def test_script_lookback_constant_is_used_and_yaml_lookback_wins(tmp_path, candles):
    script = tmp_path / "windowed.py"
    script.write_text("LOOKBACK = 5\n" + (SCRIPTS / "env_echo.py").read_text())
    params = {"expr": "len(candles) * 100 + int(env['CURRENT_INDEX'])"}
    from_script = run(script, candles.iloc[:10], kind="indicator", params=params)
    assert from_script.tolist() == [100, 201, 302, 403, 504, 504, 504, 504, 504, 504]
    from_yaml = run(script, candles.iloc[:10], kind="indicator", params=params, lookback=3)
    assert from_yaml.tolist()[-1] == 302


def test_no_environment_size_limit_without_lookback():
    candles = make_candles(3000)
    expr = "len(env['CANDLE_DATA']) if env['GLOBAL_INDEX'] != '2999' else len(json.loads(env['CANDLE_DATA']))"
    sizes = run(SCRIPTS / "env_echo.py", candles, kind="indicator", params={"expr": expr})
    assert sizes.iloc[-2] > 2 * 128 * 1024  # CANDLE_DATA far past MAX_ARG_STRLEN
    assert sizes.iloc[-1] == 3000  # ... and valid JSON holding every candle
    assert sizes.iloc[:-1].is_monotonic_increasing and sizes.index.equals(candles.index)


# --- environment, inputs, indicators ------------------------------------------------


@pytest.mark.parametrize("expr, expected", [
    ("int(env['GLOBAL_INDEX'])", list(range(12))),
    ("int(env['CANDLE_OFFSET'])", [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
    ("int(env['CURRENT_INDEX'])", [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3]),
    ("len(inputs['ref']['values'])", [1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4]),
    ("inputs['ref']['current']", [np.nan, np.nan, 2.0, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    ("sum(v is None for v in inputs['ref']['values'])", [1, 2, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0]),
    ("candles[int(env['CURRENT_INDEX'])]['time'] - int(env['GLOBAL_INDEX']) * 3600", [1704067200] * 12),
    ("int((env['SYMBOL'], env['TIMEFRAME'], env['COMPONENT_TYPE'], env['COMPONENT_NAME']) == "
     "('EURUSD', '1h', 'indicator', 'echo'))", [1] * 12),
])
def test_environment_seen_by_the_script_with_lookback(expr, expected):
    candles = make_candles(12)
    ref = pd.Series([np.nan, np.nan, *range(2, 12)], index=candles.index, dtype=float)
    got = run(SCRIPTS / "env_echo.py", candles, kind="indicator", name="echo", inputs={"ref": ref},
              params={"expr": expr}, lookback=4)
    np.testing.assert_array_equal(got.to_numpy(), np.array(expected, dtype=float))


def test_sma_script_matches_pandas_and_feeds_the_death_cross_script():
    candles = make_candles(400, seed=3)
    fast = run(SMA, candles, kind="indicator", name="sma_fast", params={"period": 10})
    slow = run(SMA, candles, kind="indicator", name="sma_slow", params={"period": 30})
    np.testing.assert_allclose(fast, candles["close"].rolling(10).mean(), rtol=1e-12)
    np.testing.assert_allclose(slow, candles["close"].rolling(30).mean(), rtol=1e-12)
    assert run(SMA, candles.iloc[:30], kind="indicator").isna().sum() == 19  # default period 20

    frame = run(MA_DEATH_CROSS, candles, inputs={"sma_fast": fast, "sma_slow": slow},
                params={"fast": "sma_fast", "slow": "sma_slow"}, lookback=2)
    expected = np.flatnonzero(((fast.shift(1) >= slow.shift(1)) & (fast < slow)).to_numpy()).tolist()
    assert len(expected) >= 2 and frame["bar"].tolist() == expected
    assert set(frame["signal_type"]) == {"death_cross"}


def test_death_cross_without_params_is_a_clear_error():
    with pytest.raises(ComponentError, match="candle 0: script exited with an error message .*needs params"):
        run(MA_DEATH_CROSS, make_candles(5))


def test_progress_and_verbose_logging(candles, caplog):
    seen = []
    with caplog.at_level(logging.INFO, logger="candleflow.script"):
        run(SMA, candles.iloc[:40], kind="indicator", progress=seen.append, verbose=True)
    assert seen[-1] == 40 and seen == sorted(seen)
    lines = [r.getMessage() for r in caplog.records if r.name == "candleflow.script"]
    assert sum(" candle " in line and " ms" in line for line in lines) == 40
    assert "40 candles in" in lines[-1]


def test_empty_candles_and_missing_script(candles):
    assert run(SMA, candles.iloc[:0], kind="indicator").empty
    assert run(MA_CROSSOVER, candles.iloc[:0]).empty
    with pytest.raises(ComponentError, match="component 'nope': script not found"):
        run(SCRIPTS / "nope.py", candles, name="nope")


def test_two_threads_share_the_pool(candles):
    expected = [bar for bar in pandas_golden_crosses(candles["close"]) if bar < 150]
    with ThreadPoolExecutor(2) as executor:
        frames = list(executor.map(lambda lb: run(MA_CROSSOVER, candles.iloc[:150], lookback=lb), [None, 60]))
    assert all(frame["bar"].tolist() == expected for frame in frames)


def test_script_edits_are_picked_up(tmp_path, candles):
    script = tmp_path / "edited.py"
    script.write_text("print('INDICATOR_START\\n{\"current\": 1}\\nINDICATOR_END')\n")
    assert set(run(script, candles.iloc[:5], kind="indicator")) == {1.0}
    script.write_text("print('INDICATOR_START\\n{\"current\": 22}\\nINDICATOR_END')\n")
    os.utime(script, ns=(1, 1))  # a different mtime even on coarse clocks
    assert set(run(script, candles.iloc[:5], kind="indicator")) == {22.0}


# --- failures: one line, component and candle, then the pool still works --------------

FAILURES = [
    ("raises.py", 5, "script raised ValueError: boom at five (line 5)", {}),
    ("exits_nonzero.py", 7, "script exited with code 3 (giving up)", {}),
    ("silent.py", 39, "printed no SIGNAL_START/SIGNAL_END block on any of 40 candles (last stdout: just chatting)", {}),
    ("garbage.py", 4, "invalid JSON between SIGNAL_START and SIGNAL_END", {}),
    ("two_blocks.py", 6, "printed 2 SIGNAL_START/SIGNAL_END blocks", {}),
    ("huge_output.py", 3, "printed more than the 1 MiB (1048576 characters) allowed on stdout", {}),
    ("sleeps.py", 2, "timed out after 1 s (at line 7)", {"timeout": 1.0}),
    ("future_timestamp.py", 8, "is after the current candle's time 2024-01-01T08:00:00+00:00 (look-ahead)", {}),
    ("hard_exit.py", 9, "the worker process running the script exited with code 1", {}),
    ("segfault.py", 4, "was killed by SIGSEGV (at line 6) (Fatal Python error: Segmentation fault)", {}),
    ("stops_printing.py", 10, "printed no SIGNAL_START/SIGNAL_END block after printing one on candle 9", {}),
    ("stops_printing.py", 9, "printed no SIGNAL_START/SIGNAL_END block after printing one on candle 8",
     {"params": {"last": 8}}),  # across chunks: test_script_isolation.py::test_the_block_rule_holds_across_chunks
    ("fails_everywhere.py", 0, "script raised RuntimeError: failed at 0", {}),  # the earliest, not the first
]


@pytest.mark.parametrize("script, candle, message, kwargs", FAILURES, ids=[f"{f[0]}-{f[1]}" for f in FAILURES])
def test_failure_is_one_clear_error_and_the_pool_recovers(candles, script, candle, message, kwargs):
    run(SMA, candles.iloc[:2], kind="indicator")  # the pool is up
    before = worker_pids()
    with pytest.raises(ComponentError) as info:
        run(SCRIPTS / script, candles.iloc[:40], name="bad", **kwargs)
    text = str(info.value)
    assert text.startswith(f"component 'bad': candle {candle}: ")
    assert message in text and "\n" not in text
    assert info.value.candle == candle and info.value.component == "bad"
    replaced = before - worker_pids()
    assert bool(replaced) == (script in ("sleeps.py", "hard_exit.py", "segfault.py"))
    assert not any(alive(pid) for pid in replaced)
    values = run(SMA, candles.iloc[:40], kind="indicator", params={"period": 5})
    np.testing.assert_allclose(values, candles["close"].iloc[:40].rolling(5).mean(), rtol=1e-12)


def test_keyboard_interrupt_kills_the_busy_workers_and_the_pool_still_runs(candles):
    pool = ScriptPool(1)
    data = RunData.build(candles.iloc[:40], kind="indicator", name="sma", symbol="E", timeframe="1h")
    job = ScriptJob(str(SMA), data, verbose=False)
    busy = []

    def interrupt(i, result):
        busy.extend(pool.pids())
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            pool.run(job, 40, on_candle=interrupt)
        assert busy and not any(alive(pid) for pid in busy)
        assert pool.pids() == []  # killed, not replaced: the next run starts fresh workers
        outcome = pool.run(job, 40)
        assert outcome.error is None and all(result is not None for result in outcome.results)
    finally:
        pool.shutdown()




def test_the_script_folder_is_importable(tmp_path, candles):
    (tmp_path / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "uses_helper.py").write_text(textwrap.dedent("""\
        import os
        from helper import double  # a sibling module: the script's folder is on sys.path
        print("INDICATOR_START")
        print('{"current": %d}' % double(int(os.environ["GLOBAL_INDEX"])))
        print("INDICATOR_END")
    """))
    assert run(tmp_path / "uses_helper.py", candles.iloc[:4], kind="indicator").tolist() == [0, 2, 4, 6]
