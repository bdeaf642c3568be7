"""The HTML report really renders: headless Chromium draws the chart, every trade marker, every panel.

The report's ``#report`` element says how many trade markers it expects
(``data-expected-markers``, two per trade); after plotly has drawn the chart its
script writes what is in plotly's DOM: the marker points (``data-rendered-markers``),
the points per marker trace (``data-marker-traces``: by side and exit reason) and
each x axis with the axis it follows and its range (``data-x-axes``).  A second page
zooms the price panel first and checks that every panel followed.  Screenshots are
saved to ``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from candleflow.backtest import run_backtest
from candleflow.visualize import write_report

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]


def chromium() -> str:
    path = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    if path is None:
        pytest.fail("headless Chromium is not installed; run `bash scripts/setup-test-env.sh` to install it")
    return path


def run_chromium(browser: str, profile: Path, *args: str) -> str:
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium failed: {done.stderr[-2000:]}"
    return done.stdout


def render(browser: str, html: Path, screenshot: Path, profile: Path) -> dict[str, str]:
    """Load ``html`` in headless Chromium; the ``#report`` element's data attributes once plotly has drawn."""
    screenshot.parent.mkdir(exist_ok=True)
    screenshot.unlink(missing_ok=True)
    shot = [f"--screenshot={screenshot}", "--window-size=1400,2400"]
    dom = run_chromium(browser, profile, *shot, "--dump-dom", html.resolve().as_uri())  # one load does both
    if not screenshot.exists():  # a Chromium that honours only one of --dump-dom and --screenshot per run
        run_chromium(browser, profile.with_name(profile.name + "-shot"), *shot, html.resolve().as_uri())
    opening = re.search(r'<main id="report"[^>]*>', dom)
    assert opening, "the report's #report element is missing from the rendered DOM"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 50_000  # a page with charts, not a blank one
    return {**dict(re.findall(r'data-([a-z-]+)="([^"]*)"', opening.group(0))), "dom": dom}


def x_axes(text: str) -> dict[str, tuple[str, str]]:
    """``{"xaxis2": {"matches": "x6", "range": [a, b]}, ...}`` -> {axis: (the axis it follows or "", "a/b")}."""
    return {axis: (value["matches"] or "", "/".join(map(str, value["range"])))
            for axis, value in json.loads(html.unescape(text)).items()}


def test_report_chart_renders_in_chromium(repo, tmp_path):
    browser = chromium()
    result = run_backtest(repo / "strategies" / "mean_reversion.yaml", cache=None, scheduler="sync")
    page = render(browser, write_report(result, tmp_path / "report.html"), repo / "test-artifacts" / "report.png",
                  tmp_path / "profile")
    trades, n_trades = result.trades, len(result.trades)
    assert int(page["trades"]) == n_trades > 0 and int(page["expected-markers"]) == 2 * n_trades
    assert "rendered-markers" in page, "the chart's after-render script never ran (plotly failed?)"
    assert int(page["rendered-markers"]) == 2 * n_trades
    expected = {f"trade-exit-{reason}": count for reason, count in trades["exit_reason"].value_counts().items()}
    expected.update({f"trade-entry-{side}": count for side, count in trades["side"].value_counts().items()})
    drawn = dict(item.split("=") for item in page["marker-traces"].split())
    assert {uid: int(count) for uid, count in drawn.items()} == expected
    assert {"trade-exit-stop_loss", "trade-exit-signal", "trade-entry-long", "trade-entry-short"} <= set(drawn)
    axes = x_axes(page["x-axes"])
    assert len(axes) == 5  # price, volume, rsi (bb overlays the price), equity, drawdown
    leaders = {follows for follows, _ in axes.values() if follows}
    assert len(leaders) == 1 and len({span for _, span in axes.values()}) == 1  # one time axis
    dom = page["dom"]
    assert dom.count('class="main-svg"') >= 2
    assert dom.count('<path class="box"') == len(result.candles)  # a candlestick per candle
    assert 'class="trace bars"' in dom  # volume
    assert dom.count('<g class="shape-group"') == 4  # the RSI levels the strategy uses: 30, 35, 65, 70
    assert "rsi · rsi(14)" in dom and "Exit: stop loss" in dom and "Buy and hold" in dom


def test_zooming_one_panel_zooms_every_panel(repo, tmp_path):
    browser = chromium()
    result = run_backtest(repo / "strategies" / "mean_reversion.yaml", cache=None, scheduler="sync")
    html = write_report(result, tmp_path / "report.html")
    start, end = result.candles.index[1000], result.candles.index[1200]
    zoom = (f'Plotly.relayout("candleflow-chart", {{"xaxis.range": ["{start:%Y-%m-%d %H:%M}", "{end:%Y-%m-%d %H:%M}"]}})'
            f'.then(function () {{ candleflowAfterPlot("candleflow-chart"); }});')
    text = html.read_text(encoding="utf-8")
    assert text.count('candleflowAfterPlot("candleflow-chart");') == 1
    zoomed = tmp_path / "zoomed.html"
    zoomed.write_text(text.replace('candleflowAfterPlot("candleflow-chart");', zoom), encoding="utf-8")
    page = render(browser, zoomed, repo / "test-artifacts" / "report-zoomed.png", tmp_path / "profile")
    spans = {span for _, span in x_axes(page["x-axes"]).values()}
    assert spans == {f"{start:%Y-%m-%d %H:%M}/{end:%Y-%m-%d %H:%M}"}, spans


def test_sweep_report_charts_render_in_chromium(repo, tmp_path):
    from test_sweep_report import result, sweep_frame

    from candleflow.visualize import write_sweep_report

    browser = chromium()
    source = result(sweep_frame(failed=2))
    page = render(browser, write_sweep_report(source, tmp_path / "sweep.html"),
                  repo / "test-artifacts" / "sweep-report.png", tmp_path / "profile")
    assert "drawn" in page, "no chart's after-render script ran (plotly failed?)"
    drawn = dict(item.split("=") for item in page["drawn"].split())
    assert int(drawn["scatter"]) == 22 + 20  # every combination that ran, and the top 20 ringed again
    assert int(drawn["marginals"]) == 2 * (4 + 3 + 2)  # best and mean per value of fast, slow, stop_loss
    assert page["dom"].count('<table class="best"') == 3


def test_walk_forward_report_charts_render_in_chromium(repo, tmp_path):
    from candleflow.sweep.grid import SweepSpec
    from candleflow.sweep.walkforward import run_walk_forward
    from candleflow.visualize import write_sweep_report

    browser = chromium()
    grid = SweepSpec.model_validate({"parameters": {"fast": [5, 20], "slow": [40]},
                                     "walk_forward": {"train": "6M", "test": "3M"}})
    analysis = run_walk_forward(repo / "strategies" / "ma_crossover_sweep.yaml", grid, scheduler="sync")
    page = render(browser, write_sweep_report(analysis, tmp_path / "wf.html"),
                  repo / "test-artifacts" / "walk-forward-report.png", tmp_path / "profile")
    assert page.get("drawn") == "compare stitched", "a chart's after-render script never ran (plotly failed?)"
    assert page["dom"].count('class="window-row"') == len(analysis.frame) == 2
