"""The one task builder and its backends: every ``get`` gives the same run, and keys cannot go stale.

``run`` is checked on each backend (threads, sync, processes, and a real
``dask scheduler`` + ``dask worker`` on 127.0.0.1) against the in-process result,
trade for trade; a workspace component travels to the processes and the cluster
by value.  The memo keys are checked to change when a component's or the
evaluator's code changes.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from candleflow.backtest import prepare, run_compiled
from candleflow.cli import main
from candleflow.dag.build import build, node_keys
from candleflow.dag.cache import NodeCache
from candleflow.data import generate_candles
from candleflow.vocab import EVALUATOR
from cluster_helpers import start_cluster

HULL = '''
from candleflow import indicator

@indicator("doubled")
def doubled(close, *, factor: float = 2.0):
    return close.rolling(3, min_periods=3).mean() * factor / 2.0
'''

STRATEGY = '''
name: builder
symbol: TEST
timeframe: 1h
data: {path: candles.csv}
indicators:
  - {name: fast, component: doubled}
  - {name: slow, component: ema, params: {period: 20}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
'''


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("builder")
    (folder / "components").mkdir()
    (folder / "components" / "doubled.py").write_text(HULL)
    (folder / "s.yaml").write_text(STRATEGY)
    generate_candles(600, seed=3).to_csv(folder / "candles.csv")
    return folder


@pytest.fixture(scope="module")
def reference(workspace):
    compiled, _ = prepare(workspace / "s.yaml")
    return run_compiled(compiled, _candles(compiled), scheduler="sync")


def _candles(compiled):
    from candleflow.backtest import load_data

    return load_data(compiled)


def _same_run(result, reference) -> None:
    pd.testing.assert_frame_equal(result.trades, reference.trades)
    pd.testing.assert_series_equal(result.equity, reference.equity)
    for name, value in reference.values.items():
        if name != EVALUATOR:
            got = result.values[name]
            (pd.testing.assert_frame_equal if isinstance(value, pd.DataFrame) else pd.testing.assert_series_equal)(
                got, value)
    assert {n: s.status for n, s in result.stats.items()} == {n: "ok" for n in reference.stats}


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_every_local_get_gives_the_same_run(workspace, reference, scheduler):
    compiled, _ = prepare(workspace / "s.yaml")
    result = run_compiled(compiled, _candles(compiled), scheduler=scheduler, num_workers=2)
    _same_run(result, reference)
    assert len(reference.trades) > 0
    assert all(s.seconds > 0 for s in result.stats.values())


@pytest.mark.cluster
def test_run_on_a_real_dask_scheduler(workspace, reference, tmp_path):
    """``candleflow run --scheduler tcp://...``: one backtest on a real cluster equals the in-process run."""
    cluster = start_cluster(tmp_path / "cluster", workers=1)
    try:
        code = main(["run", str(workspace / "s.yaml"), "--scheduler", cluster.address, "--no-cache",
                     "--out", str(tmp_path / "out"), "-q"])
        assert code == 0, cluster.logs()
    finally:
        cluster.stop()
    trades = pd.read_csv(tmp_path / "out" / "trades.csv")
    assert len(trades) == len(reference.trades)
    assert trades["entry_price"].tolist() == pytest.approx(reference.trades["entry_price"].tolist(), rel=0, abs=0)


def test_cache_hits_are_not_recomputed_on_any_backend(workspace, reference):
    compiled, _ = prepare(workspace / "s.yaml")
    cache = NodeCache()
    run_compiled(compiled, _candles(compiled), cache=cache, scheduler="sync")
    again = run_compiled(compiled, _candles(compiled), cache=cache, scheduler="processes")
    assert {s.cache for s in again.stats.values()} == {"hit"}
    _same_run(again, reference)


def test_a_failing_node_is_marked_and_the_rest_of_the_run_is_kept_in_the_cache(workspace, tmp_path):
    folder = tmp_path / "ws"
    shutil.copytree(workspace, folder)
    (folder / "s.yaml").write_text(STRATEGY.replace("{name: slow, component: ema, params: {period: 20}}",
                                                    "{name: slow, component: boom, inputs: [fast]}"))
    (folder / "components" / "boom.py").write_text(textwrap.dedent('''
        from candleflow import indicator

        @indicator("boom")
        def boom(close):  # its input is 'fast', so 'fast' has run when it fails
            raise ValueError("no luck")
    '''))
    compiled, _ = prepare(folder / "s.yaml")
    cache, seen = NodeCache(), []
    with pytest.raises(Exception, match="no luck") as caught:
        run_compiled(compiled, _candles(compiled), cache=cache, scheduler="sync", on_node_done=seen.append)
    assert str(caught.value).startswith(f"{folder / 's.yaml'}: indicators[1]: component 'slow'")
    assert {s.name: s.status for s in seen} == {"fast": "ok", "slow": "failed"}
    keys = node_keys(compiled, f"candles-{__import__('dask.base').base.tokenize(_candles(compiled))}")
    assert cache.get(keys["fast"], None) is not None


def test_keys_change_when_a_workspace_component_is_edited_in_the_same_process(tmp_path, workspace):
    folder = tmp_path / "ws"
    shutil.copytree(workspace, folder)
    compiled, _ = prepare(folder / "s.yaml")
    candles = _candles(compiled)
    cache = NodeCache()
    first = run_compiled(compiled, candles, cache=cache)
    source = folder / "components" / "doubled.py"
    source.write_text(HULL.replace("* factor / 2.0", "* factor / 4.0"))
    edited, _ = prepare(folder / "s.yaml")
    second = run_compiled(edited, candles, cache=cache)
    assert second.stats["fast"].cache == "miss"
    pd.testing.assert_series_equal(second.values["fast"], first.values["fast"] / 2)


def test_every_key_follows_the_candles(repo, tmp_path):
    """Every task reads the candles, so every key changes with them: script nodes (which bind no candle column)
    and nodes that read only a reference series, down to the evaluator."""
    generate_candles(50, seed=1).to_csv(tmp_path / "ref.csv")
    (tmp_path / "s.yaml").write_text(textwrap.dedent("""\
        name: on_a_reference
        symbol: TEST
        timeframe: 1h
        data: {sample: eurusd_1h}
        references: {spx: {path: ref.csv}}
        indicators:
          - {name: a, component: sma, params: {period: 5}, inputs: [spx.close]}
          - {name: b, component: sma, params: {period: 9}, inputs: [spx.close]}
        signals:
          - {name: cross, component: ma_crossover, inputs: [a, b]}
        rules: {entry: {golden_cross: buy}}
        """))
    for strategy in (repo / "strategies" / "ma_crossover_script.yaml", tmp_path / "s.yaml"):
        compiled, _ = prepare(strategy)
        first, second = node_keys(compiled, "candles-one"), node_keys(compiled, "candles-two")
        computed = [*compiled.plans, EVALUATOR]  # not the reference: its key is its file's content
        assert len(computed) >= 4 and all(first[name] != second[name] for name in computed), strategy


def test_a_cached_script_strategy_run_on_other_candles_is_computed_again(repo):
    """It once hit every node (no key read the candles) and gave the first candles' trades for the second."""
    compiled, _ = prepare(repo / "strategies" / "ma_crossover_script.yaml")
    candles = _candles(compiled)
    cache = NodeCache()
    run_compiled(compiled, candles.iloc[:600], cache=cache, scheduler="sync")
    again = run_compiled(compiled, candles.iloc[300:900], cache=cache, scheduler="sync")
    fresh = run_compiled(compiled, candles.iloc[300:900], scheduler="sync")
    assert {s.cache for s in again.stats.values()} == {"miss"}
    assert len(fresh.trades) > 0
    pd.testing.assert_frame_equal(again.trades, fresh.trades)


def test_evaluator_key_follows_the_evaluator_code(workspace, monkeypatch):
    from candleflow.dag import build as build_module

    compiled, _ = prepare(workspace / "s.yaml")
    before = node_keys(compiled, "candles-x")
    build_module.evaluator_code_hash.cache_clear()
    monkeypatch.setattr(build_module, "source_hash", lambda *modules: "edited-simulate")
    after = node_keys(compiled, "candles-x")
    build_module.evaluator_code_hash.cache_clear()
    assert after[EVALUATOR] != before[EVALUATOR]
    assert {n: k for n, k in after.items() if n != EVALUATOR} == {n: k for n, k in before.items() if n != EVALUATOR}


def test_evaluator_code_hash_covers_the_simulation_source():
    import inspect

    from candleflow.dag.build import evaluator_code_hash
    from candleflow.portfolio import simulate
    from candleflow.vocab import source_hash

    assert source_hash(simulate) != source_hash(inspect)
    assert len(evaluator_code_hash()) == 16


def test_replay_and_metrics_builds_share_node_keys(workspace):
    compiled, _ = prepare(workspace / "s.yaml")
    full = build(compiled, "candles-x")
    metrics = build(compiled, "candles-x", metrics_only=True)
    assert {n: k for n, k in full.keys.items() if n != EVALUATOR} == \
        {n: k for n, k in metrics.keys.items() if n != EVALUATOR}
    assert metrics.evaluator_key.startswith("metrics-") and full.evaluator_key.startswith("evaluator-")
    replayed = build(compiled, "candles-x", replay={"cross": pd.DataFrame()})
    assert set(replayed.nodes) == {"cross", EVALUATOR}


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "gpu"], "--scheduler must be threads, sync, processes or tcp://HOST:PORT, not 'gpu'"),
    (["--timeout", "0"], "--timeout must be a number of seconds above 0, got 0"),
    (["--script-workers", "0"], "--script-workers must be at least 1, got 0"),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--workers", "2", "--scheduler", "sync"], "--workers sizes a threads or processes scheduler, not 'sync'"),
])
def test_bad_execution_options_are_one_line(workspace, capsys, args, message):
    assert main(["run", str(workspace / "s.yaml"), "--no-cache", "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"
