"""Compile a :class:`~candleflow.config.Strategy` into a networkx DAG.

Nodes (``kind`` attribute):

* ``candles`` - the data source (one node, id ``candles``);
* ``indicator`` / ``signal`` - one per YAML entry, id = its ``name``;
* ``condition`` - one per operator of a named condition or a condition-form rule
  (see :mod:`.conditions`);
* ``evaluator`` - the portfolio simulation (id ``evaluator``), fed by every signal and by
  the condition deciding each condition-form action (edge binding named after the action).

Each indicator/signal node carries a :class:`NodePlan`: the resolved component
(or script path), validated params, its input *bindings* and its higher
``timeframe`` (period, offset) if it declares one: a higher-timeframe node
reads candle columns or nodes on its own timeframe and offset; a base node may
read it.  An edge ``u -> v`` carries ``bindings``: which of ``u``'s outputs feed
which input of ``v``.  A script node always has an edge from ``candles`` (binding
``CANDLE_DATA``: it reads every candle column through that variable, whatever its
``inputs``), so the graph holds every dependency a node's output has: the task builder
keys nodes by their predecessors (:func:`candleflow.dag.build.node_keys`) and the
drawing shows the edges.

The whole strategy is checked before anything runs; every problem is collected
with its YAML path and raised as one :class:`~candleflow.errors.CompileError`.

>>> from candleflow.config import parse_strategy
>>> s = parse_strategy('''
... name: demo
... symbol: EURUSD
... timeframe: 1h
... data: {sample: eurusd_1h}
... indicators:
...   - {name: fast, component: sma, params: {period: 5}}
...   - {name: slow, component: sma, params: {period: 20}}
... signals:
...   - {name: cross, component: ma_crossover, inputs: [fast, slow]}
... rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
... ''')
>>> graph = compile_strategy(s).graph
>>> sorted(graph.predecessors("cross")), list(graph.successors("cross"))
(['fast', 'slow'], ['evaluator'])
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import networkx as nx

from candleflow.components.registry import Registry
from candleflow.config.models import SCRIPT, SECTION_ACTIONS, Strategy, parse_timeframe
from candleflow.dag.conditions import check_rule_form, compile_conditions, register_names
from candleflow.errors import CompileError, warn
from candleflow.vocab import CANDLE_COLUMNS, CANDLES, EVALUATOR, SCRIPT_CANDLES, Binding, NodePlan

RESERVED = {CANDLES, EVALUATOR, *CANDLE_COLUMNS}


@dataclass
class CompiledStrategy:
    strategy: Strategy
    graph: nx.DiGraph
    registry: Registry
    workspace: Path
    file: str = "<strategy>"
    plans: dict[str, NodePlan] = field(default_factory=dict)

    def order(self) -> list[str]:
        """Node ids in a deterministic topological order."""
        return list(nx.lexicographical_topological_sort(self.graph))


def find_workspace(strategy_file: Path) -> Path:
    """The nearest folder at or above the strategy's that has a ``components/`` folder, else the strategy's folder."""
    start = strategy_file.resolve().parent
    for folder in (start, *start.parents):
        if (folder / "components").is_dir():
            return folder
    return start


def resolve_in_workspace(workspace: Path, relative: str) -> Path | None:
    """``relative`` resolved inside ``workspace``; None if it escapes it (``..``, absolute path or symlink)."""
    root = workspace.resolve()
    target = (root / relative).resolve()
    return target if target == root or root in target.parents else None


def compile_strategy(strategy: Strategy, *, workspace: Path | None = None, file: str = "<strategy>",
                     registry: Registry | None = None, component_dirs: Sequence[Path] = ()) -> CompiledStrategy:
    """Check ``strategy`` whole and build its graph; raise one CompileError listing every problem.

    Components come from the built-ins, the workspace's ``components/`` folder,
    the strategy's ``components:`` folders and ``component_dirs`` (``--components``).
    """
    workspace = (workspace or Path.cwd()).resolve()
    errors: list[tuple[str, str]] = []
    if registry is None:
        folders = []
        for i, folder in enumerate(strategy.components):
            resolved = resolve_in_workspace(workspace, folder)
            if resolved is None:
                errors.append((f"components[{i}]", f"folder '{folder}' is outside the workspace {workspace}"))
            elif not resolved.is_dir():
                errors.append((f"components[{i}]", f"folder '{folder}' not found in {workspace}"))
            else:
                folders.append(resolved)
        default = workspace / "components"
        if default.is_dir() and resolve_in_workspace(workspace, "components") is None:
            raise CompileError(f"symlink leads outside the workspace {workspace}; component files and folders "
                               f"must stay inside it", file="components")
        if default.is_dir() and default.resolve() not in folders:
            folders.insert(0, default.resolve())
        for folder in component_dirs:
            if not Path(folder).is_dir():
                errors.append(("--components", f"folder '{folder}' not found"))
            elif Path(folder).resolve() not in folders:
                folders.append(Path(folder).resolve())
        try:
            registry = Registry.default(folders, workspace=workspace)
        except CompileError as exc:
            exc.file = exc.file or file
            raise
    graph = nx.DiGraph()
    graph.add_node(CANDLES, kind="candles", label=strategy.data.path or f"sample:{strategy.data.sample}")
    compiled = CompiledStrategy(strategy=strategy, graph=graph, registry=registry, workspace=workspace, file=file)

    specs = [("indicator", f"indicators[{i}]", s) for i, s in enumerate(strategy.indicators)]
    specs += [("signal", f"signals[{i}]", s) for i, s in enumerate(strategy.signals)]
    kinds: dict[str, str] = {}
    first_paths: dict[str, str] = {}
    _add_references(compiled, kinds, first_paths, errors)
    for kind, path, spec in specs:
        if spec.name in RESERVED:
            errors.append((f"{path}.name", f"'{spec.name}' is reserved; pick another name"))
        elif spec.name in kinds:
            errors.append((f"{path}.name", f"duplicate name '{spec.name}' (already used by {first_paths[spec.name]})"))
        else:
            kinds[spec.name] = kind
            first_paths[spec.name] = path
    register_names(strategy, RESERVED, kinds, first_paths, errors)
    for kind, path, spec in specs:
        plan = _plan_node(kind, path, spec, registry, workspace, errors)
        if plan is not None:
            plan = _with_timeframe(plan, strategy.timeframe, errors)
        if plan is not None and kinds.get(spec.name) == kind and spec.name not in compiled.plans:
            compiled.plans[spec.name] = plan
    for name, plan in list(compiled.plans.items()):
        bindings = tuple(replace(b, timeframe=_source_timeframe(compiled, b.source)) for b in plan.bindings)
        compiled.plans[name] = replace(plan, bindings=bindings)
        graph.add_node(name, kind=plan.kind, plan=compiled.plans[name], yaml_path=plan.yaml_path)
    for name, plan in compiled.plans.items():
        for i, binding in enumerate(plan.bindings):
            where = _input_path(plan, i, binding)
            problem = (_check_binding(plan, binding, kinds, compiled.plans)
                       or _check_timeframes(plan, binding, compiled.plans))
            if problem:
                errors.append((where, problem))
                continue
            edge = graph.get_edge_data(binding.source, name, default={"bindings": []})
            graph.add_edge(binding.source, name, bindings=edge["bindings"] + [binding])
        if plan.script is not None:  # not a plan binding: the runner hands every script the candles itself
            edge = graph.get_edge_data(CANDLES, name, default={"bindings": []})
            graph.add_edge(CANDLES, name, bindings=edge["bindings"] + [Binding(SCRIPT_CANDLES, CANDLES)])
    graph.add_node(EVALUATOR, kind="evaluator")
    for name in compiled.plans:
        if kinds[name] == "signal":
            graph.add_edge(name, EVALUATOR, bindings=[Binding("signals", name)])
    _check_rules(strategy, compiled.plans, kinds, errors)
    _add_conditions(compiled, kinds, errors)
    _add_order_levels(compiled, kinds, errors)
    _check_orders(strategy, file, errors)
    if not errors:
        _check_cycle(graph, errors)
    if errors:
        raise collected_error(errors, file=file)
    return compiled


def _add_conditions(compiled: CompiledStrategy, kinds: dict[str, str], errors: list) -> None:
    """Condition nodes, their input edges, and an edge from each condition-form rule's root to the evaluator."""
    plans = dict(compiled.plans)
    conditions = compile_conditions(compiled.strategy, kinds, plans, lambda b: _check_binding(None, b, kinds, plans),
                                    errors)
    graph = compiled.graph
    for name, plan in conditions.plans.items():  # a condition reading a higher-timeframe node sees it aligned
        bindings = tuple(replace(b, timeframe=_source_timeframe(compiled, b.source)) for b in plan.bindings)
        compiled.plans[name] = plan = replace(plan, bindings=bindings)
        graph.add_node(name, kind="condition", plan=plan, yaml_path=plan.yaml_path)
    for name in conditions.plans:
        for binding in compiled.plans[name].bindings:
            edge = graph.get_edge_data(binding.source, name, default={"bindings": []})
            graph.add_edge(binding.source, name, bindings=edge["bindings"] + [binding])
    for action, root in conditions.roots.items():
        edge = graph.get_edge_data(root, EVALUATOR, default={"bindings": []})
        graph.add_edge(root, EVALUATOR, bindings=edge["bindings"] + [Binding(action, root)])


def _add_order_levels(compiled: CompiledStrategy, kinds: dict[str, str], errors: list) -> None:
    """The indicator outputs and candle columns that order prices and exits read, as the evaluator's
    ``levels`` (``Binding("level", source, output)``), with an edge from each node read."""
    graph, levels = compiled.graph, []
    for path, ref in compiled.strategy.order_refs():
        binding = Binding.parse("level", ref)
        problem = _check_binding(None, binding, kinds, compiled.plans)
        if problem:
            errors.append((path, problem))
            continue
        binding = replace(binding, timeframe=_source_timeframe(compiled, binding.source))
        if binding not in levels:
            levels.append(binding)
        if binding.source != CANDLES:
            edge = graph.get_edge_data(binding.source, EVALUATOR, default={"bindings": []})
            if binding not in edge["bindings"]:
                graph.add_edge(binding.source, EVALUATOR, bindings=edge["bindings"] + [binding])
    graph.nodes[EVALUATOR]["levels"] = tuple(levels)


def _check_orders(strategy: Strategy, file: str, errors: list) -> None:
    """Order settings that cannot work (an error) or do nothing (a warning), seen from the whole strategy."""
    if strategy.sizing.method == "risk" and strategy.risk.stop_loss is None and strategy.risk.trailing_stop is None:
        errors.append(("sizing.method", "'risk' sizes each trade by its distance to the stop: give risk.stop_loss "
                                        "or risk.trailing_stop"))
    entries = _entry_actions(strategy)
    for key, action in (("buy", "buy"), ("sell", "sell")):
        if getattr(strategy.orders, key) is not None and action not in entries:
            warn(f"{file}: orders.{key}: no entry rule does '{action}', so this order is never placed")


def _entry_actions(strategy: Strategy) -> set[str]:
    """The actions the entry rules can take (``buy``, ``sell``)."""
    if strategy.rules.form("entry") == "conditions":
        return set(strategy.rules.entry)
    return {action for action in strategy.rules.signal_rules("entry").values() if isinstance(action, str)}


def _check_cycle(graph: nx.DiGraph, errors: list) -> None:
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    names = [u for u, _ in cycle] + [cycle[0][0]]
    first = graph.nodes[names[0]].get("yaml_path", names[0])
    if graph.nodes[names[0]].get("kind") == "condition":
        errors.append((first, f"named conditions refer to each other in a cycle: {' -> '.join(names)}"))
    else:
        errors.append((f"{first}.inputs", f"inputs form a cycle: {' -> '.join(names)}"))


def collected_error(errors: list[tuple[str, str]], *, file: str) -> CompileError:
    path, message = errors[0]
    if len(errors) > 1:
        rest = "; ".join(f"{p}: {m}" for p, m in errors[1:4])
        message += f" (and {len(errors) - 1} more: {rest}{'; ...' if len(errors) > 4 else ''})"
    return CompileError(message, file=file, path=path)


def _plan_node(kind, path, spec, registry, workspace, errors) -> NodePlan | None:
    if spec.component == SCRIPT:
        script = resolve_in_workspace(workspace, spec.path)
        if script is None:
            errors.append((f"{path}.path", f"script '{spec.path}' is outside the workspace {workspace}; "
                                           f"component paths must stay inside it"))
            return None
        if not script.is_file():
            errors.append((f"{path}.path", f"script '{spec.path}' not found in {workspace}"))
            return None
        if isinstance(spec.inputs, dict):
            bindings = [Binding.parse(key, ref) for key, ref in spec.inputs.items()]
        else:
            bindings = [Binding.parse(ref, ref) for ref in spec.inputs]
        return NodePlan(spec.name, kind, path, spec, None, script, dict(spec.params), tuple(bindings))
    if spec.component not in registry:
        same = registry.names(kind)
        errors.append((f"{path}.component", f"unknown {kind} component '{spec.component}' "
                                            f"(known: {', '.join(same)}; or component: script with a path)"
                                            f"{_searched(registry, workspace)}"))
        return None
    component = registry[spec.component]
    if component.kind != kind:
        errors.append((f"{path}.component", f"'{spec.component}' is a {component.kind} component, not "
                                            f"{'an' if kind == 'indicator' else 'a'} {kind}; list it under "
                                            f"{component.kind}s"))
        return None
    try:
        params = component.validate_params(spec.params)
    except ValueError as exc:
        for param, message in exc.args[0]:
            errors.append((f"{path}.params.{param}", message))
        return None
    bindings = _bind_inputs(path, spec, component, errors)
    if bindings is None:
        return None
    return NodePlan(spec.name, kind, path, spec, component, None, params, tuple(bindings))


def _searched(registry: Registry, workspace: Path) -> str:
    """For an unknown component's message: where ``components/`` was looked for, when no folder was read."""
    if registry.folders:
        return ""
    return (f"; no workspace components: no components/ folder in {workspace} or the folders above it "
            f"(a workspace is the nearest folder holding one)")


def _add_references(compiled: CompiledStrategy, kinds: dict[str, str], first_paths: dict[str, str], errors) -> None:
    """One ``reference`` node per ``references`` entry: its file (checked to exist) and candle period."""
    strategy = compiled.strategy
    for name, reference in strategy.references.items():
        path = f"references.{name}"
        if name in RESERVED:
            errors.append((path, f"'{name}' is reserved; pick another name"))
            continue
        file = Path(reference.path)
        file = file if file.is_absolute() else compiled.workspace / file
        if not file.is_file():
            errors.append((f"{path}.path", f"file '{reference.path}' not found (relative paths start at the "
                                           f"workspace {compiled.workspace})"))
            continue
        period = parse_timeframe(reference.timeframe or strategy.timeframe)
        compiled.graph.add_node(name, kind="reference", label=reference.path, file=file, format=reference.format,
                                timeframe=(period, 0), yaml_path=path)
        kinds[name] = "reference"
        first_paths[name] = path


def _source_timeframe(compiled: CompiledStrategy, source: str) -> tuple[int, int] | None:
    if source in compiled.plans:
        return compiled.plans[source].timeframe
    if compiled.graph.nodes.get(source, {}).get("kind") == "reference":
        return compiled.graph.nodes[source]["timeframe"]
    return None


def _with_timeframe(plan: NodePlan, base_text: str, errors) -> NodePlan | None:
    """``plan`` with its higher timeframe as (period, offset) seconds, or None after an error at its YAML path."""
    spec = plan.spec
    if spec.timeframe is None:
        return plan
    base, period = parse_timeframe(base_text), parse_timeframe(spec.timeframe)
    offset = parse_timeframe(spec.timeframe_offset) if spec.timeframe_offset else 0
    if period < base:
        errors.append((f"{plan.yaml_path}.timeframe", f"timeframe {spec.timeframe} is finer than the data's "
                                                      f"{base_text}; a node may only use the data's or a higher one"))
        return None
    if period % base:
        errors.append((f"{plan.yaml_path}.timeframe", f"timeframe {spec.timeframe} is not a whole multiple of "
                                                      f"the data's {base_text}"))
        return None
    if offset % base or offset >= period:
        errors.append((f"{plan.yaml_path}.timeframe_offset", f"offset {spec.timeframe_offset} must be a multiple "
                                                             f"of the data's {base_text} less than {spec.timeframe}"))
        return None
    return plan if period == base else replace(plan, timeframe=(period, offset))


def _timeframe_text(plan: NodePlan | None, timeframe: tuple[int, int] | None) -> str:
    if timeframe is None:
        return "the data's timeframe"
    offset = f" offset {plan.spec.timeframe_offset}" if plan and plan.spec.timeframe_offset else ""
    return f"timeframe {plan.spec.timeframe if plan else timeframe[0]}{offset}"


def _check_timeframes(plan: NodePlan, binding: Binding, plans: dict[str, NodePlan]) -> str | None:
    """A higher-timeframe node reads candle columns or nodes on its own timeframe (and offset)."""
    if plan.timeframe is None or binding.source == CANDLES:
        return None
    if binding.source not in plans:
        return (f"'{binding.source}' is a reference; a higher-timeframe node reads candle columns or nodes "
                f"on its own timeframe" if binding.timeframe is not None else None)
    if binding.timeframe == plan.timeframe:
        return None
    source = _timeframe_text(plans.get(binding.source), binding.timeframe)
    return (f"'{binding.source}' is on {source}, this node on {_timeframe_text(plan, plan.timeframe)}; "
            f"a higher-timeframe node reads candle columns or nodes on its own timeframe")


def _bind_inputs(path, spec, component, errors) -> list[Binding] | None:
    given: dict[str, str] = {}
    if isinstance(spec.inputs, dict):
        for key, ref in spec.inputs.items():
            if key not in component.inputs:
                errors.append((f"{path}.inputs.{key}", f"{component.name} has no input '{key}' "
                                                       f"(inputs: {', '.join(component.inputs)})"))
                return None
            given[key] = ref
    else:
        if len(spec.inputs) > len(component.inputs):
            errors.append((f"{path}.inputs", f"{component.name} takes {len(component.inputs)} input(s) "
                                             f"({', '.join(component.inputs)}), got {len(spec.inputs)}"))
            return None
        given = dict(zip(component.inputs, spec.inputs))
    bindings = []
    for name in component.inputs:
        if name in given:
            bindings.append(Binding.parse(name, given[name]))
        elif name in CANDLE_COLUMNS:
            bindings.append(Binding(name, CANDLES, name))
        else:
            errors.append((f"{path}.inputs", f"input '{name}' of {component.name} is not bound; "
                                             f"list it in inputs (inputs: {', '.join(component.inputs)})"))
            return None
    return bindings



def _input_path(plan: NodePlan, i: int, binding: Binding) -> str:
    if isinstance(plan.spec.inputs, dict):
        return f"{plan.yaml_path}.inputs.{binding.name}"
    if i < len(plan.spec.inputs):
        return f"{plan.yaml_path}.inputs[{i}]"
    return f"{plan.yaml_path}.inputs"


def _check_binding(plan: NodePlan, binding: Binding, kinds: dict[str, str], plans: dict[str, NodePlan]) -> str | None:
    if binding.source == CANDLES:
        return None
    if binding.source not in kinds:
        return f"unknown indicator '{binding.ref}'"
    if kinds[binding.source] == "reference":
        if binding.output not in CANDLE_COLUMNS:
            return (f"reference '{binding.source}' has the candle columns {', '.join(CANDLE_COLUMNS)}; "
                    f"write e.g. '{binding.source}.close'")
        return None
    if kinds[binding.source] in ("signal", "condition"):
        return f"'{binding.source}' is a {kinds[binding.source]}; inputs must be indicators or candle columns"
    source = plans.get(binding.source)
    if source is None:  # its own definition failed; that error is reported already
        return None
    outputs = source.outputs
    if binding.output and outputs is None and source.component is not None:
        return f"indicator '{binding.source}' has one output; write '{binding.source}', not '{binding.ref}'"
    if binding.output and outputs and binding.output not in outputs:
        return f"indicator '{binding.source}' has no output '{binding.output}' (outputs: {', '.join(outputs)})"
    if not binding.output and outputs:
        return (f"indicator '{binding.source}' has several outputs; name one, e.g. "
                f"'{binding.source}.{outputs[0]}' (outputs: {', '.join(outputs)})")
    return None


def _check_rules(strategy: Strategy, plans: dict[str, NodePlan], kinds: dict[str, str], errors) -> None:
    signal_plans = [p for p in plans.values() if p.kind == "signal"]
    known_types: set[str] = set()
    # a signal whose own definition failed (reported already) emits types we cannot know: don't guess
    all_declared = all(name in plans for name, kind in kinds.items() if kind == "signal")
    for plan in signal_plans:
        declared = plan.component.signal_types if plan.component else None
        if declared is None:
            all_declared = False
        else:
            known_types.update(declared)
    for section in ("entry", "exit"):
        check_rule_form(strategy, section, errors)
        for key, action in strategy.rules.signal_rules(section).items():
            path = f"rules.{section}.{key}"
            if action not in SECTION_ACTIONS[section]:
                *first, last = (f"'{a}'" for a in SECTION_ACTIONS[section])
                choices = f"{', '.join(first)} or {last}"
                errors.append((path, f"Input should be {choices}, got {action!r}"))
            node, dot, signal_type = key.rpartition(".")
            if dot:
                if kinds.get(node) != "signal":
                    errors.append((path, f"'{node}' is not a signal node (signals: "
                                         f"{', '.join(p.name for p in signal_plans) or 'none'})"))
                    continue
                plan = plans.get(node)
                declared = plan.component.signal_types if plan and plan.component else None
                if declared is not None and signal_type not in declared:
                    errors.append((path, f"signal '{node}' never emits '{signal_type}' "
                                         f"(it emits: {', '.join(declared)})"))
            elif all_declared and key not in known_types:
                errors.append((path, f"no signal emits '{key}' (emitted: {', '.join(sorted(known_types)) or 'none'})"))
    for key, fraction in strategy.rules.exit_fractions().items():
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            errors.append((f"rules.exit.{key}", f"a partial exit closes a fraction in (0, 1] of each trade, "
                                                f"got {fraction!r}"))
    if not strategy.rules.entry:
        errors.append(("rules.entry", "no entry rule: map a signal type to buy or sell"))
