"""Draw a compiled strategy graph with graphviz, optionally annotated with a run's node stats.

Each kind of node has its own shape and colour: the candle data source is a
cylinder, indicators are rounded boxes, signals hexagons, the evaluator an
octagon.  A node shows its name, its component (``script:file.py`` for scripts)
and its params; an edge shows what flows along it, one ``output -> input`` line
per binding (or just the input name when the whole value flows, e.g. ``signals``).

With ``stats`` (from :class:`~candleflow.backtest.BacktestResult`) every node also
shows its wall time, its cache outcome and, for signal nodes and the evaluator,
how many signals / trades it produced; failed nodes are red and carry the first
words of their error, skipped nodes are grey.

The output format comes from the file suffix: ``.svg`` and ``.png`` are drawn by
graphviz's ``dot`` program, ``.dot`` is the graph source and needs no program.
"""

from __future__ import annotations

import textwrap
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from candleflow._atomic import write_bytes_atomic, write_text_atomic
from candleflow.dag.compiler import CANDLES, EVALUATOR
from candleflow.errors import CandleflowError, ConfigError

if TYPE_CHECKING:
    import graphviz

    from candleflow.dag.compiler import CompiledStrategy, NodePlan
    from candleflow.dag.executor import NodeStats

FORMATS = (".svg", ".png", ".dot")
DOT_MISSING = "graphviz's 'dot' program is not installed; install the Debian package 'graphviz' (apt-get install graphviz)"

FONT = "Helvetica"
MUTED = "#64748b"
FAILED = {"fillcolor": "#fee2e2", "color": "#dc2626", "fontcolor": "#7f1d1d"}
SKIPPED = {"fillcolor": "#f1f5f9", "color": "#cbd5e1", "fontcolor": "#94a3b8", "style": "filled,dashed"}
STYLES = {
    "candles": {"shape": "cylinder", "fillcolor": "#dbeafe", "color": "#2563eb", "fontcolor": "#1e3a8a"},
    "indicator": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dcfce7", "color": "#16a34a",
                  "fontcolor": "#14532d"},
    "signal": {"shape": "hexagon", "fillcolor": "#fef3c7", "color": "#d97706", "fontcolor": "#78350f"},
    "evaluator": {"shape": "octagon", "fillcolor": "#ede9fe", "color": "#7c3aed", "fontcolor": "#3b0764"},
}
ERROR_TEXT = "#b91c1c"
ERROR_WORDS = 12
ERROR_WIDTH = 44


def render_graph(compiled: "CompiledStrategy", output: Path, *, stats: dict[str, "NodeStats"] | None = None) -> Path:
    """Draw ``compiled``'s graph into ``output`` (.svg, .png or .dot), atomically; return ``output``."""
    import graphviz

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"cannot draw the graph as '{output.suffix or output.name}'; "
                          f"use one of {', '.join(FORMATS)}", file=str(output))
    graph = build_graph(compiled, stats)
    if suffix == ".dot":
        write_text_atomic(output, graph.source)
        return output
    if suffix == ".png":
        graph.attr(dpi="144")
    try:
        data = graph.pipe(format=suffix[1:])
    except graphviz.ExecutableNotFound:
        raise CandleflowError(DOT_MISSING) from None
    write_bytes_atomic(output, data)
    return output


def build_graph(compiled: "CompiledStrategy", stats: dict[str, "NodeStats"] | None = None) -> "graphviz.Digraph":
    """The graphviz description of ``compiled``'s graph (nothing is drawn yet)."""
    import graphviz

    strategy = compiled.strategy
    graph = graphviz.Digraph(name=strategy.name)
    graph.attr(rankdir="LR", bgcolor="transparent", fontname=FONT, nodesep="0.35", ranksep="0.7", pad="0.2",
               label=f"{strategy.name}  ·  {strategy.symbol} {strategy.timeframe}", labelloc="t", fontsize="16")
    graph.attr("node", fontname=FONT, fontsize="12", style="filled", penwidth="1.4", margin="0.18,0.08")
    graph.attr("edge", fontname=FONT, fontsize="10", color="#94a3b8", fontcolor=MUTED, arrowsize="0.7")
    for name in compiled.order():
        kind = compiled.graph.nodes[name]["kind"]
        lines = _describe(compiled, name)
        style = dict(STYLES[kind])
        stat = stats.get(name) if stats else None
        if stat is not None:
            lines.append(_stat_line(stat))
            if stat.status == "failed":
                style.update(FAILED)
                lines += [f'<FONT COLOR="{ERROR_TEXT}">{escape(line)}</FONT>' for line in _first_words(stat.error)]
            elif stat.status == "skipped":
                style.update(SKIPPED)
        graph.node(name, label=_html_label(name, lines), **style)
    for source, target, data in compiled.graph.edges(data=True):
        label = "\n".join(f"{b.output} -> {b.name}" if b.output else b.name for b in data["bindings"])
        graph.edge(source, target, label=f" {label} ")
    return graph


def _describe(compiled: "CompiledStrategy", name: str) -> list[str]:
    """The escaped detail lines under a node's name: its component and params."""
    strategy = compiled.strategy
    if name == CANDLES:
        return [escape(f"{strategy.symbol} {strategy.timeframe}"), escape(compiled.graph.nodes[name]["label"])]
    if name == EVALUATOR:
        rules = [*strategy.rules.entry.items(), *strategy.rules.exit.items()]
        return [escape(f"{key}: {action}") for key, action in rules]
    plan: NodePlan = compiled.plans[name]
    lines = [f"<I>{escape(plan.label)}</I>"]
    params = [f"{key}={_short(value)}" for key, value in plan.params.items()]
    lines += [escape(", ".join(params[i:i + 3])) for i in range(0, len(params), 3)]
    return lines


def _stat_line(stat: "NodeStats") -> str:
    parts = []
    if stat.status == "skipped":
        parts.append("skipped")
    elif stat.cache == "hit":
        parts.append("cache hit")
    else:
        parts.append(_duration(stat.seconds))
        parts.append("cache miss" if stat.cache == "miss" else "no cache")
    if stat.signals is not None:
        noun = "trades" if stat.kind == "evaluator" else "signals"
        parts.append(f"{stat.signals:,} {noun}")
    return escape("  ·  ".join(parts))


def _html_label(name: str, lines: list[str]) -> str:
    details = "".join(f'<BR/><FONT POINT-SIZE="10">{line}</FONT>' for line in lines)
    return f"<<B>{escape(name)}</B>{details}>"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _first_words(error: str | None) -> list[str]:
    """The error's first ``ERROR_WORDS`` words after "failed:", wrapped into short lines."""
    words = (error or "").split()
    text = " ".join(["failed:", *words[:ERROR_WORDS]]) + (" ..." if len(words) > ERROR_WORDS else "")
    return textwrap.wrap(text, ERROR_WIDTH)


def _short(value: Any, limit: int = 24) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
