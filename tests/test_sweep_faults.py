"""Sweeps under faults, on real processes: a worker or the scheduler SIGKILLed mid-sweep or right after it.

* A killed worker costs nothing: every combination comes back exactly once with the metrics of the
  run without the fault.  The kill lands when ``left`` metrics tasks are still to compute: by default at
  half the sweep and at its last 3 tasks (when the old code lost the finished results the worker held),
  with ``-m slow`` at 20 points from the first task to the last two.
* A killed scheduler ends the CLI with one line and exit 2, ``--out`` holding every row: those gathered
  before the kill, the others marked ``not computed: scheduler lost``.  Killed after the last row was
  gathered, it changes nothing: exit 0, nothing on stderr, the same file as without the fault.
* The CLI's own embedded cluster is quiet when one of its workers is killed.

Each cluster is a fresh one (a killed worker or scheduler stays dead); the CLI runs in a subprocess whose
only addition is the fault, injected from the sweep's progress callback or after its last gather.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from candleflow.data import generate_candles, write_candles
from candleflow.sweep import SweepSpec, combinations, run_sweep
from candleflow.dag.cluster import connect
from candleflow.sweep.run import NOT_COMPUTED
from cluster_helpers import kill_when_left, start_cluster

COMPONENTS = '''
import time
from candleflow import signal
from candleflow.components.signals import crosses_above, crosses_below

@signal("slow_cross", signal_types=("golden_cross", "death_cross"))
def slow_cross(fast, slow, *, delay: float = 0.0):
    time.sleep(delay)  # one per combination: metrics tasks finish one by one, not in bursts, slowly enough
    # for a 20 ms poll of a loaded 2-core machine to see the last three
    return {"golden_cross": crosses_above(fast, slow), "death_cross": crosses_below(fast, slow)}
'''

STRATEGY = """\
name: faults
symbol: TEST
timeframe: 1h
data: {path: candles.csv}
indicators:
  - {name: fast, component: sma, params: {period: {{ fast }}}}
  - {name: slow, component: sma, params: {period: {{ slow }}}}
signals:
  - {name: cross, component: slow_cross, inputs: [fast, slow], params: {delay: 0.25}}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
risk: {stop_loss: 0.004, take_profit: 0.008}
"""

GRID = "parameters: {fast: [5, 8, 11, 14], slow: {start: 20, stop: 64, step: 4}}\nrank: {by: total_return}\n"
SPEC = SweepSpec.model_validate({"parameters": {"fast": [5, 8, 11, 14], "slow": {"start": 20, "stop": 64, "step": 4}},
                                 "rank": {"by": "total_return"}})
TOTAL = len(combinations(SPEC))  # 48, one metrics task each

# Metrics tasks still to compute when the worker dies: half the sweep and its very end; 47 down to 2 (-m slow).
LEFT = [TOTAL // 2, 3]
LEFT_SLOW = [max(2, round(TOTAL * (1 - (i + 0.5) / 20))) for i in range(20)]  # 2: the last two finish together

# The real CLI, plus a SIGKILL of the scheduler: at the first progress report with DONE_AT combinations done
# (KILL=mid), or once the sweep's last result is gathered, before the client closes (KILL=after).
CLI_WITH_FAULT = textwrap.dedent("""
    import contextlib, os, signal, socket, sys, time
    import candleflow.sweep.display as display, candleflow.sweep.run as run
    from candleflow.cli import main

    address = sys.argv[sys.argv.index("--scheduler") + 1]

    def kill_scheduler():
        os.kill(int(os.environ["SCHEDULER_PID"]), signal.SIGKILL)
        host, port = address.rsplit("/", 1)[1].rsplit(":", 1)
        for _ in range(200):  # until its port refuses connections
            try:
                socket.create_connection((host, int(port)), timeout=0.1).close()
            except OSError:
                return
            time.sleep(0.05)

    if os.environ["KILL"] == "mid":
        @contextlib.contextmanager
        def progress_bar():
            def on_progress(done, total):
                if done >= int(os.environ["DONE_AT"]) and not os.path.exists(os.environ["DONE_FILE"]):
                    kill_scheduler()
                    with open(os.environ["DONE_FILE"], "w") as f:
                        f.write(str(done))
            yield on_progress
        display.progress_bar = progress_bar
    else:
        real_collect = run.collect
        def collect(plan, client, **kwargs):
            outcomes = real_collect(plan, client, **kwargs)
            kill_scheduler()
            deadline = time.monotonic() + 10
            while client.status == "running" and time.monotonic() < deadline:  # the client has noticed
                time.sleep(0.02)
            return outcomes
        run.collect = collect
    sys.exit(main(sys.argv[1:]))
""")

# The real CLI on its embedded cluster, plus a SIGKILL of one of its worker processes at DONE_AT combinations.
CLI_KILLING_A_LOCAL_WORKER = textwrap.dedent("""
    import contextlib, os, signal, sys
    import psutil
    import candleflow.sweep.display as display
    from candleflow.cli import main

    @contextlib.contextmanager
    def progress_bar():
        def on_progress(done, total):
            if done >= int(os.environ["DONE_AT"]) and not os.path.exists(os.environ["DONE_FILE"]):
                workers = [p for p in psutil.Process().children(recursive=True)
                           if "spawn_main" in " ".join(p.cmdline())]  # not multiprocessing's resource tracker
                os.kill(workers[0].pid, signal.SIGKILL)
                with open(os.environ["DONE_FILE"], "w") as f:
                    f.write(str(done))
        yield on_progress
    display.progress_bar = progress_bar
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    (root / "components").mkdir()
    (root / "components" / "slow.py").write_text(COMPONENTS)
    (root / "faults.yaml").write_text(STRATEGY)
    (root / "grid.yaml").write_text(GRID)
    write_candles(generate_candles(1500, seed=11), root / "candles.csv")
    return root


@pytest.fixture(scope="module")
def no_fault(workspace):
    """The sweep without a fault: its frame, and its CSV as the CLI writes it."""
    with connect(workers=2) as client:
        result = run_sweep(workspace / "faults.yaml", SPEC, client=client)
    assert result.failed == 0 and len(result.frame) == TOTAL
    result.write(workspace / "no_fault.csv")
    return result.frame


def run_cli(script: str | None, workspace: Path, *args: str, grid: str = "grid.yaml",
            **env: str) -> subprocess.CompletedProcess:
    """``candleflow sweep faults.yaml --grid GRID ARGS`` in a subprocess, run by ``script`` (default: the CLI)."""
    python = [sys.executable, "-c", script] if script else [sys.executable, "-m", "candleflow.cli"]
    command = [*python, "sweep", str(workspace / "faults.yaml"), "--grid", str(workspace / grid), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CANDLEFLOW_DEBUG": "", **env})


def kill_params():
    yield from (pytest.param(n, id=f"left{n}") for n in LEFT)
    yield from (pytest.param(n, id=f"loop{i}-left{n}", marks=pytest.mark.slow) for i, n in enumerate(LEFT_SLOW))


@pytest.mark.cluster
@pytest.mark.parametrize("left", kill_params())
def test_a_worker_killed_mid_sweep_loses_no_combination(left, workspace, no_fault, tmp_path):
    cluster = start_cluster(tmp_path / "cluster", workers=2)  # no nanny: the killed worker stays dead
    try:
        with kill_when_left(cluster, total=TOTAL, left=left, target="worker") as kill:
            result = run_sweep(workspace / "faults.yaml", SPEC, scheduler=cluster.address)
    finally:
        cluster.stop()
    assert kill.left is not None, f"the kill must land mid-sweep, with 1..{left} of {TOTAL} tasks left"
    frame = result.frame
    assert len(frame) == TOTAL and not frame.duplicated(["fast", "slow"]).any()
    pd.testing.assert_frame_equal(frame, no_fault)


@pytest.mark.cluster
def test_a_scheduler_killed_mid_sweep_exits_2_with_the_rows_so_far(workspace, no_fault, tmp_path):
    cluster = start_cluster(tmp_path / "cluster", workers=2)
    out = tmp_path / "out.csv"
    try:
        proc = run_cli(CLI_WITH_FAULT, workspace, "--scheduler", cluster.address, "--out", str(out), KILL="mid",
                       SCHEDULER_PID=str(cluster.scheduler_pid), DONE_AT=str(TOTAL // 3),
                       DONE_FILE=str(tmp_path / "done"))
    finally:
        cluster.stop()
    assert (tmp_path / "done").exists(), proc.stderr
    done = int((tmp_path / "done").read_text())
    assert 0 < done < TOTAL, "the kill must land mid-sweep"
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr == (f"error: lost the Dask scheduler at {cluster.address} mid-sweep (connection closed): "
                           f"{TOTAL - done} of {TOTAL} combinations not computed; {out} has every row, "
                           f"those not computed with error '{NOT_COMPUTED}'\n")
    rows = pd.read_csv(out).set_index(["fast", "slow"])
    assert len(rows) == TOTAL and rows.index.is_unique
    missing = rows["error"] == NOT_COMPUTED
    assert missing.sum() == TOTAL - done and rows.loc[missing].drop(columns=["symbol", "error"]).isna().all().all()
    expected = pd.read_csv(workspace / "no_fault.csv").set_index(["fast", "slow"])
    computed = rows.loc[~missing]
    pd.testing.assert_frame_equal(computed, expected.loc[computed.index], check_dtype=False)  # NaN: n_trades float


@pytest.mark.cluster
def test_a_scheduler_killed_after_the_last_row_changes_nothing(workspace, no_fault, tmp_path):
    cluster = start_cluster(tmp_path / "cluster", workers=2)
    out = tmp_path / "out.csv"
    try:
        proc = run_cli(CLI_WITH_FAULT, workspace, "--scheduler", cluster.address, "--out", str(out), KILL="after",
                       SCHEDULER_PID=str(cluster.scheduler_pid))
    finally:
        cluster.stop()
    assert cluster.processes[0].returncode == -9, "the scheduler must have been killed"
    assert (proc.returncode, proc.stderr) == (0, "")
    assert f"{TOTAL} combinations, 0 failed" in proc.stdout
    assert out.read_bytes() == (workspace / "no_fault.csv").read_bytes()


def test_a_worker_of_the_embedded_cluster_killed_mid_sweep_is_quiet(workspace, no_fault, tmp_path):
    out = tmp_path / "out.csv"
    proc = run_cli(CLI_KILLING_A_LOCAL_WORKER, workspace, "--workers", "2", "--out", str(out),
                   DONE_AT=str(TOTAL // 3), DONE_FILE=str(tmp_path / "done"))
    assert 0 < int((tmp_path / "done").read_text()) < TOTAL, "the kill must land mid-sweep"
    assert (proc.returncode, proc.stderr) == (0, "")
    assert out.read_bytes() == (workspace / "no_fault.csv").read_bytes()


def test_a_failing_write_of_the_results_is_one_line(workspace, tmp_path):
    """Its folder is a file: refused before any work (the output-path check); the one combination would fail to
    compile anyway (period 0), so no cluster is needed.  A write failing at the end is in test_output_paths.py."""
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "out.csv"
    (workspace / "zero.yaml").write_text("parameters: {fast: [0], slow: [20]}\n")
    proc = run_cli(None, workspace, "--out", str(out), grid="zero.yaml")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"error: {out}: --out: '{tmp_path / 'file'}' is a file, not a folder\n"
    assert (tmp_path / "file").read_text() == "not a folder"
