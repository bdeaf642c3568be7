"""Compiling strategies into graphs: structure, bindings, and whole-strategy error collection."""

from __future__ import annotations

import pytest

from candleflow.config import parse_strategy
from candleflow.dag.compiler import CANDLES, EVALUATOR, Binding, compile_strategy
from candleflow.errors import CompileError

HEAD = """\
name: demo
symbol: EURUSD
timeframe: 1h
data: {sample: eurusd_1h}
"""


def compile_text(text: str, tmp_path):
    return compile_strategy(parse_strategy(HEAD + text), workspace=tmp_path, file="s.yaml")


def compile_error(text: str, tmp_path) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_text(text, tmp_path)
    return info.value


def test_graph_shape_and_bindings(tmp_path):
    compiled = compile_text("""\
indicators:
  - {name: rsi, component: rsi, params: {period: 14}}
  - {name: smooth, component: ema, inputs: [rsi], params: {period: 3}}
  - {name: bb, component: bollinger}
signals:
  - {name: cross, component: ma_crossover, inputs: {fast: smooth, slow: bb.middle}}
  - {name: band, component: bollinger_breakout, inputs: [close, bb.upper, bb.lower]}
rules: {entry: {golden_cross: buy, band.breakout_up: buy}, exit: {breakout_down: close}}
""", tmp_path)
    graph = compiled.graph
    kinds = {n: graph.nodes[n]["kind"] for n in graph}
    assert kinds == {CANDLES: "candles", "rsi": "indicator", "smooth": "indicator", "bb": "indicator",
                     "cross": "signal", "band": "signal", EVALUATOR: "evaluator"}
    assert sorted(graph.predecessors(EVALUATOR)) == ["band", "cross"]
    assert graph.edges["rsi", "smooth"]["bindings"] == [Binding("close", "rsi")]
    assert graph.edges["bb", "band"]["bindings"] == [Binding("upper", "bb", "upper"), Binding("lower", "bb", "lower")]
    assert graph.edges[CANDLES, "band"]["bindings"] == [Binding("close", CANDLES, "close")]
    assert compiled.order().index("rsi") < compiled.order().index("smooth") < compiled.order().index("cross")
    assert compiled.plans["smooth"].params == {"period": 3}
    assert compiled.plans["cross"].yaml_path == "signals[0]"


def test_every_script_node_has_an_edge_from_the_candles(tmp_path):
    """A script reads every candle (CANDLE_DATA) whatever its inputs: the graph has that edge, the plan does not
    bind it (the runner hands the candles over itself)."""
    (tmp_path / "s.py").write_text("print('INDICATOR_START')\n")
    compiled = compile_text("""\
indicators:
  - {name: plain, component: script, path: s.py}
  - {name: with_close, component: script, path: s.py, inputs: [close]}
  - {name: fast, component: sma}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, plain]}
rules: {entry: {golden_cross: buy}}
""", tmp_path)
    graph = compiled.graph
    assert graph.edges[CANDLES, "plain"]["bindings"] == [Binding("CANDLE_DATA", CANDLES)]
    assert graph.edges[CANDLES, "with_close"]["bindings"] == [Binding("close", CANDLES, "close"),
                                                              Binding("CANDLE_DATA", CANDLES)]
    assert compiled.plans["plain"].bindings == () and compiled.plans["with_close"].bindings == (
        Binding("close", CANDLES, "close"),)
    assert not graph.has_edge(CANDLES, "cross")  # a built-in reads only what it binds
    assert graph.edges[CANDLES, "fast"]["bindings"] == [Binding("close", CANDLES, "close")]


def test_three_independent_mistakes_are_reported_together(tmp_path):
    err = compile_error("""\
indicators:
  - {name: fast, component: smaa}
  - {name: slow, component: sma, params: {period: -1}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy, lunar_eclipse: sell}}
""", tmp_path)
    assert err.file == "s.yaml" and err.path == "indicators[0].component"
    assert str(err) == (
        "s.yaml: indicators[0].component: unknown indicator component 'smaa' (known: adx, atr, bollinger, cci, "
        "donchian, ema, highest, hma, keltner, lowest, macd, obv, roc, rsi, sma, stddev, stoch, vwap, wma; "
        f"or component: script with a path); no workspace components: no components/ folder in {tmp_path} or the "
        f"folders above it (a workspace is the nearest folder holding one) (and 2 more: indicators[1].params.period: "
        "Input should be "
        "greater than or equal to 1, got -1; rules.entry.lunar_eclipse: no signal emits 'lunar_eclipse' "
        "(emitted: death_cross, golden_cross))")


def test_more_than_four_mistakes_end_with_an_ellipsis(tmp_path):
    err = compile_error("""\
indicators:
  - {name: a, component: nope1}
  - {name: b, component: nope2}
  - {name: c, component: nope3}
  - {name: d, component: nope4}
  - {name: e, component: nope5}
rules: {entry: {x: buy}}
""", tmp_path)
    assert "(and 5 more: indicators[1].component" in str(err) and str(err).endswith("; ...)")
    assert "indicators[4]" not in str(err)  # only the first three others are spelled out


def test_a_failed_node_does_not_cascade(tmp_path):
    """The signal's own error is reported; its inputs and the rules naming its types are not blamed too."""
    err = compile_error("""\
indicators:
  - {name: fast, component: sma, params: {period: 0}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, fast, fast]}
rules: {entry: {golden_cross: buy}}
""", tmp_path)
    assert str(err) == ("s.yaml: indicators[0].params.period: Input should be greater than or equal to 1, got 0 "
                        "(and 1 more: signals[0].inputs: ma_crossover takes 2 input(s) (fast, slow), got 3)")


def test_cycles_through_three_nodes(tmp_path):
    err = compile_error("""\
indicators:
  - {name: a, component: ema, inputs: [c]}
  - {name: b, component: ema, inputs: [a]}
  - {name: c, component: ema, inputs: [b]}
signals:
  - {name: cross, component: ma_crossover, inputs: [a, b]}
rules: {entry: {golden_cross: buy}}
""", tmp_path)
    assert str(err) == "s.yaml: indicators[0].inputs: inputs form a cycle: a -> b -> c -> a"


@pytest.mark.parametrize("inputs, message", [
    ("[bb, close]", "signals[0].inputs[0]: indicator 'bb' has several outputs; name one, e.g. 'bb.upper' "
                    "(outputs: upper, middle, lower)"),
    ("[bb.top, close]", "signals[0].inputs[0]: indicator 'bb' has no output 'top' (outputs: upper, middle, lower)"),
    ("[bb.upper]", "signals[0].inputs: input 'slow' of ma_crossover is not bound; list it in inputs "
                   "(inputs: fast, slow)"),
])
def test_multi_output_references(tmp_path, inputs, message):
    err = compile_error(f"""\
indicators:
  - {{name: bb, component: bollinger}}
signals:
  - {{name: cross, component: ma_crossover, inputs: {inputs}}}
rules: {{entry: {{golden_cross: buy}}}}
""", tmp_path)
    assert str(err) == f"s.yaml: {message}"


def test_component_files_that_do_not_parse_or_import(tmp_path):
    (tmp_path / "components").mkdir()
    broken = tmp_path / "components" / "broken.py"
    body = "indicators:\n  - {name: x, component: sma}\nsignals: []\nrules: {entry: {}}\n"
    broken.write_text("from candleflow import indicator\n@indicator('x')\ndef x(close:\n")
    err = compile_error(body, tmp_path)
    assert str(err) == f"{broken}: cannot parse component file: '(' was never closed (broken.py, line 3)"
    broken.write_text("from candleflow import indicator\nraise RuntimeError('boom')\n"
                      "@indicator('x2')\ndef x(close):\n    return close\n")
    err = compile_error(body, tmp_path)
    assert str(err) == f"{broken}: importing component file failed: RuntimeError: boom"


def test_component_defined_twice(tmp_path):
    (tmp_path / "components").mkdir()
    mine = tmp_path / "components" / "mine.py"
    mine.write_text("from candleflow import indicator\n@indicator('sma')\ndef my_sma(close):\n    return close\n")
    err = compile_error("indicators: []\nrules: {entry: {}}\n", tmp_path)
    assert str(err) == f"s.yaml: component 'sma' is defined twice: in builtin and in {mine}; rename one"


def test_missing_component_folder(tmp_path):
    err = compile_error("components: [lib]\nrules: {entry: {x: buy}}\n", tmp_path)
    assert str(err).startswith(f"s.yaml: components[0]: folder 'lib' not found in {tmp_path.resolve()}")
