"""Script components cannot leak into each other, into later candles, or onto candleflow's output.

Each test has a misbehaving script from tests/scripts/ (a json.loads patcher, a script that changes the
environment, the working directory, signal handlers..., one that forks, one that starts processes and
leaves them running) next to well-behaved ones, in ``warm`` isolation (a fresh process per chunk, state
restored after every candle) and ``process`` isolation (a fresh process per candle).  On the code before
isolation each of them failed: the patcher doubled the SMA, every leak bit of meddles.py was set, the
forked copies printed on stdout and outlived the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_script_runner import FAILURES, MA_CROSSOVER, SCRIPTS, SMA, alive, make_candles, run, worker_pids

import candleflow
from candleflow.backtest import load_data, prepare, run_compiled
from candleflow.cli import main
from candleflow.components.script import get_pool, shutdown_pool
from candleflow.dag.cache import NodeCache
from candleflow.data import generate_candles, write_candles
from candleflow.errors import ComponentError
from candleflow.vocab import ScriptOptions

REPO = Path(__file__).resolve().parents[1]
MODES = [("warm", 1), ("warm", 2), ("process", 1), ("process", 2)]
MODE_IDS = [f"{isolation}-workers{workers}" for isolation, workers in MODES]
N_WORKSPACE = 120  # candles of the workspace's data: chunks of 50, 50 and 20 in warm isolation


@pytest.fixture(scope="module", autouse=True)
def stop_pool_after_module():
    """Shutting the pool down leaves no worker (and nothing a worker started) behind."""
    yield
    pids = worker_pids()
    shutdown_pool()
    assert not any(alive(pid) for pid in pids)


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return make_candles(120)


# --- a strategy in a workspace of its own ---------------------------------------------------------------------------

STRATEGY = """\
name: isolation
symbol: EURUSD
timeframe: 1h
data: {path: data.csv}
indicators:
  - {name: fast, component: script, path: components/sma.py, params: {period: 5}, lookback: 10}
  - {name: slow, component: script, path: components/sma.py, params: {period: 20}, lookback: 30}
%s
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules:
  entry: {golden_cross: buy}
  exit: {death_cross: close}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("isolation")
    (folder / "components").mkdir()
    shutil.copy(SMA, folder / "components" / "sma.py")
    for script in ("patches_json.py", "forks.py", "starts_sleep.py"):
        shutil.copy(SCRIPTS / script, folder / "components" / script)
    write_candles(generate_candles(N_WORKSPACE, seed=5), folder / "data.csv")
    return folder


def strategy(workspace: Path, name: str, *extra: str) -> Path:
    path = workspace / f"{name}.yaml"
    path.write_text(STRATEGY % "\n".join(f"  - {node}" for node in extra))
    return path


def backtest(path: Path, *, isolation: str = "warm", workers: int | None = None):
    compiled, _ = prepare(path)
    return run_compiled(compiled, load_data(compiled), num_workers=workers,
                        script_options=ScriptOptions(isolation=isolation, workers=workers))


PATCHER = "{name: patcher, component: script, path: components/patches_json.py}"


@pytest.mark.parametrize("isolation, workers", [MODES[0], MODES[1], MODES[3]],
                         ids=[MODE_IDS[0], MODE_IDS[1], MODE_IDS[3]])
def test_a_json_loads_patch_never_reaches_another_component(workspace, isolation, workers):
    alone = backtest(strategy(workspace, "alone"), isolation=isolation, workers=workers)
    with_patcher = strategy(workspace, "patched", PATCHER)
    for _ in range(2):  # the second run's SMAs follow the first run's patcher on the same workers
        patched = backtest(with_patcher, isolation=isolation, workers=workers)
        for name in ("fast", "slow"):
            pd.testing.assert_series_equal(patched.values[name], alone.values[name])
        assert patched.values["patcher"].tolist() == list(range(N_WORKSPACE))  # it ran; its own output is intact
    close = load_data(prepare(with_patcher)[0])["close"]
    np.testing.assert_allclose(alone.values["slow"], close.rolling(20).mean(), rtol=1e-12)


# --- process state -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("isolation, workers", MODES, ids=MODE_IDS)
def test_process_state_is_restored_after_every_candle(candles, isolation, workers):
    """meddles.py changes the environment, cwd, argv, path, SIGTERM, umask, stdin, fd 0, an alarm, the recursion
    limit and the warnings filters on every candle, and reports which of them it finds already changed."""
    cwd = os.getcwd()
    seen = run(SCRIPTS / "meddles.py", candles, kind="indicator", workers=workers, isolation=isolation)
    assert seen.tolist() == [0] * len(candles)
    assert os.getcwd() == cwd and "MEDDLED" not in os.environ


@pytest.mark.parametrize("isolation", ["warm", "process"])
def test_nothing_a_script_changes_reaches_another_component(candles, isolation):
    run(SCRIPTS / "meddles.py", candles, kind="indicator", workers=1, isolation=isolation)
    expr = f"int('MEDDLED' in env) + 2 * int(os.getcwd() != {os.getcwd()!r}) + 4 * int(os.umask(18) != 18)"
    seen = run(SCRIPTS / "env_echo.py", candles, kind="indicator", workers=1, isolation=isolation,
               params={"expr": expr})
    assert seen.tolist() == [0] * len(candles)


def test_a_script_starts_from_the_callers_environment_and_working_directory(candles, tmp_path, monkeypatch):
    """Set now, not when the worker process started: as a fresh process would see them."""
    get_pool()  # workers may already be running
    monkeypatch.setenv("SET_AFTER_THE_WORKERS_STARTED", "7")
    monkeypatch.chdir(tmp_path)
    expr = f"int(env.get('SET_AFTER_THE_WORKERS_STARTED', 0)) + 10 * int(os.getcwd() == {str(tmp_path)!r})"
    for isolation in ("warm", "process"):
        seen = run(SCRIPTS / "env_echo.py", candles.iloc[:5], kind="indicator", isolation=isolation,
                   params={"expr": expr})
        assert seen.tolist() == [17] * 5


def test_module_state_lasts_a_chunk_in_warm_isolation_and_a_candle_in_process_isolation(candles):
    warm = run(SCRIPTS / "counts_in_module.py", candles, kind="indicator", workers=1)
    assert warm.tolist() == [*range(1, 51), *range(1, 51), *range(1, 21)]  # chunks of 50: a fresh fork each
    strict = run(SCRIPTS / "counts_in_module.py", candles, kind="indicator", workers=1, isolation="process")
    assert strict.tolist() == [1] * len(candles)


def test_process_isolation_runs_the_interpreters_exit_steps(candles):
    """atexit handlers and non-daemon threads finish inside the candle, as when a fresh process exits."""
    values = run(SCRIPTS / "prints_at_exit.py", candles.iloc[:8], kind="indicator", isolation="process")
    assert values.tolist() == list(range(8))
    with pytest.raises(ComponentError, match="printed no INDICATOR_START/INDICATOR_END block on any of 8 candles"):
        run(SCRIPTS / "prints_at_exit.py", candles.iloc[:8], kind="indicator")  # warm: the process goes on


def test_numpy_draws_differ_per_candle_in_process_isolation(candles):
    """numpy is preloaded in the template; each candle's fork reseeds its global generator, as a fresh import does."""
    pytest.importorskip("numpy")
    draws = run(SCRIPTS / "draws_numpy.py", candles.iloc[:20], kind="indicator", isolation="process")
    assert draws.nunique() == 20


def test_a_script_starts_without_modules_another_script_preloaded(candles):
    """The seed script's pandas is preloaded in the worker it ran on; that worker never serves a script
    that does not import pandas itself."""
    run(MA_CROSSOVER, candles.iloc[:60], workers=1)
    seen = run(SCRIPTS / "env_echo.py", candles.iloc[:60], kind="indicator", workers=1,
               params={"expr": "int('pandas' in __import__('sys').modules)"})
    assert seen.tolist() == [0] * 60


# --- processes a script starts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("isolation", ["warm", "process"])
def test_a_script_may_use_multiprocessing(candles, isolation):
    values = run(SCRIPTS / "uses_multiprocessing.py", candles.iloc[:6], kind="indicator", isolation=isolation)
    assert values.tolist() == [sum(x * x for x in range(i + 1)) for i in range(6)]


@pytest.mark.parametrize("isolation", ["warm", "process"])
def test_forks_and_started_processes_end_with_their_candle(candles, tmp_path, isolation):
    forked, started = tmp_path / "forked.pids", tmp_path / "started.pids"
    values = run(SCRIPTS / "forks.py", candles, kind="indicator", workers=2, isolation=isolation,
                 params={"pids": str(forked)})
    assert values.tolist() == list(range(len(candles)))  # the forked copies sent nothing
    # one worker: each candle counts the processes of earlier candles that are still running
    running = run(SCRIPTS / "starts_sleep.py", candles, kind="indicator", workers=1, isolation=isolation,
                  params={"pids": str(started)})
    assert running.tolist() == [0] * len(candles)
    pids = [int(pid) for path in (forked, started) for pid in path.read_text().split()]
    assert len(pids) == 3 * len(candles)
    assert not [pid for pid in pids if alive(pid)]


def _candleflow(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    src = str(Path(candleflow.__file__).resolve().parents[1])  # the candleflow under test, in the child too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
           "CANDLEFLOW_DEBUG": ""}
    return subprocess.run([sys.executable, "-m", "candleflow.cli", *args], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def reference_run(workspace) -> Path:
    """The strategy without misbehaving nodes, through the real CLI."""
    done = _candleflow(workspace, "run", strategy(workspace, "reference").name, "--out", "reference", "--no-cache",
                       "-q")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done.stderr
    return workspace / "reference"


@pytest.mark.parametrize("isolation", ["warm", "process"])
def test_forking_scripts_leave_candleflows_output_and_results_alone(workspace, reference_run, isolation):
    pids = workspace / f"{isolation}.pids"
    path = strategy(workspace, f"forking_{isolation}",
                    f"{{name: forker, component: script, path: components/forks.py, params: {{pids: {pids}}}}}",
                    f"{{name: starter, component: script, path: components/starts_sleep.py, params: {{pids: {pids}}}}}")
    done = _candleflow(workspace, "run", path.name, "--out", isolation, "--no-cache", "--isolation", isolation, "-q")
    unread = [f"warning: {path.name}: indicators[{i}]: indicator '{name}' is read by nothing (no signal, condition "
              f"or indicator names it); remove it or use it\n" for i, name in ((2, "forker"), (3, "starter"))]
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "".join(unread)), done.stderr  # no "FORKED COPY"
    for name in ("trades.csv", "equity.parquet", "signals.csv"):
        assert (workspace / isolation / name).read_bytes() == (reference_run / name).read_bytes(), name
    indicators = pd.read_parquet(workspace / isolation / "indicators.parquet").set_index("time")
    reference = pd.read_parquet(reference_run / "indicators.parquet").set_index("time")
    pd.testing.assert_frame_equal(indicators[["fast", "slow"]], reference)
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 3 * N_WORKSPACE and not [pid for pid in started if alive(pid)]


# --- the example strategy: any --workers, either isolation -----------------------------------------------------------


def _example(n: int, **options):
    compiled, _ = prepare(REPO / "strategies" / "ma_crossover_script.yaml")
    candles = load_data(compiled).iloc[:n]
    workers = options.get("workers")
    return run_compiled(compiled, candles, num_workers=workers, script_options=ScriptOptions(**options))


def _assert_same_results(a, b) -> None:
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_series_equal(a.equity, b.equity)
    for name in a.values:
        if isinstance(a.values[name], pd.Series):
            pd.testing.assert_series_equal(a.values[name], b.values[name])
    for name, frame in a.signals().items():
        pd.testing.assert_frame_equal(frame, b.signals()[name])


def test_the_example_strategy_gives_the_same_results_for_any_workers():
    one = _example(420, workers=1)  # chunks of 53 candles
    assert len(one.signals()["golden"]) >= 2 and len(one.trades) >= 1
    for workers in (2, 3):  # chunks of 50
        _assert_same_results(one, _example(420, workers=workers))


def test_process_isolation_equals_warm_isolation_on_the_example_strategy():
    warm = _example(150)
    assert len(warm.signals()["golden"]) >= 1 and len(warm.signals()["death"]) >= 1
    _assert_same_results(warm, _example(150, isolation="process"))


# --- the failures of the runner's own tests, in process isolation ----------------------------------------------------


@pytest.mark.parametrize("script, candle, message, kwargs", FAILURES, ids=[f"{f[0]}-{f[1]}" for f in FAILURES])
def test_failures_are_the_same_in_process_isolation(candles, script, candle, message, kwargs):
    run(SMA, candles.iloc[:2], kind="indicator", isolation="process")  # the pool is up
    before = worker_pids()
    with pytest.raises(ComponentError) as info:
        run(SCRIPTS / script, candles.iloc[:40], name="bad", isolation="process", **kwargs)
    text = str(info.value)
    assert text.startswith(f"component 'bad': candle {candle}: ")
    assert message in text and "\n" not in text
    replaced = before - worker_pids()
    assert bool(replaced) == (script in ("sleeps.py", "hard_exit.py", "segfault.py"))
    assert not any(alive(pid) for pid in replaced)
    values = run(SMA, candles.iloc[:40], kind="indicator", params={"period": 5}, isolation="process")
    np.testing.assert_allclose(values, candles["close"].iloc[:40].rolling(5).mean(), rtol=1e-12)


def test_the_block_rule_holds_across_chunks(candles):
    """The block is on candle 49, the last of the first chunk; the gap on 50 is in the second."""
    with pytest.raises(ComponentError, match="candle 50: printed no SIGNAL_START/SIGNAL_END block after printing "
                                             "one on candle 49"):
        run(SCRIPTS / "stops_printing.py", candles, workers=2, params={"last": 49})


# --- options ---------------------------------------------------------------------------------------------------------


def test_a_strict_run_does_not_reuse_a_warm_runs_cache(workspace, tmp_path):
    path = strategy(workspace, "cached")
    compiled, _ = prepare(path)
    candles = load_data(compiled)
    cache = NodeCache(tmp_path / "cache")

    def cache_states(**options) -> dict[str, str]:
        result = run_compiled(compiled, candles, cache=cache, script_options=ScriptOptions(**options))
        return {name: stats.cache for name, stats in result.stats.items() if name in ("fast", "slow")}

    assert cache_states() == {"fast": "miss", "slow": "miss"}
    assert cache_states(isolation="process") == {"fast": "miss", "slow": "miss"}
    assert cache_states(isolation="process") == {"fast": "hit", "slow": "hit"}
    assert cache_states(isolation="warm") == {"fast": "hit", "slow": "hit"}


def test_isolation_on_a_node_and_on_the_command_line(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    node = strategy(workspace, "node", PATCHER.replace("}", ", isolation: process}"))
    compiled, _ = prepare(node)
    assert compiled.plans["patcher"].spec.isolation == "process"
    assert main(["run", node.name, "--no-cache", "-q", "--isolation", "strict"]) == 2
    assert capsys.readouterr().err == "error: --isolation must be warm or process, not 'strict'\n"
    bad = strategy(workspace, "bad", PATCHER.replace("}", ", isolation: fresh}"))
    assert main(["validate", bad.name]) == 2
    assert "indicators[2].isolation: Input should be 'warm' or 'process'" in capsys.readouterr().err
    builtin = workspace / "builtin.yaml"
    builtin.write_text(STRATEGY.replace("component: script, path: components/sma.py,", "component: sma,")
                       .replace(", lookback: 10", ", isolation: process").replace(", lookback: 30", "") % "")
    assert main(["validate", builtin.name]) == 2
    assert "'isolation' is only for component: script" in capsys.readouterr().err
