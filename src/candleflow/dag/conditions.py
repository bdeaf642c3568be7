"""Conditions: named ``conditions:`` and condition-form rules compiled into ``condition`` nodes.

A condition is a signal type (``golden_cross``, ``cross.golden_cross``), the name of a
named condition, or a mapping with one operator::

    {above: [close, sma200]}   {below: [rsi, 70]}   {between: [rsi, 30, 70]}
    {crosses_above: [macd.macd, 0]}   {crosses_below: [close, bb.lower]}
    {all: [c, ...]}   {any: [c, ...]}   {not: c}   {within: {n: 5, of: c}}

Operands of a comparison are indicator outputs, candle columns or numbers.  Every
operator becomes one node (kind ``condition``) whose plan runs a built-in function of
:mod:`candleflow.components.conditions`; a named condition's node is its name, an
inline one's its YAML path (``rules.entry.buy.all[1]``), which no user name can equal.
Each condition-form rule's root feeds the evaluator through an edge binding named
after its action.  Problems are collected as ``(yaml path, message)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from candleflow.components.conditions import COMPARISONS, OPERATORS, condition_component
from candleflow.config.models import NAME_PATTERN, SECTION_ACTIONS, Strategy
from candleflow.vocab import CANDLE_COLUMNS, CANDLES, Binding, NodePlan

SYMBOLS = {"above": ">", "below": "<", "crosses_above": "crosses above", "crosses_below": "crosses below"}
SHAPES = {"above": "[a, b]", "below": "[a, b]", "crosses_above": "[a, b]", "crosses_below": "[a, b]",
          "between": "[x, lo, hi]"}


@dataclass(frozen=True)
class ConditionSpec:
    """A condition node's stand-in for a YAML component entry: ``component`` is the label drawn."""

    component: str
    lookback: None = None
    timeout: None = None
    isolation: None = None
    timeframe: None = None  # conditions run on the data's timeframe (higher-timeframe inputs arrive aligned)
    timeframe_offset: None = None
    inputs: tuple = ()


@dataclass
class Conditions:
    """The condition nodes of a strategy and, per condition-form action, the node deciding it."""

    plans: dict[str, NodePlan] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)  # action -> node


def register_names(strategy: Strategy, reserved: set[str], kinds: dict[str, str], first_paths: dict[str, str],
                   errors: list) -> None:
    """Add each named condition to ``kinds`` (as ``condition``), reporting bad and duplicate names."""
    for i, item in enumerate(strategy.conditions):
        path, name = f"conditions[{i}]", item.get("name")
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
            errors.append((f"{path}.name", f"a named condition needs a 'name' matching {NAME_PATTERN}, got {name!r}"))
        elif name in reserved:
            errors.append((f"{path}.name", f"'{name}' is reserved; pick another name"))
        elif name in kinds:
            errors.append((f"{path}.name", f"duplicate name '{name}' (already used by {first_paths[name]})"))
        else:
            kinds[name], first_paths[name] = "condition", path


def compile_conditions(strategy: Strategy, kinds: dict[str, str], plans: dict[str, NodePlan],
                       check_ref: Callable[[Binding], str | None], errors: list) -> Conditions:
    """Parse the named conditions and the condition-form rules into condition plans."""
    parser = _Parser(kinds, plans, check_ref, errors)
    for i, item in enumerate(strategy.conditions):
        name = item.get("name")
        if kinds.get(name) == "condition" and f"conditions[{i}]" == _first_path(strategy, name):
            body = {key: value for key, value in item.items() if key != "name"}
            parser.expression(body, f"conditions[{i}]", node=name)
    for section in ("entry", "exit"):
        if strategy.rules.form(section) != "conditions":
            continue
        for action, value in getattr(strategy.rules, section).items():
            path = f"rules.{section}.{action}"
            if section == "exit" and isinstance(value, dict) and "when" in value:  # a partial exit
                extra = sorted(set(value) - {"when", "fraction"})
                if extra:
                    parser.fail(f"{path}.{extra[0]}", "a partial exit takes 'when' (its condition) and 'fraction'")
                    continue
                value, path = value["when"], f"{path}.when"
            root = parser.expression(value, path)
            if root is not None:
                parser.result.roots[action] = root
    return parser.result


def check_rule_form(strategy: Strategy, section: str, errors: list) -> None:
    """A mixed or ambiguous ``rules.<section>`` mapping is one error."""
    form = strategy.rules.form(section)
    actions = ", ".join(SECTION_ACTIONS[section])
    if form == "mixed":
        errors.append((f"rules.{section}", f"mixes actions ({actions}) and signal types as keys; write either "
                                           f"{{signal_type: action}} or {{action: condition}}"))
    elif form == "ambiguous":
        errors.append((f"rules.{section}", f"ambiguous: every key and every value is an action ({actions}); write "
                                           f"{{signal_type: action}} or {{action: condition}}"))


def _first_path(strategy: Strategy, name: str) -> str:
    return next(f"conditions[{i}]" for i, item in enumerate(strategy.conditions) if item.get("name") == name)


class _Parser:
    def __init__(self, kinds, plans, check_ref, errors) -> None:
        self.kinds, self.plans, self.check_ref, self.errors = kinds, plans, check_ref, errors
        self.result = Conditions()
        self.signals = sorted(n for n, kind in kinds.items() if kind == "signal")
        declared = [plans[n].component.signal_types if n in plans and plans[n].component else None
                    for n in self.signals]
        self.all_declared = all(types is not None for types in declared)
        self.known_types = sorted({t for types in declared if types for t in types})

    def fail(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def expression(self, value: Any, path: str, *, node: str | None = None) -> str | None:
        """The node computing ``value`` (added as ``node``, default its path); None after reporting a problem."""
        node = node or path
        if isinstance(value, str):
            return self.reference(value, path, node)
        if not isinstance(value, dict) or len(value) != 1:
            got = ", ".join(map(str, value)) if isinstance(value, dict) else repr(value)
            return self.fail(path, f"a condition is a signal type, a condition name or a mapping with one operator "
                                   f"({', '.join(OPERATORS)}), got {got or 'nothing'}")
        (operator, argument), = value.items()
        where = f"{path}.{operator}"
        if operator in COMPARISONS:
            return self.comparison(operator, argument, where, node)
        if operator in ("all", "any"):
            return self.logic(operator, argument, where, node)
        if operator == "not":
            child = self.expression(argument, where)
            return child and self.add(node, path, "not", [child], {}, "not")
        if operator == "within":
            return self.within(argument, where, node, path)
        return self.fail(path, f"unknown operator '{operator}' (operators: {', '.join(OPERATORS)})")

    def reference(self, text: str, path: str, node: str) -> str | None:
        """A named condition's node, or a new event node for a signal type."""
        if self.kinds.get(text) == "condition":
            return text
        if self.kinds.get(text) == "indicator":
            return self.fail(path, f"'{text}' is an indicator, not a condition; compare it, "
                                   f"e.g. {{above: [{text}, 0]}}")
        source, dot, signal_type = text.rpartition(".")
        if dot:
            sources = self.qualified(source, signal_type, path)
        elif self.all_declared and text not in self.known_types:
            return self.fail(path, f"no signal emits '{text}' and no condition is named so (emitted: "
                                   f"{', '.join(self.known_types) or 'none'})")
        else:
            sources = [n for n in self.signals if n in self.plans]
        if sources is None:
            return None
        bindings = [Binding("x0", CANDLES, "close"), *(Binding(f"x{i + 1}", s) for i, s in enumerate(sources))]
        return self.add(node, path, "event", bindings, {"signal_type": signal_type or text}, text)

    def qualified(self, source: str, signal_type: str, path: str) -> list[str] | None:
        if self.kinds.get(source) != "signal":
            return self.fail(path, f"'{source}' is not a signal node (signals: {', '.join(self.signals) or 'none'})")
        plan = self.plans.get(source)
        declared = plan.component.signal_types if plan and plan.component else None
        if declared is not None and signal_type not in declared:
            return self.fail(path, f"signal '{source}' never emits '{signal_type}' (it emits: {', '.join(declared)})")
        return [source] if plan else None

    def comparison(self, operator: str, argument: Any, path: str, node: str) -> str | None:
        arity = COMPARISONS[operator]
        if not isinstance(argument, list) or len(argument) != arity:
            got = f"{len(argument)}" if isinstance(argument, list) else repr(argument)
            return self.fail(path, f"'{operator}' takes {arity} operands {SHAPES[operator]}, got {got}")
        bindings: list[Binding] = []
        operands = [self.operand(value, f"{path}[{i}]", bindings) for i, value in enumerate(argument)]
        if any(o is None for o in operands):
            return None
        if not bindings:
            return self.fail(path, "compares numbers only; name an indicator output or a candle column")
        return self.add(node, path, "comparison", bindings, {"operator": operator, "operands": tuple(operands)},
                        _label(operator, argument))

    def operand(self, value: Any, path: str, bindings: list[Binding]) -> tuple[str, Any] | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                return self.fail(path, f"a number operand must be finite, got {value!r}")
            return ("number", float(value))
        if not isinstance(value, str):
            return self.fail(path, f"an operand is an indicator output, a candle column or a number, got {value!r}")
        source = value.partition(".")[0]
        if self.kinds.get(source) in ("signal", "condition") and value not in CANDLE_COLUMNS:
            return self.fail(path, f"'{value}' is a {self.kinds[source]}; an operand is an indicator output, "
                                   f"a candle column or a number")
        binding = Binding.parse(f"x{len(bindings)}", value)
        problem = self.check_ref(binding)
        if problem:
            return self.fail(path, problem)
        bindings.append(binding)
        return ("series", len(bindings) - 1)

    def logic(self, operator: str, argument: Any, path: str, node: str) -> str | None:
        if not isinstance(argument, list) or not argument:
            return self.fail(path, f"'{operator}' takes a non-empty list of conditions, got {argument!r}")
        children = [self.expression(value, f"{path}[{i}]") for i, value in enumerate(argument)]
        if any(child is None for child in children):
            return None
        return self.add(node, path[:-len(operator) - 1], operator, children, {}, operator)

    def within(self, argument: Any, path: str, node: str, own_path: str) -> str | None:
        if not isinstance(argument, dict) or set(argument) != {"n", "of"}:
            return self.fail(path, f"'within' takes {{n: CANDLES, of: CONDITION}}, got {argument!r}")
        n = argument["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            return self.fail(f"{path}.n", f"must be a whole number of candles >= 1, got {n!r}")
        child = self.expression(argument["of"], f"{path}.of")
        return child and self.add(node, own_path, "within", [child], {"n": n}, f"within {n}")

    def add(self, node: str, path: str, target: str, inputs: list, params: dict, label: str) -> str:
        bindings = [b if isinstance(b, Binding) else Binding(f"x{i}", b) for i, b in enumerate(inputs)]
        component = condition_component(target, len(bindings))
        self.result.plans[node] = NodePlan(node, "condition", path, ConditionSpec(label), component, None, params,
                                           tuple(bindings))
        return node



def _label(operator: str, operands: list) -> str:
    if operator == "between":
        return f"{operands[1]} <= {operands[0]} <= {operands[2]}"
    return f"{operands[0]} {SYMBOLS[operator]} {operands[1]}"


__all__ = ["ConditionSpec", "Conditions", "check_rule_form", "compile_conditions", "register_names"]
