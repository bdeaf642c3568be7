"""The one task builder: a compiled strategy becomes a Dask graph keyed by content hash.

Algorithm
---------
1. *Key* every node top-down (:func:`node_keys`): ``tokenize`` of what
   determines its output -- the component's source hash (or the script file's
   bytes), params, bindings, options, its timeframe and offset, the upstream
   keys, down to the reference candles' content keys (a reference file is loaded
   here, :func:`reference_data`), and the candles' key, which every key holds
   itself since every task reads the candles (a node's values are indexed by them,
   even one that reads only a reference; the evaluator fills at their prices); the evaluator's key
   includes :func:`evaluator_code_hash`, the hash of the source of the code it
   runs, so an upgrade can never reuse a stale result.  Equal keys mean equal outputs.
2. *Emit* one task per node, named by its key: ``(node_task, Static(plan, context,
   upstream names), candles_key, *upstream keys)``; the evaluator's task reads every
   signal node; reference candles enter as values.  Recorded signal frames (replay) enter as values instead of tasks,
   and the indicators nothing then needs are left out.

The result, a :class:`Build`, is a plain dict graph without the candles
(``candles_key`` names them; the caller puts the frame, or a task loading it, there).
``run`` substitutes cache hits and hands it to a ``get`` (:mod:`.get`); a sweep
merges the builds of all its combinations into one graph, where equal keys
deduplicate shared nodes; replay is a build with recorded signals.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd
from dask.base import tokenize

from candleflow.config import models
from candleflow.dag.compiler import CompiledStrategy
from candleflow.dag.tasks import NodeContext, Output, Static, evaluator_task, node_task
from candleflow.data import load_candles
from candleflow.nodes import evaluator
from candleflow.nodes.compute import script_isolation
from candleflow.portfolio import kernel, metrics, rules, simulate
from candleflow.vocab import CANDLES, EVALUATOR, ScriptOptions, source_hash

KEY_VERSION = "candleflow-node-v2"
METRICS = "metrics"  # the key prefix of an evaluator task that returns metrics only


@functools.lru_cache(maxsize=1)
def evaluator_code_hash() -> str:
    """Hash of the source of every module the evaluator runs (rules, simulation, metrics, settings)."""
    return source_hash(evaluator, rules, kernel, simulate, metrics, models)


def evaluator_settings(compiled: CompiledStrategy) -> tuple:
    s = compiled.strategy
    return (s.rules.model_dump(), s.execution.model_dump(), s.orders.model_dump(), s.sizing.model_dump(),
            s.risk.model_dump(), s.initial_cash, compiled.graph.nodes[EVALUATOR].get("levels", ()))


def node_keys(compiled: CompiledStrategy, candles_key: str, *, fixed: Mapping[str, str] | None = None,
              isolation: str | None = None) -> dict[str, str]:
    """Content-hash key of every node, in topological order; ``fixed`` keys (replayed nodes) are taken as given.

    A script node run in ``process`` isolation (its own ``isolation`` or the run's ``isolation``)
    gets a key of its own: a strict run never reuses the output of a warm one (whose stateful
    scripts may differ).
    """
    keys = {CANDLES: candles_key, **{name: key for name, (key, _) in reference_data(compiled).items()},
            **(fixed or {})}
    strategy = compiled.strategy
    for name in compiled.order():
        if name in keys:
            continue
        upstream = sorted((p, keys[p]) for p in compiled.graph.predecessors(name) if p in keys)
        upstream.append((CANDLES, candles_key))  # every task reads them, whatever its graph edges
        if name == EVALUATOR:
            token = tokenize(KEY_VERSION, evaluator_code_hash(), evaluator_settings(compiled), upstream)
        else:
            plan = compiled.plans[name]
            source = plan.script.read_bytes() if plan.script else plan.component.source_hash
            strict = ("process",) if plan.script and script_isolation(plan, isolation) == "process" else ()
            token = tokenize(KEY_VERSION, plan.kind, source, plan.params, plan.bindings,
                             plan.spec.lookback, strategy.symbol, strategy.timeframe, plan.timeframe, upstream,
                             *strict)
        keys[name] = f"{name}-{token}"
    return keys


def reference_data(compiled: CompiledStrategy) -> dict[str, tuple[str, pd.DataFrame]]:
    """Each reference node's content key and candles, loaded and checked by the candle loader."""
    graph = compiled.graph
    return {name: _load_reference(graph.nodes[name]["file"], graph.nodes[name]["format"], name)
            for name in graph if graph.nodes[name]["kind"] == "reference"}


@functools.lru_cache(maxsize=16)
def _load_reference_at(file: str, format: str | None, name: str, stamp: tuple[int, int]) -> tuple[str, pd.DataFrame]:
    frame = load_candles(file, format=format)
    return f"{name}-{tokenize(frame)}", frame


def _load_reference(file, format: str | None, name: str) -> tuple[str, pd.DataFrame]:
    stat = file.stat()  # a changed file (size or time) is read again
    return _load_reference_at(str(file), format, name, (stat.st_size, stat.st_mtime_ns))


@dataclass
class Build:
    """A compiled strategy as Dask work: ``dsk`` (tasks and recorded values) and each node's key.

    ``nodes`` lists the graph's nodes in ``dsk`` in topological order; nodes left out
    (indicators nothing needs in a replay) are absent from ``keys``.
    """

    dsk: dict[str, Any]
    keys: dict[str, str]
    nodes: list[str]
    kinds: dict[str, str] = field(default_factory=dict)  # node -> kind

    @property
    def evaluator_key(self) -> str:
        return self.keys[EVALUATOR]


def build(compiled: CompiledStrategy, candles_key: str, *, replay: Mapping[str, pd.DataFrame] | None = None,
          metrics_only: bool = False, script_options: ScriptOptions | None = None,
          progress: Callable[[str, int], None] | None = None, tolerant: bool = False) -> Build:
    """The Dask graph of ``compiled`` on the candles at ``candles_key`` (see the module docstring).

    ``replay`` maps signal nodes to recorded signal frames that replace them;
    ``metrics_only`` makes the evaluator return only its metrics, under a
    ``metrics-...`` key; ``progress(node, candles_done)`` is for in-process schedulers only;
    ``tolerant`` tasks return a :class:`~candleflow.dag.tasks.Failed` value instead of raising.
    """
    graph = compiled.graph
    fixed = {name: f"{name}-replay-{tokenize(frame)}" for name, frame in (replay or {}).items()}
    keys = node_keys(compiled, candles_key, fixed=fixed, isolation=script_options.isolation if script_options else None)
    if metrics_only:
        keys[EVALUATOR] = keys[EVALUATOR].replace(EVALUATOR, METRICS, 1)
    strategy = compiled.strategy
    context = NodeContext(strategy.symbol, strategy.timeframe, compiled.file, script_options, progress, tolerant)
    inputs = sorted(p for p in graph.predecessors(EVALUATOR))
    bindings = tuple(b for p in inputs for b in graph.edges[p, EVALUATOR]["bindings"] if b.name != "level")
    bindings += graph.nodes[EVALUATOR].get("levels", ())
    needed = _needed(compiled, set(fixed))
    dsk: dict[str, Any] = {}
    nodes = []
    references = reference_data(compiled)
    for name in compiled.order():
        if name in references:
            dsk[keys[name]] = Output(references[name][1])
        if name == CANDLES or name in references or name not in needed:
            continue
        nodes.append(name)
        if name in fixed:
            dsk[keys[name]] = Output(replay[name])
        elif name == EVALUATOR:
            dsk[keys[name]] = (evaluator_task, Static(strategy, inputs, metrics_only, tolerant, bindings),
                               candles_key, *(keys[s] for s in inputs))
        else:
            upstream = sorted(p for p in graph.predecessors(name) if p != CANDLES)
            dsk[keys[name]] = (node_task, Static(compiled.plans[name], context, upstream), candles_key,
                               *(keys[p] for p in upstream))
    kept = {name: keys[name] for name in nodes}
    return Build(dsk, kept, nodes, {name: graph.nodes[name]["kind"] for name in nodes})


def _needed(compiled: CompiledStrategy, replayed: set[str]) -> set[str]:
    """Every node, or, in a replay, the evaluator and what it needs when replayed nodes are not computed."""
    if not replayed:
        return {name for name, kind in compiled.graph.nodes(data="kind") if kind not in (CANDLES, "reference")}
    needed, stack = set(), [EVALUATOR]
    while stack:
        name = stack.pop()
        if name in needed or name == CANDLES or compiled.graph.nodes[name]["kind"] == "reference":
            continue
        needed.add(name)
        if name not in replayed:
            stack.extend(compiled.graph.predecessors(name))
    return needed
