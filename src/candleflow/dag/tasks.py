"""What the graph's Dask tasks run: one node's whole series, or one evaluator.

Every task is a module-level function, so a task can run in this process
(threads, sync), in a process pool or on a ``distributed`` worker alike.  A
task's static part (the node plan, the strategy, options) travels as one
:class:`Static` argument: in this process it is passed as it is, and when a task
leaves the process it is pickled with cloudpickle, which honours
``register_pickle_by_value``, so workspace components (modules no worker can
import) travel by value whatever serializer the scheduler would pick.  Its data
(candles, upstream outputs) arrive as Dask dependencies.

Each task returns an :class:`Output`: the value and the seconds the task took,
measured where it ran.  A failing task names its strategy file and YAML entry
once, here, and marks the exception with the failing node (``exc.node``).  In a
*tolerant* graph (a sweep on a local scheduler) a failure is returned instead, as
a :class:`Failed` value that every task downstream passes on, so one failing
combination does not stop the others.
"""

from __future__ import annotations

import pickle
import time
from typing import Any, Callable, NamedTuple

import pandas as pd

from candleflow.errors import CandleflowError
from candleflow.config.models import parse_timeframe
from candleflow.nodes.compute import resolve_input, run_node
from candleflow.nodes.evaluator import EvaluatorInputs, evaluate
from candleflow.vocab import EVALUATOR, NodePlan, ScriptOptions


class Output(NamedTuple):
    """A task's result: the node's value and the wall seconds it took (0 for a cache hit or a recorded value)."""

    value: Any
    seconds: float = 0.0


class Failed(NamedTuple):
    """A tolerant task's failure, passed downstream in place of a value: the one-line message."""

    message: str


class Static:
    """A task's static arguments: as they are in this process, by cloudpickle when pickled.

    >>> Static(1, "x").values
    (1, 'x')
    """

    __slots__ = ("values",)

    def __init__(self, *values: Any) -> None:
        self.values = values

    def __reduce__(self):
        import cloudpickle  # a dask dependency; only needed when a task leaves this process

        return _unpack, (cloudpickle.dumps(self.values),)


def _unpack(data: bytes) -> Static:
    return Static(*pickle.loads(data))


class NodeContext(NamedTuple):
    """What a node task needs besides its plan: where it comes from and how scripts run."""

    symbol: str
    timeframe: str
    file: str
    script_options: ScriptOptions | None = None
    progress: Callable[[str, int], None] | None = None  # only ever set for in-process schedulers
    tolerant: bool = False  # return a Failed value instead of raising


def node_task(static: Static, candles: pd.DataFrame, *upstream: Output) -> Output:
    """Compute one indicator or signal node; ``static`` holds ``(plan, NodeContext, upstream names)``."""
    plan, context, names = static.values
    failed = _first_failure(upstream)
    if failed is not None:
        return failed
    started = time.perf_counter()
    ticker = (lambda n: context.progress(plan.name, n)) if context.progress else None
    try:
        with _named(plan, context.file):
            value = run_node(plan, candles, dict(zip(names, (u.value for u in upstream))), symbol=context.symbol,
                             timeframe=context.timeframe, progress=ticker, script_options=context.script_options)
    except Exception as exc:
        if not context.tolerant:
            raise
        return Output(Failed(error_text(exc)), time.perf_counter() - started)
    return Output(value, time.perf_counter() - started)


def evaluator_task(static: Static, candles: pd.DataFrame, *upstream: Output) -> Output:
    """Run the evaluator; ``static`` holds ``(strategy, upstream names, metrics_only, tolerant, bindings)``.

    ``bindings`` say what each upstream node is to the evaluator: ``signals`` (a signal node's
    events), an action (the condition deciding a condition-form action) or ``level`` (an indicator
    output or candle column that order prices and exits read; aligned here to the candles).

    With ``metrics_only`` (sweeps) the task returns just the metrics dict, small to ship back.
    """
    strategy, names, metrics_only, tolerant, bindings = static.values
    failed = _first_failure(upstream)
    if failed is not None:
        return failed
    started = time.perf_counter()
    try:
        values = dict(zip(names, (u.value for u in upstream)))
        simulation = evaluate(strategy, candles, _evaluator_inputs(strategy, candles, values, bindings))
    except BaseException as exc:
        if tolerant and isinstance(exc, Exception):
            return Output(Failed(error_text(exc)), time.perf_counter() - started)
        _mark(exc, EVALUATOR)
        raise
    value = dict(simulation.metrics) if metrics_only else simulation
    return Output(value, time.perf_counter() - started)


def _evaluator_inputs(strategy, candles: pd.DataFrame, values: dict[str, Any], bindings) -> EvaluatorInputs:
    base = parse_timeframe(strategy.timeframe)
    signals = {b.source: values[b.source] for b in bindings if b.name == "signals"}
    conditions = {b.name: values[b.source] for b in bindings if b.name not in ("signals", "level")}
    levels = {b.ref: resolve_input(b, candles, values, base=base).to_numpy(dtype="float64")
              for b in bindings if b.name == "level"}
    return EvaluatorInputs(signals, conditions, levels)


class _named:
    """Context manager: an error raised inside names the node's file and YAML entry, and marks the node."""

    def __init__(self, plan: NodePlan, file: str) -> None:
        self.plan, self.file = plan, file

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, CandleflowError):
            exc.file = exc.file or self.file
            exc.path = exc.path or self.plan.yaml_path
        if exc is not None:
            _mark(exc, self.plan.name)
        return False


def _first_failure(upstream: tuple[Output, ...]) -> Output | None:
    return next((u for u in upstream if isinstance(u.value, Failed)), None)


def error_text(exc: BaseException) -> str:
    """The one-line message of a failure: a user error as it reads, anything else with its type."""
    text = str(exc) if isinstance(exc, CandleflowError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _mark(exc: BaseException, node: str) -> None:
    try:
        if getattr(exc, "node", None) is None:
            exc.node = node
    except AttributeError:  # an exception type without a __dict__
        pass
