"""Draw a compiled strategy graph with graphviz, optionally annotated with a run's node stats.

Each kind of node has its own shape and colour: the candle data source is a
cylinder (a reference series a paler one), indicators are rounded boxes, signals hexagons,
conditions diamonds, the evaluator an octagon.  A node shows its name, its component
(``script:file.py`` for scripts; a condition's operator, ``all`` or ``close > sma200``), its
timeframe if it has its own, and its params; an edge shows what flows along it, one ``output -> input`` line
per binding (or just the input name when the whole value flows, e.g. ``signals``).

With ``stats`` (from :class:`~candleflow.backtest.BacktestResult`) every node also
shows its wall time, its cache outcome and, for signal nodes and the evaluator,
how many signals / trades it produced; failed nodes are red and carry the first
words of their error, skipped nodes are grey.

The output format comes from the file suffix: ``.svg`` and ``.png`` are drawn by
graphviz's ``dot`` program, ``.dot`` is the graph source and needs no program.

Every text drawn (names, labels, params, rules, edge bindings, the title) is clipped to
``CLIP`` characters, and a node id longer than ``CLIP`` is shortened with a hash, so a huge
``--set`` value cannot make ``dot`` fail (it rejects strings over 16384 characters).  Should
``dot`` fail anyway, :func:`draw` raises one line naming the output and dot's first stderr line.
"""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from candleflow._atomic import write_bytes_atomic, write_text_atomic
from candleflow.errors import CandleflowError, ConfigError
from candleflow.output_paths import check_file
from candleflow.vocab import CANDLES, EVALUATOR

if TYPE_CHECKING:
    import graphviz  # the Python binding, only when a graph is drawn

    from candleflow.dag.compiler import CompiledStrategy
    from candleflow.vocab import NodePlan, NodeStats

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
    "reference": {"shape": "cylinder", "fillcolor": "#e0f2fe", "color": "#0284c7", "fontcolor": "#0c4a6e"},
    "signal": {"shape": "hexagon", "fillcolor": "#fef3c7", "color": "#d97706", "fontcolor": "#78350f"},
    "condition": {"shape": "diamond", "fillcolor": "#e0f2fe", "color": "#0284c7", "fontcolor": "#0c4a6e"},
    "evaluator": {"shape": "octagon", "fillcolor": "#ede9fe", "color": "#7c3aed", "fontcolor": "#3b0764"},
}
ERROR_TEXT = "#b91c1c"
ERROR_WORDS = 12
ERROR_WIDTH = 44
CLIP = 60  # characters of any one drawn text


def render_graph(compiled: "CompiledStrategy", output: Path, *, stats: dict[str, "NodeStats"] | None = None) -> Path:
    """Draw ``compiled``'s graph into ``output`` (.svg, .png or .dot), atomically; return ``output``."""
    output = Path(output)
    suffix = _suffix(output)
    graph = build_graph(compiled, stats)
    if suffix == ".dot":
        write_text_atomic(output, graph.source)
        return output
    if suffix == ".png":
        graph.attr(dpi="144")
    write_bytes_atomic(output, draw(graph, suffix[1:], output))
    return output


def check_graph_output(output: Path, option: str) -> Path:
    """Before any work: the suffix is one we draw, ``dot`` is there when needed, the path is writable."""
    if _suffix(output) != ".dot" and shutil.which("dot") is None:
        raise CandleflowError(DOT_MISSING)
    return check_file(output, option)


def draw(graph: "graphviz.Digraph", fmt: str, output: str | Path) -> bytes:
    """``graph`` drawn by ``dot`` as ``fmt``; a missing or failing ``dot`` is one line naming ``output``."""
    import graphviz  # the Python binding, only when a graph is drawn

    try:
        return graph.pipe(format=fmt, quiet=True)  # dot's stderr goes into the one-line error, not the terminal
    except graphviz.ExecutableNotFound:
        raise CandleflowError(DOT_MISSING) from None
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
        first = next((line.strip() for line in stderr.splitlines() if line.strip()), f"exit code {exc.returncode}")
        raise CandleflowError(f"graphviz's dot failed: {_clip(first, 200)}", file=str(output)) from None
    except OSError as exc:
        raise CandleflowError(f"cannot run graphviz's dot ({exc.strerror or exc})", file=str(output)) from None


def _suffix(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"cannot draw the graph as '{output.suffix or output.name}'; "
                          f"use one of {', '.join(FORMATS)}", file=str(output))
    return suffix


def build_graph(compiled: "CompiledStrategy", stats: dict[str, "NodeStats"] | None = None) -> "graphviz.Digraph":
    """The graphviz description of ``compiled``'s graph (nothing is drawn yet)."""
    import graphviz  # the Python binding, only when a graph is drawn

    strategy = compiled.strategy
    graph = graphviz.Digraph(name=_clip(strategy.name))
    title = f"{_clip(strategy.name)}  ·  {_clip(f'{strategy.symbol} {strategy.timeframe}')}"
    graph.attr(rankdir="LR", bgcolor="transparent", fontname=FONT, nodesep="0.35", ranksep="0.7", pad="0.2",
               label=title, labelloc="t", fontsize="16")
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
        graph.node(_node_id(name), label=_html_label(name, lines), **style)
    for source, target, data in compiled.graph.edges(data=True):
        label = "\n".join(_clip(f"{b.output} -> {b.name}" if b.output else b.name) for b in data["bindings"])
        graph.edge(_node_id(source), _node_id(target), label=f" {label} ")
    return graph


def _describe(compiled: "CompiledStrategy", name: str) -> list[str]:
    """The escaped detail lines under a node's name: its component and params."""
    strategy = compiled.strategy
    if name == CANDLES:
        data = compiled.graph.nodes[name]["label"]
        return [escape(_clip(f"{strategy.symbol} {strategy.timeframe}")), escape(_clip(data, tail=True))]
    if compiled.graph.nodes[name]["kind"] == "reference":
        reference = strategy.references[name]
        return [escape(_clip(f"reference {reference.timeframe or strategy.timeframe}")),
                escape(_clip(compiled.graph.nodes[name]["label"], tail=True))]
    if name == EVALUATOR:
        rules = [*strategy.rules.signal_rules("entry").items(), *strategy.rules.signal_rules("exit").items()]
        lines = [escape(_clip(f"{key}: {action}")) for key, action in rules]  # condition-form actions label edges
        return lines + [f"<I>{escape(_clip(line, 2 * CLIP))}</I>" for line in strategy.order_lines()]
    plan: NodePlan = compiled.plans[name]
    lines = [f"<I>{escape(_clip(plan.label))}</I>"]
    if plan.kind == "condition":  # the operator ("all", "close > sma200"); its params are internal
        return lines
    if plan.timeframe is not None:
        offset = f" +{plan.spec.timeframe_offset}" if plan.spec.timeframe_offset else ""
        lines.append(escape(_clip(f"timeframe {plan.spec.timeframe}{offset}")))
    params = [f"{_short(key)}={_short(value)}" for key, value in plan.params.items()]
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
    return f"<<B>{escape(_clip(name))}</B>{details}>"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _first_words(error: str | None) -> list[str]:
    """The error's first ``ERROR_WORDS`` words after "failed:", wrapped into short lines."""
    words = (error or "").split()
    text = " ".join(["failed:", *words[:ERROR_WORDS]]) + (" ..." if len(words) > ERROR_WORDS else "")
    return textwrap.wrap(_clip(text, 4 * ERROR_WIDTH), ERROR_WIDTH)  # a long word would wrap into many lines


def _short(value: Any, limit: int = 24) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _clip(value: Any, limit: int = CLIP, *, tail: bool = False) -> str:
    """``value`` as text of at most ``limit`` characters, ``...`` marking the cut (at the start with ``tail``)."""
    text = str(value)
    if len(text) <= limit or not tail:
        return _short(text, limit)
    return "..." + text[-(limit - 3):]


def _node_id(name: str) -> str:
    """The node's id in the graph source: its name, or for a very long one a clipped name and a hash."""
    if len(name) <= CLIP:
        return name
    return f"{name[:CLIP - 12]}~{hashlib.sha1(name.encode()).hexdigest()[:10]}"
