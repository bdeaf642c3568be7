"""render_graph: the compiled DAG drawn by graphviz as SVG, PNG or DOT, optionally annotated with run stats."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from candleflow.backtest import load_data, prepare, run_compiled
from candleflow.config import parse_strategy
from candleflow.dag.compiler import compile_strategy
from candleflow.dag.executor import NodeStats
from candleflow.errors import CandleflowError, ConfigError
from candleflow.visualize import render_graph
from candleflow.dag.draw import CLIP, DOT_MISSING

SVG = "{http://www.w3.org/2000/svg}"
LABELS = ("candles", "sma_fast", "sma_slow", "cross", "evaluator", "period=20", "period=50", "ma_crossover",
          "golden_cross: buy", "close -> close", "fast", "slow", "signals")


@pytest.fixture(scope="module")
def compiled(repo):
    return prepare(repo / "strategies" / "ma_crossover.yaml")[0]


def node_groups(svg_text: str) -> dict[str, ET.Element]:
    """The SVG's node groups by node id (graphviz writes the id into each group's <title>)."""
    root = ET.fromstring(svg_text)
    return {g.find(f"{SVG}title").text: g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}


def shape_of(group: ET.Element) -> ET.Element:
    return next(e for e in group if e.tag in (f"{SVG}polygon", f"{SVG}path", f"{SVG}ellipse"))


def test_svg_has_every_node_and_edge_label(compiled, tmp_path):
    out = render_graph(compiled, tmp_path / "graph.svg")
    data = out.read_bytes()
    assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:1000]
    text = html.unescape(data.decode())
    for label in LABELS:
        assert label in text
    assert set(node_groups(data.decode())) == {"candles", "sma_fast", "sma_slow", "cross", "evaluator"}


def test_png_and_dot(compiled, tmp_path):
    png = render_graph(compiled, tmp_path / "graph.PNG")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    source = render_graph(compiled, tmp_path / "graph.dot").read_text()
    assert source.startswith("digraph")
    for label in LABELS:
        assert label in source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.PNG", "graph.dot"]  # no temp files left


def test_kinds_have_distinct_shapes_and_colours(compiled, tmp_path):
    groups = node_groups(render_graph(compiled, tmp_path / "graph.svg").read_text())
    looks = {name: (shape_of(g).tag, shape_of(g).get("fill")) for name, g in groups.items()}
    assert looks["sma_fast"] == looks["sma_slow"]
    assert len({looks[n] for n in ("candles", "sma_fast", "cross", "evaluator")}) == 4


def test_script_nodes_show_their_file_name(tmp_path):
    (tmp_path / "my_sma.py").write_text("print('INDICATOR_START')\n")
    strategy = parse_strategy("""
name: scripted
symbol: EURUSD
timeframe: 1h
data: {sample: eurusd_1h}
indicators:
  - {name: slow, component: script, path: my_sma.py, params: {period: 30}}
  - {name: fast, component: sma, params: {period: 5}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
""")
    source = render_graph(compile_strategy(strategy, workspace=tmp_path), tmp_path / "g.dot").read_text()
    assert "script:my_sma.py" in source and "period=30" in source


def test_a_script_strategy_draws_the_candles_every_script_reads_and_the_evaluators_settings(repo, tmp_path):
    compiled = prepare(repo / "strategies" / "ma_crossover_script.yaml")[0]
    scripts = sorted(name for name, plan in compiled.plans.items() if plan.script is not None)
    assert scripts == ["death", "golden", "sma_fast", "sma_slow"]
    source = html.unescape(render_graph(compiled, tmp_path / "g.dot").read_text())
    for name in scripts:
        assert f'candles -> {name} [label=" CANDLE_DATA "]' in source, name
    # the evaluator: its costs, sizing and stops, as the strategy sets them
    for text in ("fill next_open · commission 0.0002 · spread 8e-05 · slippage 1e-05", "size fraction 1",
                 "stop-loss 0.01 · take-profit 0.02"):
        assert text in source, text


def test_stats_annotate_time_cache_signals_trades_failures_and_skips(compiled, tmp_path):
    stats = {
        "sma_fast": NodeStats("sma_fast", "indicator", "k1", cache="miss", status="ok", seconds=0.0123),
        "sma_slow": NodeStats("sma_slow", "indicator", "k2", cache="hit", status="ok"),
        "cross": NodeStats("cross", "signal", "k3", cache="miss", status="failed", seconds=1.5,
                           error="component 'ma_crossover': candle 812: ZeroDivisionError: division by zero "
                                 "in a very long explanation that goes on"),
        "evaluator": NodeStats("evaluator", "evaluator", "k4", cache="miss", status="skipped"),
    }
    svg = render_graph(compiled, tmp_path / "graph.svg", stats=stats).read_text()
    text = html.unescape(svg)
    assert "12.3 ms" in text and "cache miss" in text and "cache hit" in text and "1.50 s" in text
    failure = " ".join(t.text for t in node_groups(svg)["cross"].iter(f"{SVG}text") if t.get("fill") == "#b91c1c")
    assert failure == ("failed: component 'ma_crossover': candle 812: ZeroDivisionError: division by zero "
                       "in a very long ...")
    assert "skipped" in text
    groups = node_groups(svg)
    failed = shape_of(groups["cross"])
    assert failed.get("stroke") == "#dc2626" and failed.get("fill") == "#fee2e2"
    assert shape_of(groups["evaluator"]).get("fill") == "#f1f5f9"
    assert shape_of(groups["sma_fast"]).get("fill") == "#dcfce7"


def test_stats_of_a_real_run_count_signals_and_trades(compiled, tmp_path):
    result = run_compiled(compiled, load_data(compiled), cache=None, scheduler="sync")
    text = html.unescape(render_graph(compiled, tmp_path / "graph.svg", stats=result.stats).read_text())
    assert f"{len(result.signals()['cross'])} signals" in text
    assert f"{len(result.trades)} trades" in text
    assert "no cache" in text


def test_missing_dot_is_one_clear_error_but_dot_source_still_works(compiled, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for suffix in ("svg", "png"):
        with pytest.raises(CandleflowError) as info:
            render_graph(compiled, tmp_path / f"graph.{suffix}")
        assert str(info.value) == DOT_MISSING
        assert "apt-get install graphviz" in str(info.value)
        assert not (tmp_path / f"graph.{suffix}").exists()
    assert render_graph(compiled, tmp_path / "graph.dot").read_text().startswith("digraph")


@pytest.mark.parametrize("name", ["graph.pdf", "graph"])
def test_unknown_suffix_names_the_allowed_ones(compiled, tmp_path, name):
    with pytest.raises(ConfigError) as info:
        render_graph(compiled, tmp_path / name)
    assert ".svg, .png, .dot" in str(info.value)
    assert not (tmp_path / name).exists()


LONG = 20000  # dot rejects a quoted string over 16384 characters


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_huge_names_and_values_are_clipped_so_dot_draws_them(tmp_path):
    """A --set value can put anything into the name, symbol, a data path, a node name or an error: all drawn clipped."""
    strategy = parse_strategy(f"""
name: {"n" * LONG}
symbol: {"S" * LONG}
timeframe: 1h
data: {{path: {"d" * LONG}.csv}}
indicators:
  - {{name: {"i" * LONG}, component: sma, params: {{period: 5}}}}
  - {{name: slow, component: sma, params: {{period: 20}}}}
signals:
  - {{name: cross, component: ma_crossover, inputs: [{"i" * LONG}, slow]}}
rules: {{entry: {{golden_cross: buy}}, exit: {{death_cross: close}}}}
""")
    compiled = compile_strategy(strategy, workspace=tmp_path)
    stats = {"cross": NodeStats("cross", "signal", "k", cache="miss", status="failed", error="e" * LONG)}
    svg = render_graph(compiled, tmp_path / "graph.svg", stats=stats).read_text()
    texts = [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]
    title = next(t for t in texts if "·" in t)  # name  ·  symbol timeframe, each part clipped
    assert len(title) <= 2 * CLIP + len("  ·  ") and max(len(t) for t in texts if t != title) <= CLIP
    assert title.startswith("n" * (CLIP - 3) + "...")
    assert {"S" * (CLIP - 3) + "...", "i" * (CLIP - 3) + "..."} <= set(texts)  # the candles' symbol, a node's name
    assert any(t.startswith("...") and t.endswith("dd.csv") for t in texts)  # a path keeps its end
    ids = set(node_groups(svg))
    assert len(ids) == 5 and max(len(i) for i in ids) <= CLIP and "slow" in ids


FAILING_DOT = "#!/bin/sh\necho 'Error: <stdin>: syntax error in line 2' >&2\necho 'more detail' >&2\nexit 1\n"


@pytest.fixture
def failing_dot(tmp_path, monkeypatch):
    """A ``dot`` on the PATH that fails like the real one on a bad graph."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").write_text(FAILING_DOT)
    (bin_dir / "dot").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_a_failing_dot_is_one_line_naming_the_file(compiled, tmp_path, failing_dot):
    with pytest.raises(CandleflowError) as info:
        render_graph(compiled, tmp_path / "g.svg")
    assert str(info.value) == f"{tmp_path / 'g.svg'}: graphviz's dot failed: Error: <stdin>: syntax error in line 2"
    assert not (tmp_path / "g.svg").exists()


def test_a_failing_dot_through_the_cli(repo, tmp_path, failing_dot, monkeypatch):
    """``--graph``/``render``: exit 2 and one line; the graph.svg that --out adds: a warning, results written."""
    monkeypatch.chdir(tmp_path)
    strategy = str(repo / "strategies" / "ma_crossover.yaml")
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "CANDLEFLOW_DEBUG": ""}
    dot_error = "graphviz's dot failed: Error: <stdin>: syntax error in line 2"
    runs = {
        ("render", strategy, "-o", "g.svg"): (2, f"error: g.svg: {dot_error}\n"),
        ("run", strategy, "--no-cache", "-q", "--graph", "g.png"): (2, f"error: g.png: {dot_error}\n"),
        ("run", strategy, "--no-cache", "-q", "--out", "out"):
            (0, f"warning: out/graph.svg: {dot_error}; the results are written without it\n"),
    }
    procs = {args: subprocess.Popen([sys.executable, "-m", "candleflow.cli", *args], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for args in runs}
    for args, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert (proc.returncode, err) == runs[args], args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "out"]
    assert "metrics.json" in {p.name for p in (tmp_path / "out").iterdir()} - {"graph.svg"}
    assert not (tmp_path / "out" / "graph.svg").exists()


def test_a_failing_dot_for_a_graph_inside_out_keeps_the_old_results(repo, tmp_path, failing_dot, monkeypatch, capsys):
    """``--graph out/graph.svg`` belongs to the results' set: its failure switches nothing and names out/graph.svg."""
    from candleflow.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    args = ["run", str(repo / "strategies" / "ma_crossover.yaml"), "--no-cache", "-q", "--out", "out"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    capsys.readouterr()
    assert main(args + ["--graph", "out/graph.svg"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "error: out/graph.svg: graphviz's dot failed: Error: <stdin>: syntax error in line 2"
    assert err[:-1] == ["warning: out/graph.svg: graphviz's dot failed: Error: <stdin>: syntax error in line 2; "
                        "the results are written without it"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "out"]


def test_the_evaluator_shows_its_order_settings_and_the_levels_it_reads(tmp_path):
    strategy = parse_strategy("""
name: orders
symbol: EURUSD
timeframe: 1h
data: {sample: eurusd_1h}
indicators:
  - {name: fast, component: sma, params: {period: 5}}
  - {name: slow, component: sma, params: {period: 30}}
  - {name: atr, component: atr}
  - {name: bb, component: bollinger}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
orders: {entry: {type: limit, offset: 0.001, valid_for: 10}, max_entries: 2}
execution: {commission: 0.001, spread: {bps: 1}, close_at_end: true}
sizing: {method: risk, value: 0.01, max_leverage: 2}
risk: {stop_loss: {price: bb.lower}, trailing_stop: {atr: atr, multiple: 3}, max_bars: 48, allow_short: false}
""")
    compiled = compile_strategy(strategy, workspace=tmp_path)
    source = html.unescape(render_graph(compiled, tmp_path / "g.dot").read_text())
    for text in ("fill next_open · commission 0.001 · spread 1 bps · close at end",
                 "entry limit close-0.001 · 10 candles", "size risk 0.01 · leverage 2 · pyramiding 2",
                 "stop-loss bb.lower · trailing 3 x atr · max 48 bars · long only"):
        assert text in source, text
    assert {s for s, t in compiled.graph.in_edges("evaluator")} == {"cross", "atr", "bb"}
