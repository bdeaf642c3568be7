"""The HTML report really renders: headless Chromium draws the plotly charts and every trade marker.

The report's ``#report`` element says how many trade markers it expects
(``data-expected-markers``, two per trade); after plotly has drawn the price chart
its script counts the marker points in plotly's DOM into ``data-rendered-markers``.
A screenshot is saved to ``test-artifacts/report.png`` for a human to look at.
"""

from __future__ import annotations

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


def test_report_charts_render_in_chromium(repo, tmp_path):
    browser = chromium()
    result = run_backtest(repo / "strategies" / "ma_crossover.yaml", cache=None, scheduler="sync")
    url = write_report(result, tmp_path / "report.html").resolve().as_uri()
    screenshot = repo / "test-artifacts" / "report.png"
    screenshot.parent.mkdir(exist_ok=True)
    screenshot.unlink(missing_ok=True)
    shot = [f"--screenshot={screenshot}", "--window-size=1400,2400"]
    dom = run_chromium(browser, tmp_path / "profile", *shot, "--dump-dom", url)  # one page load does both
    if not screenshot.exists():  # a Chromium that honours only one of --dump-dom and --screenshot per run
        run_chromium(browser, tmp_path / "profile-shot", *shot, url)

    opening = re.search(r'<main id="report"[^>]*>', dom)
    assert opening, "the report's #report element is missing from the rendered DOM"
    attributes = dict(re.findall(r'data-([a-z-]+)="(\d+)"', opening.group(0)))
    n_trades = len(result.trades)
    assert int(attributes["trades"]) == n_trades > 0
    assert int(attributes["expected-markers"]) == 2 * n_trades
    assert "rendered-markers" in attributes, "the price chart's after-render script never ran (plotly failed?)"
    assert int(attributes["rendered-markers"]) == 2 * n_trades
    assert dom.count('class="main-svg"') >= 4  # plotly drew both charts (each has several main-svg layers)
    assert len(re.findall(r'class="[^"]*\bcandlestick\b|class="[^"]*\bjs-line\b', dom)) > 0  # price/lines drawn
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 50_000  # a page with charts, not a blank one
