"""Sweeps on Dask: a LocalCluster and a real scheduler + workers agree with sequential runs, ship workspace
components by value, and turn failing combinations into error rows (faults: test_sweep_faults.py).

One LocalCluster (2 workers) and one CLI-started cluster (scheduler + 2 workers on 127.0.0.1) serve the
whole module; the cluster fixture kills its process groups whatever happens.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from candleflow.backtest import run_backtest
from candleflow.cli import main
from candleflow.data import generate_candles, write_candles
from candleflow.dag.cluster import connect
from candleflow.sweep import SweepSpec, run_sweep
from cluster_helpers import start_cluster

GRID = """\
parameters:
  fast: [10, 20]
  slow: {start: 50, stop: 60, step: 10}
symbols:
  - {symbol: EURUSD, path: data/EURUSD_1h.csv}
  - {symbol: EURUSD_H2, sample: eurusd_1h, start: "2023-07-01"}
rank: {by: total_return, direction: max}
"""

COMPONENTS = '''
import time
from typing import Annotated
from pydantic import Field
from candleflow import indicator

@indicator("fragile_sma")
def fragile_sma(close, *, period: Annotated[int, Field(ge=1)] = 10):
    if period == 13:
        raise ValueError("13 is unlucky")
    return close.rolling(period, min_periods=period).mean()

@indicator("slow_sma")
def slow_sma(close, *, period: int = 20, delay: float = 0.0):
    time.sleep(delay)
    return close.rolling(period, min_periods=period).mean()
'''

STRATEGY = """\
name: workspace_sweep
symbol: TEST
timeframe: 1h
data: {path: candles.csv}
indicators:
  - {name: fast, component: fragile_sma, params: {period: {{ fast }}}}
  - {name: slow, component: slow_sma, params: {period: {{ slow }}, delay: {{ delay | default(0) }}}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
risk: {stop_loss: 0.004, take_profit: 0.008}
"""


@pytest.fixture(scope="module")
def local_client():
    with connect(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"), workers=2)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace whose components no worker can import: they must travel by value."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "components").mkdir()
    (root / "components" / "mine.py").write_text(COMPONENTS)
    (root / "sweep.yaml").write_text(STRATEGY)
    write_candles(generate_candles(1500, seed=5), root / "candles.csv")
    return root


def grid(**parameters) -> SweepSpec:
    return SweepSpec.model_validate({"parameters": parameters, "rank": {"by": "total_return"}})


def same_metrics(row: pd.Series, metrics: dict) -> bool:
    return all(row[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(row[k]))
               for k, v in metrics.items())


def test_local_cluster_equals_sequential_run_backtest(local_client, repo):
    template = repo / "strategies" / "ma_crossover_sweep.yaml"
    result = run_sweep(template, grid(fast=[10, 20, 30], slow=[50, 60], stop_loss=[0.01]), client=local_client)
    frame = result.frame
    assert len(frame) == 6 and frame["error"].isna().all()
    assert frame["total_return"].is_monotonic_decreasing
    assert result.shared["indicator"] == (12, 5) and result.deduplicated("indicator") == 7
    for _, row in frame.iterrows():
        params = {"fast": row["fast"], "slow": row["slow"], "stop_loss": row["stop_loss"]}
        assert same_metrics(row, run_backtest(template, variables=params, cache=None).metrics), params


def test_failing_combinations_become_error_rows(local_client, workspace):
    result = run_sweep(workspace / "sweep.yaml", grid(fast=[0, 5, 13], slow=[20]), client=local_client)
    rows = result.frame.set_index("fast")
    assert "indicators[0].params.period: Input should be greater than or equal to 1" in rows.loc[0, "error"]
    assert rows.loc[13, "error"] == (f"{workspace / 'sweep.yaml'}: indicators[0]: "
                                     f"component 'fast': ValueError: 13 is unlucky")
    assert pd.isna(rows.loc[5, "error"]) and not math.isnan(rows.loc[5, "total_return"])
    assert result.frame["fast"].tolist()[0] == 5  # successes first
    assert result.failed == 2


@pytest.mark.cluster
def test_cli_on_a_real_cluster_equals_the_local_cluster(real_cluster, local_client, repo, tmp_path, capsys):
    template = repo / "strategies" / "ma_crossover_sweep.yaml"
    (tmp_path / "grid.yaml").write_text(GRID)
    local = run_sweep(template, tmp_path / "grid.yaml", client=local_client)
    local.write(tmp_path / "local.csv")
    code = main(["sweep", str(template), "--grid", str(tmp_path / "grid.yaml"), "--scheduler", real_cluster.address,
                 "--out", str(tmp_path / "remote.csv"), "--top", "3"])
    assert code == 0, real_cluster.logs()
    assert (tmp_path / "remote.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    remote = pd.read_csv(tmp_path / "remote.csv")
    assert len(remote) == 8 and set(remote["symbol"]) == {"EURUSD", "EURUSD_H2"}
    out = capsys.readouterr().out
    assert "top 3 of 8 by total_return" in out and "8 combinations, 0 failed" in out


@pytest.mark.cluster
def test_workspace_components_run_on_remote_workers(real_cluster, workspace):
    strategy = workspace / "sweep.yaml"
    result = run_sweep(strategy, grid(fast=[5, 8], slow=[20, 30]), scheduler=real_cluster.address)
    assert result.frame["error"].isna().all(), result.frame["error"].tolist()
    for _, row in result.frame.iterrows():
        params = {"fast": row["fast"], "slow": row["slow"]}
        assert same_metrics(row, run_backtest(strategy, variables=params, cache=None).metrics), params


@pytest.mark.cluster
def test_fail_fast_exits_2_with_one_line(real_cluster, workspace, repo, tmp_path, capsys):
    (tmp_path / "runtime.yaml").write_text("parameters: {fast: [5, 13], slow: [20]}\n")
    code = main(["sweep", str(workspace / "sweep.yaml"), "--grid", str(tmp_path / "runtime.yaml"),
                 "--scheduler", real_cluster.address, "--fail-fast"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == (f"error: combination fast=13, slow=20 failed (--fail-fast): {workspace / 'sweep.yaml'}: "
                      f"indicators[0]: component 'fast': ValueError: 13 is unlucky")
    (tmp_path / "compile.yaml").write_text("parameters: {fast: [0, 10], slow: [50]}\n")
    code = main(["sweep", str(repo / "strategies" / "ma_crossover_sweep.yaml"), "--grid",
                 str(tmp_path / "compile.yaml"), "--fail-fast"])  # stops before any cluster starts
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: combination fast=0, slow=50 failed (--fail-fast): ")
    assert "indicators[0].params.period" in err[0]


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_local_schedulers_equal_the_cluster(local_client, workspace, scheduler):
    """``--scheduler threads|sync|processes`` runs the same merged graph in this process's pools: same rows,
    and a failing combination is still only its own error row (tolerant tasks return the failure)."""
    spec = grid(fast=[0, 5, 13, 8], slow=[20, 30])
    on_cluster = run_sweep(workspace / "sweep.yaml", spec, client=local_client).frame
    local = run_sweep(workspace / "sweep.yaml", spec, scheduler=scheduler, workers=None if scheduler == "sync" else 2)
    pd.testing.assert_frame_equal(local.frame, on_cluster)
    assert local.failed == 4 and local.frame["error"].str.contains("13 is unlucky").sum() == 2


def test_local_fail_fast_stops_at_the_first_failure(workspace, capsys):
    code = main(["sweep", str(workspace / "sweep.yaml"), "--grid", str(_grid_file(workspace, "fast: [5, 13]")),
                 "--scheduler", "sync", "--fail-fast"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: combination fast=13, slow=20 failed (--fail-fast): ")
    assert err.endswith("component 'fast': ValueError: 13 is unlucky\n") and err.count("\n") == 1


def _grid_file(workspace, fast: str):
    path = workspace / f"grid-{abs(hash(fast))}.yaml"
    path.write_text(f"parameters: {{{fast}, slow: [20]}}\n")
    return path


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "gpu"], "--scheduler must be threads, sync, processes or tcp://HOST:PORT, not 'gpu'"),
    (["--scheduler", "sync", "--workers", "2"],
     "--workers sizes a threads or processes scheduler or the embedded cluster, not 'sync'"),
])
def test_bad_sweep_scheduler_options(workspace, capsys, args, message):
    assert main(["sweep", str(workspace / "sweep.yaml"), "--grid", str(_grid_file(workspace, "fast: [5]")),
                 *args]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
