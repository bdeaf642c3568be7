"""Sweep spec, planning and output without a cluster: grids, strict errors, shared node keys, ranking, files."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from candleflow.cli import main
from candleflow.errors import ConfigError
from candleflow.sweep import SweepSpec, combinations, load_grid, run_sweep
from candleflow.sweep.grid import Rank
from candleflow.sweep.output import write_table
from candleflow.sweep.plan import plan_sweep
from candleflow.sweep.run import ranked


@pytest.fixture
def template(repo):
    return repo / "strategies" / "ma_crossover_sweep.yaml"


def spec(**raw) -> SweepSpec:
    return SweepSpec.model_validate(raw)


def test_ranges_include_stop_and_keep_ints():
    grid = spec(parameters={"fast": {"start": 5, "stop": 20, "step": 5}, "stop_loss": {"start": 0.005, "stop": 0.02,
                                                                                      "step": 0.005}})
    assert grid.values() == {"fast": [5, 10, 15, 20], "stop_loss": [0.005, 0.01, 0.015, 0.02]}
    assert all(isinstance(v, int) for v in grid.values()["fast"])


def test_combinations_are_ordered_symbols_outermost():
    grid = spec(parameters={"fast": [5, 10], "slow": [50]},
                symbols=[{"symbol": "A", "sample": "eurusd_1h"}, {"symbol": "B", "path": "b.csv"}])
    labels = [c.label for c in combinations(grid)]
    assert labels == ["symbol=A, fast=5, slow=50", "symbol=A, fast=10, slow=50",
                      "symbol=B, fast=5, slow=50", "symbol=B, fast=10, slow=50"]


@pytest.mark.parametrize("text, message", [
    ("parameters: {fast: [5]}\nrank: {by: sharpe, order: max}\n", "rank.order: unknown key"),
    ("parameters: {fast: []}\n", "parameters.fast: List should have at least 1 item"),
    ("parameters: {fast: {start: 10, stop: 5, step: 1}}\n", "parameters.fast: stop (5) is below start (10)"),
    ("parameters: {fast: {start: 1, stop: 5, step: 0}}\n", "parameters.fast.step: Input should be greater than 0"),
    ("parameters: {fast: [[1, 2]]}\n", "parameters.fast[0]: a parameter value must be a number"),
    ("parameters: {fast: [5, 5]}\n", "parameters.fast: a value is listed twice"),
    ("parameters: {2fast: [5]}\n", "parameter name '2fast' is not a template variable name"),
    ("parameters: {symbol: [A]}\n", "'symbol' is a result column"),
    ("parameters: {fast: [5]}\nsymbols: [{symbol: A}]\n", "symbols[0]: give exactly one of 'path' or 'sample'"),
    ("parameters: {fast: [5]}\nrank: {by: sharpe, direction: up}\n", "rank.direction: Input should be 'max' or 'min'"),
    ("parameters: {fast: [5}\n", "invalid YAML"),
])
def test_grid_errors_name_file_and_path(tmp_path, text, message):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_grid(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_identical_nodes_share_one_task(template):
    grid = spec(parameters={"fast": [5, 10, 20], "slow": [50, 60], "stop_loss": [0.01, 0.02]})
    plan = plan_sweep(template, combinations(grid))
    assert len(plan.combinations) == 12 and not any(c.error for c in plan.combinations)
    assert plan.tasks["candles"] == 1
    assert (plan.references["indicator"], plan.tasks["indicator"]) == (24, 5)  # 3 fast + 2 slow SMAs
    assert (plan.references["signal"], plan.tasks["signal"]) == (12, 6)  # stop_loss does not change the cross
    assert plan.tasks["evaluator"] == len(plan.metric_keys) == 12
    assert all(key.startswith("metrics-") for key in plan.metric_keys)


def test_template_errors_name_the_line_and_the_combination(tmp_path, template):
    broken = tmp_path / "broken.yaml"
    broken.write_text(template.read_text().replace("period: {{ slow }}", "period: {{ slwo }}"))
    plan = plan_sweep(broken, combinations(spec(parameters={"fast": [5], "slow": [50]})))
    error = plan.combinations[0].error
    assert error.startswith(f"{broken}: line 16: template variable 'slwo' is undefined")
    with pytest.raises(Exception) as info:
        run_sweep(broken, spec(parameters={"fast": [5], "slow": [50]}), fail_fast=True)
    assert str(info.value).startswith("combination fast=5, slow=50 failed (--fail-fast): ")
    assert "line 16" in str(info.value)


def test_templates_render_in_the_sandbox(tmp_path, template):
    evil = tmp_path / "evil.yaml"
    evil.write_text(template.read_text().replace("name: ma_crossover_{{ fast }}_{{ slow }}",
                                                 'name: "{{ lipsum.__globals__ }}"'))
    plan = plan_sweep(evil, combinations(spec(parameters={"fast": [5], "slow": [50]})),
                      workspace=template.parent.parent)
    assert plan.combinations[0].error == (f"{evil}: line 4: template error: "
                                          f"access to attribute '__globals__' of 'function' object is unsafe.")


def test_bad_params_fail_only_their_combination_before_any_cluster(template):
    plan = plan_sweep(template, combinations(spec(parameters={"fast": [0, 10], "slow": [50]})))
    bad, good = plan.combinations
    assert "indicators[0].params.period" in bad.error and bad.key is None
    assert good.error is None and good.key in plan.graph


def test_ranking_is_stable_best_first_with_nan_and_errors_last():
    frame = pd.DataFrame({"symbol": "X", "fast": [1, 2, 3, 4, 5], "sharpe": [0.5, math.nan, 1.5, 0.5, math.nan],
                          "error": [None, None, None, None, "boom"]})
    assert ranked(frame, Rank(by="sharpe"))["fast"].tolist() == [3, 1, 4, 2, 5]
    assert ranked(frame, Rank(by="sharpe", direction="min"))["fast"].tolist() == [1, 4, 3, 2, 5]


def test_the_default_rank_direction_is_the_catalogs_and_an_explicit_one_wins(monkeypatch):
    import dataclasses

    from candleflow.portfolio import catalog

    frame = pd.DataFrame({"symbol": "X", "fast": [1, 2, 3], "sharpe": [0.5, 1.5, -1.0], "error": None})
    assert Rank(by="sharpe").order == catalog.CATALOG["sharpe"].better == "max"
    assert Rank(by="n_trades").order == "max" and catalog.CATALOG["n_trades"].better is None  # neither: highest first
    monkeypatch.setitem(catalog.CATALOG, "sharpe", dataclasses.replace(catalog.CATALOG["sharpe"], better="min"))
    assert ranked(frame, Rank(by="sharpe"))["fast"].tolist() == [3, 1, 2]
    assert ranked(frame, Rank(by="sharpe", direction="max"))["fast"].tolist() == [2, 1, 3]
    overridden = spec(parameters={"fast": [1]}, rank={"by": "total_return"}).rank.model_copy(update={"by": "sharpe"})
    assert overridden.order == "min"  # --rank-by without a grid direction takes the new metric's


def test_tables_are_written_atomically_as_csv_or_parquet(tmp_path):
    frame = pd.DataFrame({"symbol": ["X", "X"], "fast": [5, 10], "sharpe": [1.0, math.nan], "error": [None, "bad"]})
    write_table(frame, tmp_path / "r.csv")
    write_table(frame, tmp_path / "r.parquet")
    assert pd.read_csv(tmp_path / "r.csv")["fast"].tolist() == [5, 10]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r.parquet"), frame, check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.parquet"]
    with pytest.raises(ConfigError, match="--out must end in .csv or .parquet"):
        write_table(frame, tmp_path / "r.json")


def test_cli_when_every_combination_fails_writes_rows_and_exits_2(tmp_path, template, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("parameters: {fast: [0], slow: [0]}\n")
    out = tmp_path / "r.csv"
    assert main(["sweep", str(template), "--grid", str(grid), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: all 1 combinations failed; first: combination fast=0, slow=0: ")
    assert "params.period" in pd.read_csv(out)["error"][0]


def test_cli_rejects_an_unknown_output_format_before_running(tmp_path, template, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("parameters: {fast: [5], slow: [50]}\n")
    assert main(["sweep", str(template), "--grid", str(grid), "--out", str(tmp_path / "r.xlsx")]) == 2
    assert "--out must end in .csv or .parquet" in capsys.readouterr().err
