"""What the strategy tells its chart: readable indicator names and the levels it compares them with.

* **Labels.** Each indicator node is named by what it is: ``sma_fast`` reads
  ``sma_fast · sma(20)``, ``bb`` reads ``bb · bollinger(20, 2.0)`` (the params the
  strategy sets, in its order; defaults are not repeated).
* **Levels.** A number the strategy compares an indicator output with is a level of
  that indicator's panel: ``{below: [rsi, 30]}``, ``{between: [rsi, 30, 70]}``,
  ``{crosses_above: [macd.hist, 0]}``; so is a signal component's param declared as a
  level (``@signal(..., levels=("lower", "upper"))``, e.g. ``rsi_threshold``'s 30/70,
  defaults included) on each indicator the signal reads.

Both come from the compiled strategy (its node plans), so they are what the run used.

>>> from candleflow.config import parse_strategy
>>> from candleflow.dag.compiler import compile_strategy
>>> text = '''
... name: demo
... symbol: X
... timeframe: 1h
... data: {sample: eurusd_1h}
... indicators: [{name: rsi, component: rsi, params: {period: 14}}]
... rules: {entry: {buy: {below: [rsi, 30]}}, exit: {close: {above: [rsi, 70]}}}
... '''
>>> notes = chart_notes(compile_strategy(parse_strategy(text)))
>>> notes.labels["rsi"], notes.levels["rsi"]
('rsi · rsi(14)', (30.0, 70.0))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from candleflow.dag.compiler import CompiledStrategy


@dataclass(frozen=True)
class ChartNotes:
    """Indicator node -> label, indicator node -> its levels (sorted, distinct); the account's start."""

    labels: dict[str, str] = field(default_factory=dict)
    levels: dict[str, tuple[float, ...]] = field(default_factory=dict)
    initial_cash: float | None = None


def chart_notes(compiled: "CompiledStrategy | None") -> ChartNotes:
    """The notes of ``compiled`` (empty notes without a strategy, e.g. one that no longer compiles)."""
    if compiled is None:
        return ChartNotes()
    indicators = {name: plan for name, plan in compiled.plans.items() if plan.kind == "indicator"}
    levels: dict[str, set[float]] = {}
    for plan in compiled.plans.values():
        numbers = _levels_of(plan)
        for source in {b.source for b in plan.bindings if b.source in indicators} if numbers else ():
            levels.setdefault(source, set()).update(numbers)
    return ChartNotes(labels={name: _label(plan) for name, plan in indicators.items()},
                      levels={name: tuple(sorted(values)) for name, values in levels.items()},
                      initial_cash=float(compiled.strategy.initial_cash))


def _levels_of(plan) -> list[float]:
    """The numbers a comparison condition holds, or a signal's params declared as levels."""
    if plan.kind == "condition" and "operands" in plan.params:
        return [value for kind, value in plan.params["operands"] if kind == "number"]
    if plan.kind == "signal" and plan.component is not None and plan.component.levels:
        return [float(plan.params[name]) for name in plan.component.levels]
    return []


def _label(plan) -> str:
    """``node · component(p1, p2)`` with the params the strategy sets (``... on 1d`` on a higher timeframe)."""
    params = ", ".join(str(value) for value in plan.spec.params.values())
    what = plan.label if plan.script is None else plan.script.name
    text = f"{plan.name} · {what}({params})" if params else f"{plan.name} · {what}"
    return f"{text} on {plan.spec.timeframe}" if getattr(plan.spec, "timeframe", None) else text


__all__ = ["ChartNotes", "chart_notes"]
