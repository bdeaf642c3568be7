"""The sweep report (visualize.sweep_report): heatmaps per parameter pair, per-parameter lines, scatter, top rows."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest

from candleflow.errors import ConfigError
from candleflow.sweep.grid import Rank
from candleflow.sweep.run import SweepResult
from candleflow.visualize import sweep_report
from candleflow.visualize.sweep_report import SCALE, heatmap, sweep_table, write_sweep_report

METRIC_COLUMNS = ["sharpe", "total_return", "max_drawdown", "n_trades", "win_rate"]


def sweep_frame(*, failed: int = 0) -> pd.DataFrame:
    """A 4 x 3 x 2 grid whose Sharpe is a known function of the parameters."""
    rows = []
    for fast, slow, stop in itertools.product([5, 10, 20, 30], [40, 60, 80], [0.01, 0.02]):
        sharpe = -abs(fast - 12) / 10 - slow / 100 + stop * 10
        rows.append({"symbol": "EURUSD", "fast": fast, "slow": slow, "stop_loss": stop, "sharpe": sharpe,
                     "total_return": sharpe / 10, "max_drawdown": -0.05 - fast / 1000, "n_trades": fast * 3,
                     "win_rate": 0.4, "error": None})
    frame = pd.DataFrame(rows)
    if failed:
        frame.loc[frame.index[:failed], METRIC_COLUMNS] = np.nan
        frame.loc[frame.index[:failed], "error"] = "boom"
    return frame


def result(frame: pd.DataFrame, *, by: str = "sharpe", direction: str | None = None) -> SweepResult:
    return SweepResult(frame=frame, rank=Rank(by=by, direction=direction), parameters=["fast", "slow", "stop_loss"],
                       metrics=METRIC_COLUMNS)


def test_heatmap_cells_are_the_best_and_the_mean_over_the_other_parameters():
    frame = sweep_frame()
    table = sweep_table(result(frame))
    cells = heatmap(table.frame, table, ("fast", "slow"))
    assert cells["rows"] == ["5", "10", "20", "30"] and cells["columns"] == ["40", "60", "80"]
    for (i, fast), (j, slow) in itertools.product(enumerate([5, 10, 20, 30]), enumerate([40, 60, 80])):
        chosen = [r["sharpe"] for r in frame.to_dict("records") if r["fast"] == fast and r["slow"] == slow]
        assert cells["cells"]["best"][i][j]["text"] == f"{max(chosen):,.2f}"
        assert cells["cells"]["mean"][i][j]["text"] == f"{sum(chosen) / len(chosen):,.2f}"
    best = cells["cells"]["best"]
    assert best[1][0]["colour"] == SCALE[-1]  # fast=10, slow=40: the best cell is the brightest
    assert best[3][2]["colour"] == SCALE[0]  # fast=30, slow=80: the worst the darkest


def test_a_metric_ranked_by_min_takes_the_lowest_and_colours_it_best():
    frame = sweep_frame()
    table = sweep_table(result(frame, by="max_drawdown", direction="min"))
    cells = heatmap(table.frame, table, ("fast", "slow"))
    assert cells["best"] == "min"
    assert cells["cells"]["best"][3][0]["colour"] == SCALE[-1]  # fast=30: the deepest drawdown ranks first
    assert table.frame["max_drawdown"].iloc[0] == frame["max_drawdown"].min()


def test_report_from_a_result_and_from_its_table_files_agree(tmp_path):
    frame = sweep_frame(failed=3)
    source = result(frame)
    texts = [write_sweep_report(source, tmp_path / "a.html", title="t").read_text(encoding="utf-8")]
    for suffix in ("csv", "parquet"):
        path = tmp_path / f"sweep.{suffix}"
        source.write(path)
        texts.append(write_sweep_report(path, tmp_path / f"{suffix}.html", title="t").read_text(encoding="utf-8"))
    assert texts[0] == texts[1] == texts[2]
    text = texts[0]
    assert 'data-rows="24" data-failed="3" data-heatmaps="3"' in text  # 3 pairs of 3 parameters
    assert text.count("plotly.js (finance - minified)") == 1 and text.count("Plotly.newPlot(") == 2
    assert not re.search(r"<(script|link|img)[^>]*\b(src|href)=", text)  # works offline
    assert len(re.findall(r'<tr class="top-row">', text)) == sweep_report.TOP
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".html"] != []
    first = re.search(r'<tr class="top-row">(.*?)</tr>', text, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", first)[:3] == ["10", "40", "0.02"]  # the best combination first


def test_several_symbols_are_a_parameter_of_the_heatmaps():
    frame = pd.concat([sweep_frame().assign(symbol="A"), sweep_frame().assign(symbol="B", sharpe=lambda f: f.sharpe - 1)])
    table = sweep_table(result(frame.reset_index(drop=True)))
    assert table.parameters == ["symbol", "fast", "slow", "stop_loss"]
    cells = heatmap(table.frame, table, ("symbol", "fast"))
    assert cells["rows"] == ["A", "B"]


def test_the_scatter_keeps_the_best_and_an_even_sample_of_a_huge_sweep(monkeypatch):
    monkeypatch.setattr(sweep_report, "MAX_POINTS", 100)
    rows = pd.DataFrame({"a": np.arange(1000), "sharpe": -np.arange(1000.0), "total_return": 0.0,
                         "max_drawdown": 0.0})
    table = sweep_report.SweepTable(rows, ["a"], ["sharpe"], "sharpe", "max", "t")
    figure, shown = sweep_report.scatter_figure(rows, table)
    assert shown == 100 and len(figure.data[0].x) == 100
    assert list(figure.data[0].text[:10]) == [f"a={i}" for i in range(10)]  # the best 10 all there
    assert figure.data[0].text[-1] == "a=999"  # and the sample reaches the worst


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="sweep table not found"):
        sweep_table(tmp_path / "missing.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ConfigError, match="cannot read the sweep table"):
        sweep_table(tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match=r"cannot rank by 'calmar': the sweep has no such metric \(it has: sharpe"):
        sweep_table(result(sweep_frame()), rank_by="calmar")


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """``candleflow ARGS`` in this process, in ``tmp_path``: (exit code, stdout, stderr)."""
    from candleflow.cli import main

    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_cli_sweep_writes_its_report_and_report_reads_a_table(cli, repo, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("parameters: {fast: [5, 10], slow: [40, 60]}\nsymbols: [{symbol: EURUSD, sample: eurusd_1h}]\n")
    code, out, err = cli("sweep", str(repo / "strategies" / "ma_crossover_sweep.yaml"), "--grid", str(grid),
                         "--scheduler", "sync", "--out", "sweep.csv", "--report", "sweep.html")
    assert code == 0, err
    assert "report written to sweep.html" in out
    text = (tmp_path / "sweep.html").read_text(encoding="utf-8")
    assert "<h1>ma_crossover_sweep.yaml</h1>" in text and 'data-rows="4"' in text
    code, _, err = cli("report", "sweep.csv", "-o", "again.html", "--rank-by", "total_return")
    assert code == 0, err
    assert "ranked by Total return" in (tmp_path / "again.html").read_text(encoding="utf-8")
    code, _, err = cli("report", "sweep.csv", "-o", "x.html", "--rank-by", "nope")
    assert code == 2 and err.count("\n") == 1 and "cannot rank by 'nope'" in err
    assert not (tmp_path / "x.html").exists()


def test_cli_rank_by_on_a_run_folder_is_an_error(cli, tmp_path):
    code, _, err = cli("report", str(tmp_path), "-o", "r.html", "--rank-by", "sharpe")
    assert code == 2 and "--rank-by ranks a sweep table" in err
