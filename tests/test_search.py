"""Random and TPE (Optuna) search over a grid: seeded, within budget, resumable from its SQLite study."""

from __future__ import annotations

import math

import pytest

from candleflow.errors import ConfigError
from candleflow.sweep import run_sweep, search
from candleflow.sweep.grid import SweepSpec, combinations, sample_combinations
from candleflow.sweep.search import run_search

PARAMETERS = {"fast": {"start": 4, "stop": 30, "step": 2}, "slow": [40, 60, 80, 100]}
SYMBOL = [{"symbol": "EURUSD", "sample": "eurusd_1h"}]


def spec(**search) -> SweepSpec:
    return SweepSpec.model_validate({"parameters": PARAMETERS, "symbols": SYMBOL, "search": search})


@pytest.mark.parametrize("trials", [1, 7, 30, 52, 60])
def test_random_draws_distinct_grid_points_the_same_for_a_seed(trials):
    grid = {c.label for c in combinations(spec())}  # 14 x 4 = 56
    drawn = [c.label for c in sample_combinations(spec(), trials, seed=3)]
    assert len(drawn) == min(trials, 56) == len(set(drawn)) and set(drawn) <= grid
    assert drawn == [c.label for c in sample_combinations(spec(), trials, seed=3)]
    if 1 < trials < 56:
        assert drawn != [c.label for c in sample_combinations(spec(), trials, seed=4)]


def test_random_search_of_a_grid_far_larger_than_memory_never_lists_it():
    huge = SweepSpec.model_validate({"parameters": {f"p{i}": {"start": 1, "stop": 1000, "step": 1} for i in range(5)},
                                     "search": {"method": "random", "trials": 200, "seed": 1}})
    drawn = sample_combinations(huge, 200, seed=1)  # 1e15 combinations
    assert len({c.label for c in drawn}) == 200
    assert all(1 <= v <= 1000 for c in drawn for v in c.params.values())


def test_a_random_sweep_runs_its_draw(repo):
    grid = spec(method="random", trials=6, seed=2)
    result = run_sweep(repo / "strategies" / "ma_crossover_sweep.yaml", grid, scheduler="sync")
    drawn = {tuple(c.params.values()) for c in sample_combinations(grid, 6, seed=2)}
    assert {(r["fast"], r["slow"]) for r in result.frame.to_dict("records")} == drawn
    with pytest.raises(ConfigError, match=r"search.trials is 6, more than the 5 combinations allowed"):
        run_sweep(repo / "strategies" / "ma_crossover_sweep.yaml", grid, scheduler="sync", max_combinations=5)


@pytest.mark.parametrize("search_spec, message", [
    ({"trials": 5}, "trials apply to a random or tpe search, not to the grid"),
    ({"method": "random"}, "a random search needs 'trials'"),
    ({"method": "random", "trials": 5, "storage": "x.db"}, "storage apply to a tpe search only"),
    ({"method": "tpe"}, "a tpe search needs a budget"),
    ({"method": "tpe", "trials": 0}, "greater than or equal to 1"),
    ({"method": "bayes", "trials": 5}, "'grid', 'random' or 'tpe'"),
])
def test_bad_search_specs_are_errors(search_spec, message):
    with pytest.raises(ValueError, match=message):
        spec(**search_spec)


def rows(result) -> list[tuple]:
    return sorted((r["fast"], r["slow"], r["sharpe"]) for r in result.frame.to_dict("records"))


def test_tpe_is_reproducible_within_budget_and_agrees_with_the_sweep(repo):
    strategy = repo / "strategies" / "ma_crossover_sweep.yaml"
    grid = spec(method="tpe", trials=14, seed=5, batch=7)
    first, again = run_search(strategy, grid, scheduler="sync"), run_search(strategy, grid, scheduler="sync")
    assert len(first.frame) == 14 and rows(first) == rows(again)
    assert len({(f, s) for f, s, _ in rows(first)}) == 14  # each evaluated point once
    full = {(r["fast"], r["slow"]): r["sharpe"] for r in run_sweep(strategy, spec(), scheduler="sync").frame.to_dict("records")}
    assert all(full[(f, s)] == sharpe for f, s, sharpe in rows(first))  # a trial's row is the sweep's
    assert first.frame["sharpe"].is_monotonic_decreasing  # ranked like a sweep


def test_tpe_stops_when_every_grid_point_is_known(repo):
    small = SweepSpec.model_validate({"parameters": {"fast": [5, 10], "slow": [40, 60]}, "symbols": SYMBOL,
                                      "search": {"method": "tpe", "trials": 50, "seed": 1, "batch": 3}})
    result = run_search(repo / "strategies" / "ma_crossover_sweep.yaml", small, scheduler="sync")
    assert len(result.frame) == 4


def test_tpe_resumes_from_its_sqlite_study(repo, tmp_path, monkeypatch):
    import optuna

    strategy = repo / "strategies" / "ma_crossover_sweep.yaml"
    storage = str(tmp_path / "study.db")
    run_search(strategy, spec(method="tpe", trials=8, seed=1, batch=4, storage=storage), scheduler="sync")
    # an interrupted run leaves asked trials running: the next run fails them and goes on
    study = search._study(strategy, spec(method="tpe", trials=8, seed=1, batch=4, storage=storage), spec().rank)
    study.ask()
    evaluated = []
    original = search.run_sweep
    monkeypatch.setattr(search, "run_sweep", lambda *a, only, **k: evaluated.extend(only) or original(*a, only=only, **k))
    resumed = run_search(strategy, spec(method="tpe", trials=12, seed=1, batch=4, storage=storage), scheduler="sync")
    assert len(resumed.frame) == 12 and len(evaluated) == 4  # the 8 stored rows are not run again
    states = [t.state for t in optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{storage}").trials]
    assert states.count(optuna.trial.TrialState.RUNNING) == 0 and optuna.trial.TrialState.FAIL in states


def test_a_plain_sweep_refuses_a_tpe_grid(repo):
    with pytest.raises(ConfigError, match="the grid asks for a tpe search: run it with run_search"):
        run_sweep(repo / "strategies" / "ma_crossover_sweep.yaml", spec(method="tpe", trials=3), scheduler="sync")


def test_cli_sweep_runs_a_tpe_search(repo, tmp_path, monkeypatch, capsys):
    import yaml

    from candleflow.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({"parameters": PARAMETERS, "symbols": SYMBOL,
                                                        "search": {"method": "tpe", "trials": 6, "seed": 2,
                                                                   "storage": "study.db"}}))
    code = main(["sweep", str(repo / "strategies" / "ma_crossover_sweep.yaml"), "--grid", "grid.yaml",
                 "--scheduler", "sync", "--out", "tpe.csv"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "6 combinations" in " ".join(out.split()) and (tmp_path / "study.db").exists()
    assert math.isfinite(__import__("pandas").read_csv(tmp_path / "tpe.csv")["sharpe"].iloc[0])
