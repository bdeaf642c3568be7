"""``candleflow run`` and its result files through the real CLI in a subprocess: ``--format``, and a run without
``--out`` saying that it wrote none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from shared_texts import DEMO_STRATEGY, SRC

from candleflow.data import generate_candles, write_candles
from candleflow.results import read_results


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ws")
    (folder / "components").mkdir()
    (folder / "s.yaml").write_text(DEMO_STRATEGY)
    write_candles(generate_candles(300, seed=5), folder / "data.csv")
    return folder


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]), "CANDLEFLOW_DEBUG": "",
           "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "candleflow.cli", "run", "s.yaml", "--no-cache", "--scheduler", "sync",
                           *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=300)


def test_a_run_without_out_says_no_result_files_were_written(workspace):
    done = cli(workspace)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == "no result files written (use --out DIR)"
    assert sorted(p.name for p in workspace.iterdir()) == ["components", "data.csv", "s.yaml"]


def test_parquet_by_default_csv_by_choice_and_both_read_back_the_same(workspace):
    parquet, csv = cli(workspace, "--out", "pq"), cli(workspace, "--out", "csv", "--format", "csv")
    assert (parquet.returncode, csv.returncode) == (0, 0), parquet.stderr + csv.stderr
    assert parquet.stdout.rstrip().splitlines()[-1] == "results written to pq/"
    for series in ("equity", "indicators", "candles"):
        assert sorted(p.name for p in workspace.glob(f"*/{series}.*")) == [f"{series}.csv", f"{series}.parquet"]
        assert (workspace / "pq" / f"{series}.parquet").is_file() and (workspace / "csv" / f"{series}.csv").is_file()
    first, second = read_results(workspace / "pq"), read_results(workspace / "csv")
    for key in ("equity", "indicators", "candles", "trades", "signals"):
        pd.testing.assert_frame_equal(first[key], second[key], check_exact=True)
    assert (workspace / "csv" / "equity.csv").read_text().startswith("time,equity,drawdown,position\n2023-")
    assert cli(workspace, "--out", "csv", "-q").returncode == 0  # a parquet run may replace a csv folder


@pytest.mark.parametrize("args, message", [
    (["--format", "csv"], "error: --format sets the format of the result files; give --out DIR too\n"),
    (["--out", "x", "--format", "xlsx"], "error: --format must be parquet or csv, not 'xlsx'\n"),
])
def test_format_errors_are_one_line(workspace, args, message):
    done = cli(workspace, *args)
    assert (done.returncode, done.stderr) == (2, message)
    assert not (workspace / "x").exists()
