"""The metric catalog: compute_metrics, README's "Metrics" table and every printed metric agree with it.

``python tests/test_catalog.py`` prints the README table the catalog implies (paste it under "### Metrics").
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from candleflow.portfolio.catalog import CATALOG, FORMATS, METRICS, better, format_metric, label
from candleflow.portfolio.metrics import compute_metrics

README = Path(__file__).resolve().parent.parent / "README.md"
BETTER = {"max": "higher", "min": "lower", None: "neither"}
EXAMPLES = {"money": 10234.5, "percent": -0.1234, "signed_percent": 0.0567, "share": 0.455, "ratio": 1.234,
            "count": 1234, "days": 12.5}  # what README's "shown as" column formats


def metrics_table() -> str:
    """README's metrics table, rendered from the catalog."""
    lines = ["| metric | label | shown as | better | definition |", "|---|---|---|---|---|"]
    for m in METRICS:
        shown = format_metric(m.key, EXAMPLES[m.format])
        lines.append(f"| `{m.key}` | {m.label} | `{shown}` | {BETTER[m.better]} | {m.definition} |")
    return "\n".join(lines)


def readme_table() -> str:
    """The table under README's "### Metrics" heading (the lines starting with "|")."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^### Metrics\n(.*?)(?=^#)", text, re.S | re.M)
    assert match, "README has no '### Metrics' section"
    return "\n".join(line for line in match.group(1).splitlines() if line.startswith("|"))


def index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC")


@pytest.mark.parametrize("pnl", [[], [2.0, -1.0], [0.0]], ids=["no-trades", "win-and-loss", "break-even"])
def test_compute_metrics_returns_exactly_the_catalog(pnl):
    equity = pd.Series([100.0, 101.0, 99.0], index=index(3))
    n = len(pnl)
    trades = pd.DataFrame({"pnl": pd.Series(pnl, dtype=float), "return_pct": pd.Series(pnl, dtype=float) / 100,
                           "exit_reason": pd.Series(["signal"] * n, dtype=object),
                           "side": pd.Series(["long", "short"][:n], dtype=object), "entry_time": index(3)[:n],
                           "exit_time": index(3)[1:n + 1], "commission": np.zeros(n),
                           "spread_slippage": np.zeros(n)})
    metrics = compute_metrics(equity, trades, np.array([0.0, 1.0, 0.0]), initial_cash=100.0, close=np.ones(3))
    assert set(metrics) == set(CATALOG)  # no metric without a definition, no definition without a metric


def test_catalog_entries_are_complete():
    assert len(CATALOG) == len(METRICS)  # keys are unique
    for m in METRICS:
        assert m.label and m.definition and "\n" not in m.definition and "|" not in m.definition, m.key
        assert m.format in FORMATS and m.format in EXAMPLES and m.better in ("max", "min", None), m.key
    assert any(m.card for m in METRICS) and any(m.sweep for m in METRICS)


def test_readme_metrics_table_is_the_catalog():
    expected = metrics_table()
    assert readme_table() == expected, f"README's metrics table differs from the catalog; replace it with:\n{expected}"


def test_readme_says_how_sharpe_is_annualised():
    section = re.search(r"^### Metrics\n(.*?)(?=^#)", README.read_text(encoding="utf-8"), re.S | re.M).group(1)
    assert "periods_per_year" in section and "median" in section and "365.25" in section


@pytest.mark.parametrize("key, value, expected", [
    ("final_equity", 12345.678, "12,345.68"),
    ("total_return", 0.1234, "+12.34%"),
    ("total_return", -0.05, "-5.00%"),
    ("max_drawdown", -0.1234, "-12.34%"),
    ("win_rate", 0.4567, "45.7%"),
    ("sharpe", 1.234, "1.23"),
    ("n_trades", 1234, "1,234"),
    ("n_trades", 12.0, "12"),  # a sweep table column holding NaN rows is float
    ("profit_factor", math.inf, "inf"),
    ("sortino", -math.inf, "-inf"),
    ("cagr", math.nan, "n/a"),
    ("cagr", None, "n/a"),  # JSON's null
    ("some_new_metric", 1234.56789, "1,234.57"),  # unknown: 6 significant digits
])
def test_format_metric(key, value, expected):
    assert format_metric(key, value) == expected


def test_labels_and_directions():
    assert label("win_rate") == CATALOG["win_rate"].label
    assert label("some_new_metric") == "Some new metric"
    assert better("sharpe") == CATALOG["sharpe"].better and better("some_new_metric") is None


def test_the_summary_prints_the_core_metrics_as_the_catalog_formats_them(repo, capsys):
    from candleflow.backtest import run_backtest
    from candleflow.summary import print_summary

    result = run_backtest(repo / "strategies" / "ma_crossover.yaml", cache=None, scheduler="sync")
    print_summary(result)
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("│")]
    shown = [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]  # the header is drawn with ┃
    assert shown == [[m.label, format_metric(m.key, result.metrics[m.key])] for m in METRICS if m.core]
    others = len(METRICS) - sum(m.core for m in METRICS)
    assert 0 < others and f"{others} more metrics" in printed  # the rest is in metrics.json and the report


def test_the_cli_summary_shows_the_core_metrics_and_metrics_json_has_all(repo, tmp_path):
    """The real ``candleflow run`` in a subprocess: a core row per line, the others counted and in metrics.json."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "120", "CANDLEFLOW_DEBUG": ""}
    proc = subprocess.run([sys.executable, "-m", "candleflow.cli", "run", "strategies/ma_crossover.yaml", "--out",
                           str(out), "--no-cache"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line.strip("│ ").split("│")[0].strip() for line in proc.stdout.splitlines() if line.startswith("│")]
    assert rows == [m.label for m in METRICS if m.core]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert set(metrics) == set(CATALOG)
    assert f"{len(METRICS) - len(rows)} more metrics (README \"Metrics\") in {out}/metrics.json" in proc.stdout


if __name__ == "__main__":
    print(metrics_table())
