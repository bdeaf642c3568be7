"""Progress display: a rich bar on a terminal (per node, per candle for scripts); silent otherwise."""

from __future__ import annotations

import io
import sys

from candleflow.backtest import load_data, prepare, run_compiled
from candleflow.progress import run_with_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _prepared(repo):
    compiled, _ = prepare(repo / "strategies" / "ma_crossover_script.yaml")
    return compiled, load_data(compiled).iloc[:200]


def test_terminal_gets_a_bar_fed_per_node_and_per_candle(repo, monkeypatch):
    compiled, candles = _prepared(repo)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    seen: dict[str, list] = {"nodes": [], "candles": []}

    def run(compiled, candles, *, on_node_done=None, progress=None, **options):
        def node_done(stats):
            seen["nodes"].append(stats.name)
            on_node_done(stats)

        def candle_done(name, n):
            seen["candles"].append((name, n))
            progress(name, n)

        return run_compiled(compiled, candles, on_node_done=node_done, progress=candle_done, **options)

    result = run_with_progress(run, compiled, candles, cache=None)
    assert sorted(seen["nodes"]) == sorted(result.stats)
    script_nodes = {name for name, _ in seen["candles"]}
    assert script_nodes == {"sma_fast", "sma_slow", "golden", "death"}
    assert max(n for _, n in seen["candles"]) == len(candles)
    assert "nodes" in terminal.getvalue()  # rich drew on the terminal


def test_quiet_or_not_a_terminal_shows_nothing(repo, monkeypatch, capsys):
    compiled, candles = _prepared(repo)
    calls = []

    def run(compiled, candles, **options):
        calls.append(options)
        return "done"

    assert run_with_progress(run, compiled, candles, quiet=True) == "done"
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a TTY
    assert run_with_progress(run, compiled, candles) == "done"
    assert all("progress" not in c and "on_node_done" not in c for c in calls)
    assert capsys.readouterr().err == ""
