"""What a compiled strategy uses, and the parts of it that can change nothing (no silent no-ops).

A *signal use* is a signal type a rule or condition acts on, with the signal nodes whose
events it matches: a bare ``golden_cross`` matches every signal node, ``cross.golden_cross``
one.  From the uses and the graph:

* :func:`unused_parts` (compile time): an indicator or reference nothing reads (no other
  node's input, no condition's operand), and a signal node no rule or condition uses;
* :func:`silent_parts` (after a run, from the signal frames): a signal node that never
  fired, and a use whose signal type never fired though its nodes did (its rule never
  triggered).

Each is a ``(yaml path, message)`` pair; the caller warns (:func:`candleflow.errors.warn`).

:func:`check_data` (before a run, against its candles) raises instead for what could never work: a
``period`` (or ``*_period``) longer than the data leaves its node NaN throughout, so nothing
downstream could ever fire; an ``execution.trade_from`` after the last candle leaves nothing to
trade.  It returns, as warnings, a ``trade_from`` at or before the first candle (no warm-up at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from candleflow.dag.compiler import CompiledStrategy, collected_error


@dataclass(frozen=True)
class SignalUse:
    """A signal type acted on at ``yaml_path``, matching events of the signal nodes ``nodes``."""

    nodes: tuple[str, ...]
    signal_type: str
    yaml_path: str

    def matches(self, node: str, signal_type: str) -> bool:
        return signal_type == self.signal_type and node in self.nodes


def signal_nodes(compiled: CompiledStrategy) -> list[str]:
    return [name for name, plan in compiled.plans.items() if plan.kind == "signal"]


def signal_uses(compiled: CompiledStrategy) -> list[SignalUse]:
    """Every signal type the rules act on: signal-form rule keys, then the conditions' signal events."""
    signals = tuple(signal_nodes(compiled))
    uses = []
    for section in ("entry", "exit"):
        for key in compiled.strategy.rules.signal_rules(section):
            node, dot, signal_type = key.rpartition(".")
            uses.append(SignalUse((node,) if dot else signals, signal_type, f"rules.{section}.{key}"))
    for plan in compiled.plans.values():
        if plan.kind == "condition" and plan.component.name == "event":
            sources = tuple(b.source for b in plan.bindings[1:])  # x0 is the candles' clock
            uses.append(SignalUse(sources, plan.params["signal_type"], plan.yaml_path))
    return uses


def can_emit(compiled: CompiledStrategy, node: str, signal_type: str) -> bool:
    """Whether signal node ``node`` may emit ``signal_type``: its component declares it, or declares nothing."""
    component = compiled.plans[node].component
    declared = component.signal_types if component is not None else None
    return declared is None or signal_type in declared


def unused_parts(compiled: CompiledStrategy) -> list[tuple[str, str]]:
    """Indicators and references nothing reads, signal nodes no rule uses: ``(yaml path, message)`` each."""
    graph, uses = compiled.graph, signal_uses(compiled)
    parts = []
    for name in graph:
        kind = graph.nodes[name]["kind"]
        if kind in ("indicator", "reference") and graph.out_degree(name) == 0:
            parts.append((graph.nodes[name]["yaml_path"], f"{kind} '{name}' is read by nothing (no signal, "
                                                          f"condition or indicator names it); remove it or use it"))
    for name in signal_nodes(compiled):
        plan = compiled.plans[name]
        declared = plan.component.signal_types if plan.component else None
        if not any(name in use.nodes and can_emit(compiled, name, use.signal_type) for use in uses):
            emits = f" (it emits: {', '.join(declared)})" if declared else ""
            parts.append((plan.yaml_path, f"no rule or condition uses signal '{name}'{emits}"))
    return parts


def silent_parts(compiled: CompiledStrategy, frames: Mapping[str, pd.DataFrame],
                 n_candles: int) -> list[tuple[str, str]]:
    """After a run: signal nodes that never fired, and uses whose type never fired though their nodes did."""
    fired = {name: set(frames[name]["signal_type"].astype(str)) for name in signal_nodes(compiled) if name in frames}
    parts = [(compiled.plans[name].yaml_path, f"signal '{name}' never fired on the {n_candles:,} candles")
             for name, types in fired.items() if not types]
    for use in signal_uses(compiled):
        nodes = [node for node in use.nodes if fired.get(node) and can_emit(compiled, node, use.signal_type)]
        if nodes and not any(use.signal_type in fired[node] for node in nodes):
            seen = sorted(set().union(*(fired[node] for node in nodes)))
            parts.append((use.yaml_path, f"'{use.signal_type}' never fired on the {n_candles:,} candles (fired: "
                                         f"{', '.join(seen)}), so this never triggered"))
    return parts


def check_data(compiled: CompiledStrategy, candles: pd.DataFrame) -> list[tuple[str, str]]:
    """A CompileError listing every ``period``/``*_period`` param longer than its node's candles (the data's, or
    those of its higher timeframe), e.g. ``indicators[0].params.period: 500 is longer than the data (300 candles)``,
    and a ``trade_from`` after the last candle; the warnings (see the module docstring)."""
    errors, warnings = _trade_from_problems(compiled, candles)
    seconds = candles.index.asi8 // 1_000_000_000
    for plan in compiled.plans.values():
        if plan.kind not in ("indicator", "signal") or plan.component is None:
            continue
        if plan.timeframe is None:
            count, unit = len(candles), "candles"
        else:
            period, offset = plan.timeframe
            count, unit = len(set(((seconds - offset) // period).tolist())), f"candles of {plan.spec.timeframe}"
        for name, value in plan.params.items():
            long = isinstance(value, int) and not isinstance(value, bool) and value > count
            if long and (name == "period" or name.endswith("_period")):
                errors.append((f"{plan.yaml_path}.params.{name}",
                               f"{value} is longer than the data ({count:,} {unit})"))
    if errors:
        raise collected_error(errors, file=compiled.file)
    return warnings


def _trade_from_problems(compiled: CompiledStrategy, candles: pd.DataFrame) -> tuple[list, list]:
    """([error], []) after the last candle, ([], [warning]) at or before the first, else ([], [])."""
    trade_from = compiled.strategy.execution.trade_from
    if trade_from is None or candles.empty:
        return [], []
    bar = compiled.strategy.execution.trade_from_bar(candles.index)
    first, last = (f"{t:%Y-%m-%d %H:%M}" for t in candles.index[[0, -1]])
    if bar >= len(candles):
        return [("execution.trade_from", f"{trade_from} is after the last candle ({last}): nothing would trade")], []
    if bar == 0:
        return [], [("execution.trade_from", f"{trade_from} is at or before the first candle ({first}): no candle "
                                             f"is left to warm up the indicators, so it changes nothing")]
    return [], []
