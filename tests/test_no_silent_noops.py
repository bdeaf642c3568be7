"""No silent no-ops (issue 14, part 2): input that would change nothing, or quietly mean something else, is refused
in one line (exit 2) or, where it is legal, named in one ``warning:`` line.

Every case goes through the real ``candleflow`` command in a subprocess (started together, so they cost one CLI start
or so each on two cores); the expected lines are the whole of stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from candleflow import run_backtest
from candleflow.backtest import prepare
from candleflow.data import generate_candles, write_candles
from candleflow.errors import CandleflowWarning, ConfigError
from candleflow.sweep.grid import SweepSpec
from shared_texts import DEMO_STRATEGY, SRC

TEMPLATE = DEMO_STRATEGY.replace("period: 5}", "period: {{ fast }}}")
RSI = "  - {name: rsi, component: rsi}\nsignals:"
NEVER = DEMO_STRATEGY.replace("period: 20}", "period: 5}")  # fast == slow: the two SMAs never cross


def _edit(old: str, new: str, base: str = DEMO_STRATEGY) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


FILES = {
    "s.yaml": DEMO_STRATEGY,
    "t.yaml": TEMPLATE,
    "unused.yaml": _edit("signals:", RSI),
    "never.yaml": NEVER,
    "missing.yaml": _edit("data.csv", "nope.csv"),
    "header.yaml": _edit("data.csv", "header.csv"),
    "header.csv": "when,open,high,low,close\n",
    "bool.yaml": _edit("period: 5}", "period: true}"),
    "long.yaml": _edit("period: 20}", "period: 500}"),
    "cash.yaml": DEMO_STRATEGY + "initial_cash: 1e400\n",
    "bogus_grid.yaml": "parameters: {fast: [5, 10], bogus: [1]}\n",
    "float_grid.yaml": "parameters: {fast: [5, 5.0]}\n",
    "int_grid.yaml": "parameters: {fast: [5, 5]}\n",
    "krass.csv": "node,bar,signal_type\ncross,30,golden_cross\ncross,40,golden_krass\n",
    "recorded.csv": "node,bar,signal_type\ncross,30,golden_cross\ncross,40,death_cross\n",
}

# (command line, exit code, stderr lines, a text stdout must hold)
CASES = {
    "set-on-a-plain-strategy": (
        ["run", "s.yaml", "--set", "fast=10"], 2,
        ["error: s.yaml: --set fast: the strategy is not a template (no {{{{ ... }}}}), so 'fast' would change "
         "nothing"]),
    "set-a-variable-the-template-never-uses": (
        ["run", "t.yaml", "--set", "fast=5", "--set", "bogus=1"], 2,
        ["error: t.yaml: --set bogus: the strategy never uses template variable 'bogus' (it uses: fast)"]),
    "grid-variable-the-template-never-uses": (
        ["sweep", "t.yaml", "--grid", "bogus_grid.yaml", "--scheduler", "sync"], 2,
        ["error: bogus_grid.yaml: parameters.bogus: the strategy t.yaml never uses template variable 'bogus' "
         "(it uses: fast)"]),
    "grid-5-and-5.0": (
        ["sweep", "t.yaml", "--grid", "float_grid.yaml", "--scheduler", "sync"], 2,
        ["error: float_grid.yaml: parameters.fast: a value is listed twice"]),
    "grid-5-and-5": (
        ["sweep", "t.yaml", "--grid", "int_grid.yaml", "--scheduler", "sync"], 2,
        ["error: int_grid.yaml: parameters.fast: a value is listed twice"]),
    "replay-a-signal-type-no-rule-uses": (
        ["run", "s.yaml", "--replay-signals", "krass.csv"], 2,
        ["error: krass.csv: row 3: signal type 'golden_krass' of node 'cross' is used by no rule or condition "
         "(they use: death_cross, golden_cross)"]),
    "replay-says-it-replayed": (
        ["run", "s.yaml", "--replay-signals", "recorded.csv"], 0, [], "1 replayed from recorded signals (cross)"),
    "unused-indicator-warned-by-validate": (
        ["validate", "unused.yaml"], 0,
        ["warning: unused.yaml: indicators[2]: indicator 'rsi' is read by nothing (no signal, condition or "
         "indicator names it); remove it or use it"], "unused.yaml: ok"),
    "signal-that-never-fires": (
        ["run", "never.yaml", "-q"], 0,
        ["warning: never.yaml: signals[0]: signal 'cross' never fired on the 120 candles"]),
    "validate-missing-data-file": (
        ["validate", "missing.yaml"], 2, ["error: missing.yaml: data.path: data file 'nope.csv' not found (relative "
                                          "paths start at the workspace {workspace})"]),
    "validate-reads-the-header": (
        ["validate", "header.yaml"], 2, ["error: {workspace}/header.csv: missing column(s): time (need time, open, "
                                         "high, low, close[, volume])"]),
    "period-true": (
        ["validate", "bool.yaml"], 2,
        ["error: bool.yaml: indicators[0].params.period: Input should be a number, not a boolean, got True"]),
    "period-longer-than-the-data": (
        ["run", "long.yaml"], 2, ["error: long.yaml: indicators[1].params.period: 500 is longer than the data "
                                  "(120 candles)"]),
    "initial-cash-inf": (
        ["validate", "cash.yaml"], 2, ["error: cash.yaml: initial_cash: Input should be a finite number, "
                                       "got '1e400'"]),
    "negative-volume": (
        ["run", "s.yaml", "--data", "negative.csv"], 2, ["error: negative.csv: row 5: negative volume -3.0"]),
    "parquet-prices-as-text": (
        ["run", "s.yaml", "--data", "text.parquet"], 2,
        ["error: text.parquet: row 2: column 'close' is stored as {text_dtype} ('{first_close}'), not as numbers"]),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("noops").resolve()
    (root / "components").mkdir()
    candles = generate_candles(120, seed=3)
    write_candles(candles, root / "data.csv")
    frame = candles.reset_index()
    frame.loc[3, "volume"] = -3.0
    frame.to_csv(root / "negative.csv", index=False)
    text = candles.reset_index().assign(close=lambda f: f["close"].astype(str))
    text.to_parquet(root / "text.parquet")
    for name, content in FILES.items():
        (root / name).write_text(content, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def outcomes(workspace) -> dict[str, subprocess.CompletedProcess]:
    """Every case's process, all started at once."""
    env = {**os.environ, "PYTHONPATH": SRC, "CANDLEFLOW_DEBUG": ""}
    procs = {name: subprocess.Popen([sys.executable, "-m", "candleflow.cli", *args], cwd=workspace, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (args, *_) in CASES.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_refused_or_warned_in_one_line(case, workspace, outcomes):
    args, code, lines, *shown = CASES[case]
    text = pd.read_parquet(workspace / "text.parquet")["close"]
    fill = {"workspace": workspace, "text_dtype": text.dtype, "first_close": text.iloc[0]}
    returncode, out, err = outcomes[case]
    assert "Traceback" not in out + err
    assert err.splitlines() == [line.format(**fill) for line in lines], err
    assert returncode == code
    for part in shown:
        assert part in " ".join(out.split()), out


def test_unknown_component_outside_any_workspace_says_where_it_looked(tmp_path):
    (tmp_path / "s.yaml").write_text(_edit("component: sma, params: {period: 5}", "component: hull")
                                     .replace("data: {path: data.csv}", "data: {sample: eurusd_1h}"))
    env = {**os.environ, "PYTHONPATH": SRC, "CANDLEFLOW_DEBUG": ""}
    done = subprocess.run([sys.executable, "-m", "candleflow.cli", "validate", "s.yaml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.endswith(f"or component: script with a path); no workspace components: no components/ folder "
                                f"in {tmp_path.resolve()} or the folders above it (a workspace is the nearest folder "
                                f"holding one)\n"), done.stderr
    assert done.stderr.count("\n") == 1


def test_grid_values_are_the_same_when_they_run_the_same():
    for same in ([5, 5.0], [0.5, 0.50], ["a", "a"], [float("nan"), float("nan")]):
        with pytest.raises(ValueError, match="listed twice"):
            SweepSpec.model_validate({"parameters": {"fast": same}})
    for different in ([True, 1], [False, 0], ["5", 5], [1, 1.5]):
        assert SweepSpec.model_validate({"parameters": {"fast": different}}).counts() == [2]


@pytest.mark.parametrize("params, problem", [
    ("{period: .nan}", "Input should be a finite number"),
    ("{period: 20, stddev: .inf}", "Input should be a finite number"),
    ("{period: false}", "not a boolean"),
])
def test_params_are_numbers(tmp_path, params, problem):
    (tmp_path / "s.yaml").write_text(_edit("{name: slow, component: sma, params: {period: 20}}",
                                           f"{{name: slow, component: bollinger, params: {params}}}")
                                     .replace("inputs: [fast, slow]", "inputs: [fast, slow.upper]"))
    with pytest.raises(Exception, match=problem):
        prepare(tmp_path / "s.yaml", workspace=tmp_path)


@pytest.mark.parametrize("field", ["execution: {commission: .nan}", "execution: {spread: .inf}",
                                   "sizing: {method: fixed, value: .inf}", "risk: {take_profit: .inf}"])
def test_money_and_costs_are_finite(tmp_path, field):
    (tmp_path / "s.yaml").write_text(DEMO_STRATEGY + field + "\n")
    with pytest.raises(ConfigError, match="finite number"):
        prepare(tmp_path / "s.yaml", workspace=tmp_path)


EXAMPLES = sorted(p.name for p in (Path(__file__).resolve().parent.parent / "strategies").glob("*.yaml")
                  if p.name not in ("grid.yaml", "ma_crossover_sweep.yaml"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_examples_have_no_part_that_changes_nothing(repo, example):
    """Every node of every example strategy is used; those that run fast also fire every signal their rules use."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CandleflowWarning)
        prepare(repo / "strategies" / example)
        if example != "ma_crossover_script.yaml":  # a script per candle: half a minute, checked by its own tests
            assert run_backtest(repo / "strategies" / example, scheduler="sync").silent_parts() == []
