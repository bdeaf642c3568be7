"""Execute a compiled strategy graph on Dask, memoized by content hash.

Algorithm
---------
1. *Build* the graph's Dask work (:func:`~candleflow.dag.build.build`): one
   task per node, named by its content key, the candles under their own key.
2. *Substitute* cache hits: a node whose key is in the
   :class:`~candleflow.dag.cache.NodeCache` enters the graph as its stored
   value instead of a task.
3. *Get* every node's key from the chosen backend (:func:`~candleflow.dag.get.get`:
   threads, sync, processes or a distributed scheduler).  As each task finishes,
   in the calling thread, its :class:`NodeStats` is filled in and its output
   stored in the cache, so a later failure or Ctrl-C keeps what finished.

State: the per-run ``stats`` dict (node -> NodeStats), written only from the
calling thread.  A task computes a whole series, never one candle, so scheduler
overhead (~200 us a task threaded, ~1 ms distributed) stays negligible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd
from dask.base import tokenize

from candleflow.dag.build import build, evaluator_settings, node_keys
from candleflow.dag.cache import NodeCache
from candleflow.dag.compiler import CompiledStrategy
from candleflow.dag.get import check_scheduler, get, in_process
from candleflow.dag.tasks import Output, error_text
from candleflow.vocab import EVALUATOR, NodeStats, ScriptOptions

Scheduler = str  # "threads" | "sync" | "processes" | "tcp://HOST:PORT"


@dataclass
class ExecutionResult:
    values: dict[str, Any]
    stats: dict[str, NodeStats] = field(default_factory=dict)


def execute(compiled: CompiledStrategy, candles: pd.DataFrame, *, cache: NodeCache | None = None,
            scheduler: Scheduler = "threads", num_workers: int | None = None,
            on_node_done: Callable[[NodeStats], None] | None = None,
            progress: Callable[[str, int], None] | None = None,
            script_options: ScriptOptions | None = None,
            replay: Mapping[str, pd.DataFrame] | None = None) -> ExecutionResult:
    """Run every node of ``compiled`` on ``candles``; return outputs and per-node stats.

    ``replay`` (signal node -> recorded signal frame) replaces those nodes; then
    nothing is cached and the indicators no remaining node needs are skipped.
    """
    check_scheduler(scheduler)
    if replay is not None:
        cache = None
    candles_key = f"candles-{tokenize(candles)}"
    work = build(compiled, candles_key, replay=replay, script_options=script_options,
                 progress=progress if in_process(scheduler) else None)
    by_key = {key: name for name, key in work.keys.items()}
    cache_state = "off" if cache is None else "miss"
    stats = {name: NodeStats(name, compiled.graph.nodes[name]["kind"], work.keys.get(name, "-"), cache=cache_state)
             for name in compiled.order() if name in compiled.plans or name == EVALUATOR}

    def done(name: str, output: Output, **changes: Any) -> None:
        stat = stats[name]
        stat.seconds, stat.signals = output.seconds, _count(stat.kind, output.value)
        for attr, value in {"status": "ok", **changes}.items():
            setattr(stat, attr, value)
        if on_node_done:
            on_node_done(stat)

    settled: set[str] = set()  # cache hits and replayed nodes: known before the run, not reported again

    def on_result(key: str, output: Output) -> None:
        name = by_key.get(key)
        if name is None or name in settled:
            return
        if cache is not None:
            cache.put(key, output.value, kind=stats[name].kind)
        done(name, output)

    dsk: dict[str, Any] = {candles_key: candles, **work.dsk}
    for name in work.nodes:
        key = work.keys[name]
        if replay is not None and name in replay:
            done(name, dsk[key], status="replayed")
            settled.add(name)
            continue
        hit = cache.get(key, None, kind=stats[name].kind) if cache is not None else None
        if hit is not None:
            dsk[key] = Output(hit)
            done(name, dsk[key], cache="hit")
            settled.add(name)
    wanted = [work.keys[name] for name in work.nodes]
    try:
        outputs = get(dsk, wanted, scheduler=scheduler, num_workers=num_workers, on_result=on_result)
    except BaseException as exc:
        failed = getattr(exc, "node", None)
        if failed in stats:
            stats[failed].status = "failed"
            stats[failed].error = error_text(exc)
            if on_node_done:
                on_node_done(stats[failed])
        raise
    return ExecutionResult(values={name: o.value for name, o in zip(work.nodes, outputs)}, stats=stats)


def _count(kind: str, value: Any) -> int | None:
    """Signals a signal node emitted, trades the evaluator made; None for other nodes."""
    if kind == "signal":
        return int(len(value))
    if kind == "evaluator":
        return int(len(value.trades))
    return None


__all__ = ["ExecutionResult", "NodeStats", "Scheduler", "evaluator_settings", "execute", "node_keys"]
