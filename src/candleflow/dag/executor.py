"""Execute a compiled strategy graph on Dask, memoized by content hash.

Algorithm
---------
1. *Key* every node top-down (``node_keys``): ``tokenize(component source hash,
   params, options, upstream keys)``; the candles' key is ``tokenize(candles)``.
2. *Build* a Dask task graph with one task per node, named by its key.  A node
   whose key is already in the :class:`~candleflow.dag.cache.NodeCache` enters the
   graph as its stored value (a cache hit) instead of a task.
3. *Run* it with Dask's threaded scheduler (independent nodes in parallel) or the
   synchronous one, asking for every node's key.  Each task times itself,
   stores its output in the cache and reports a :class:`NodeStats`.

State: the per-run ``stats`` dict (node -> NodeStats), guarded by a lock because
tasks finish on several threads.  A task computes a whole series, never one
candle, so scheduler overhead (~200 us a task) stays negligible.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import pandas as pd
from dask.base import tokenize

from candleflow.dag.cache import NodeCache
from candleflow.dag.compiler import CANDLES, EVALUATOR, CompiledStrategy
from candleflow.errors import CandleflowError
from candleflow.nodes.compute import run_node

Scheduler = Literal["threads", "sync"]
_KEY_VERSION = "candleflow-node-v1"


@dataclass
class NodeStats:
    """What happened to one node in one run (drawn on the annotated graph)."""

    name: str
    kind: str
    key: str
    cache: Literal["hit", "miss", "off"] = "miss"
    status: Literal["ok", "failed", "skipped", "replayed"] = "skipped"
    seconds: float = 0.0
    signals: int | None = None
    error: str | None = None


@dataclass
class ExecutionResult:
    values: dict[str, Any]
    stats: dict[str, NodeStats] = field(default_factory=dict)


def evaluator_settings(compiled: CompiledStrategy) -> tuple:
    s = compiled.strategy
    return (s.rules.model_dump(), s.execution.model_dump(), s.sizing.model_dump(), s.risk.model_dump(),
            s.initial_cash)


def node_keys(compiled: CompiledStrategy, candles_key: str, *, isolation: str | None = None) -> dict[str, str]:
    """Content-hash key of every node, in topological order.

    A script node run in ``process`` isolation (its own ``isolation`` or the
    run's ``isolation``) gets a key of its own: a strict run never reuses the
    output of a warm one (whose stateful scripts may differ).
    """
    from candleflow.nodes.compute import script_isolation
    from candleflow.nodes.evaluator import EVALUATOR_VERSION

    keys = {CANDLES: candles_key}
    strategy = compiled.strategy
    for name in compiled.order():
        if name == CANDLES:
            continue
        upstream = sorted((p, keys[p]) for p in compiled.graph.predecessors(name))
        if name == EVALUATOR:
            token = tokenize(_KEY_VERSION, EVALUATOR_VERSION, evaluator_settings(compiled), upstream)
        else:
            plan = compiled.plans[name]
            source = plan.script.read_bytes() if plan.script else plan.component.source_hash
            strict = ("process",) if plan.script and script_isolation(plan, isolation) == "process" else ()
            token = tokenize(_KEY_VERSION, plan.kind, source, plan.params, plan.bindings,
                             plan.spec.lookback, strategy.symbol, strategy.timeframe, upstream, *strict)
        keys[name] = f"{name}-{token}"
    return keys


def execute(compiled: CompiledStrategy, candles: pd.DataFrame, *, cache: NodeCache | None = None,
            scheduler: Scheduler = "threads", num_workers: int | None = None,
            on_node_done: Callable[[NodeStats], None] | None = None,
            progress: Callable[[str, int], None] | None = None,
            script_options: dict | None = None) -> ExecutionResult:
    """Run every node of ``compiled`` on ``candles``; return outputs and per-node stats."""
    from candleflow.nodes.evaluator import evaluate

    candles_key = f"candles-{tokenize(candles)}"
    keys = node_keys(compiled, candles_key, isolation=(script_options or {}).get("isolation"))
    graph = compiled.graph
    stats = {name: NodeStats(name, graph.nodes[name]["kind"], keys[name], cache="off" if cache is None else "miss")
             for name in compiled.order() if name != CANDLES}
    lock = threading.Lock()
    strategy = compiled.strategy

    def finish(name: str, **changes) -> None:
        with lock:
            for attr, value in changes.items():
                setattr(stats[name], attr, value)
        if on_node_done:
            on_node_done(stats[name])

    def task(name: str, candle_data: pd.DataFrame, *upstream_values: Any) -> Any:
        upstream = dict(zip(sorted(graph.predecessors(name)), upstream_values))
        started = time.perf_counter()
        try:
            if name == EVALUATOR:
                value = evaluate(strategy, candle_data, upstream)
            else:
                ticker = (lambda n: progress(name, n)) if progress else None
                value = run_node(compiled.plans[name], candle_data, upstream, symbol=strategy.symbol,
                                 timeframe=strategy.timeframe, progress=ticker, script_options=script_options)
        except CandleflowError as exc:
            if name in compiled.plans:  # say which strategy file and YAML entry the failing node is
                exc.file = exc.file or compiled.file
                exc.path = exc.path or compiled.plans[name].yaml_path
            finish(name, status="failed", seconds=time.perf_counter() - started, error=str(exc))
            raise
        except BaseException as exc:
            finish(name, status="failed", seconds=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
            raise
        if cache is not None:
            cache.put(keys[name], value, kind=graph.nodes[name]["kind"])
        finish(name, status="ok", seconds=time.perf_counter() - started, signals=_count_signals(name, graph, value))
        return value

    dsk: dict[str, Any] = {candles_key: candles}
    for name in stats:
        hit = cache.get(keys[name], None, kind=graph.nodes[name]["kind"]) if cache is not None else None
        if hit is not None:
            dsk[keys[name]] = hit
            finish(name, cache="hit", status="ok", signals=_count_signals(name, graph, hit))
        else:
            dsk[keys[name]] = (task, name, candles_key, *(keys[p] for p in sorted(graph.predecessors(name))))
    wanted = [keys[name] for name in stats]
    if scheduler == "sync":
        import dask

        results = dask.get(dsk, wanted)
    else:
        from dask.threaded import get as threaded_get

        results = threaded_get(dsk, wanted, num_workers=num_workers)
    return ExecutionResult(values=dict(zip(stats, results)), stats=stats)


def _count_signals(name: str, graph, value: Any) -> int | None:
    if graph.nodes[name]["kind"] == "signal":
        return int(len(value))
    if name == EVALUATOR:
        return int(len(value.trades))
    return None
