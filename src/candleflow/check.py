"""The look-ahead check (``candleflow check``): does any node's value at a candle change when later candles come?

Algorithm
---------
1. *Full runs.*  Every indicator, signal and condition node runs on all ``n`` candles, twice (the graph of
   :func:`~candleflow.dag.build.build`, without the evaluator).  A node whose two runs differ is reported as not
   deterministic.  Script nodes run whole once; their second run is a *window* (step 3) at the last candle.
2. *Cut points* ``c`` (:func:`cut_points`): ``cuts`` random ones (fixed ``seed``); for up to ``event_cuts``
   candles with a signal event or a true action condition (spread over the data), the event's candle and the
   one before it; and for each higher timeframe (of a node or a reference), the :data:`HIGHER_CUTS` candles
   before the last one of a higher candle, where a candle that saw it before it closed would differ.  Every
   cut lies in ``SCRIPT_WINDOW..n-2`` (``0..n-2`` on short data); at most ``cuts + 2 event_cuts`` + 3 per
   higher timeframe.
3. *Prefix runs.*  For each cut the graph runs again on candles ``0..c`` alone and every node's output on those
   candles is compared with the full run's: indicators as the candles see them (a higher timeframe's values
   aligned, so a cut inside a day tests what each hour sees of the daily candles), signal frames event by event.
   Reference series are cut too, to the candles closed by candle ``c``'s close.
   Script nodes, slow per candle, are not re-run there (the graph reads their full-run values cut at ``c``);
   instead, at up to :data:`SCRIPT_CUTS` of the cut points (spread over them), each is re-run on its *window*:
   the data cut at ``c``, its inputs (the full run's) cut there, but only candles ``c - SCRIPT_WINDOW + 1..c``
   computed.  A leak reading any later candle shows on the cut's own candle, so a window finds it (candleflow
   hands a script no candle after its current one, so this checks that too); state that depends on how many
   candles a run has may not show.
4. The first difference is raised as a one-line :class:`LookAheadError`: non-determinism first, then the
   cut points in order, and at one cut the first node in topological order (an upstream leak is named, not
   its readers); else a :class:`CheckReport`.

Equality is exact (NaN equals NaN): a causal computation gives a candle the same floats whatever follows it
(pandas' rolling and exponential windows run left to right); the built-in components are checked so.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from dask.base import tokenize

from candleflow.backtest import load_data, prepare
from candleflow.config.models import parse_timeframe
from candleflow.data import resample
from candleflow.dag import EVALUATOR, CompiledStrategy
from candleflow.dag.build import build, reference_data
from candleflow.dag.get import get
from candleflow.dag.tasks import Output
from candleflow.errors import CandleflowError, warn
from candleflow.nodes.compute import base_aligned, node_candles, run_node
from candleflow.vocab import NodePlan, ScriptOptions

CUTS = 8  # random cut points
EVENT_CUTS = 8  # signal events next to which the data is cut (at the event's candle and the one before)
HIGHER_CUTS = 3  # cut points before the last candle of one candle of each higher timeframe
SCRIPT_WINDOW = 20  # candles up to each cut on which a script node is re-run
SCRIPT_CUTS = 8  # cut points (of all) at which script nodes are re-run
SEED = 0
WINDOW_THREADS = 2  # script windows in flight at once


class LookAheadError(CandleflowError):
    """A node's value at a candle changed when later candles were added, or two identical runs differed."""


@dataclass
class NodeCheck:
    """What the check did with one node."""

    name: str
    kind: str
    label: str
    cuts: int
    window: int | None = None  # script nodes: candles re-run up to each cut


@dataclass
class CheckReport:
    """A clean check: the data's length, the cut points and every node checked."""

    file: str
    n_candles: int
    cuts: list[int]
    kinds: dict[str, int]  # how many cut points of each kind
    nodes: list[NodeCheck] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The short table ``candleflow check`` prints."""
        kinds = f" ({', '.join(f'{v} {k}' for k, v in self.kinds.items())})" if self.kinds else ""
        verdict = "no look-ahead found" if self.cuts else "deterministic, look-ahead not checked"
        head = (f"{self.file}: {verdict}: {len(self.nodes)} nodes, {self.n_candles} candles, "
                f"{len(self.cuts)} cut points{kinds}, "
                f"2 full runs equal ({self.seconds:.1f} s)")
        rows = [("node", "kind", "component", "cut points", "result")]
        rows += [(n.name, n.kind, n.label, f"{n.cuts}" + (f" (last {n.window} candles each)" if n.window else ""),
                  "ok") for n in self.nodes]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return [head] + ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4] for row in rows]


def check_strategy(strategy_file: str | Path, *, data: str | Path | pd.DataFrame | None = None,
                   variables: Mapping[str, Any] | None = None, workspace: str | Path | None = None,
                   component_dirs: Sequence[Path] = (), max_bytes: int | None = None, **options: Any) -> CheckReport:
    """Compile ``strategy_file``, load its data (or ``data``) and :func:`check_lookahead` it."""
    compiled, _ = prepare(strategy_file, variables=variables, workspace=workspace, component_dirs=component_dirs)
    return check_lookahead(compiled, load_data(compiled, data, max_bytes=max_bytes), **options)


def check_lookahead(compiled: CompiledStrategy, candles: pd.DataFrame, *, cuts: int = CUTS,
                    event_cuts: int = EVENT_CUTS, seed: int = SEED,
                    script_options: ScriptOptions | None = None) -> CheckReport:
    """Run the check of the module docstring; raise :class:`LookAheadError` on the first difference."""
    started = time.perf_counter()
    runner = _Runner(compiled, candles, script_options)
    n = len(candles)
    full = runner.graph(candles, {})
    again = runner.graph(candles, {name: full[name] for name in runner.scripts})
    points, kinds = cut_points(compiled, full, candles, cuts=cuts, event_cuts=event_cuts, seed=seed)
    if not points:
        warn(f"{compiled.file}: no cut point tried ({n} candles; --cuts and --event-cuts {cuts} and {event_cuts}): "
             f"only two full runs were compared, so look-ahead was not checked")
    script_cuts = _spread(points, SCRIPT_CUTS)
    windows = runner.windows(full, [n - 1, *script_cuts]) if runner.scripts else {}
    runner.raise_first({name: _difference(runner.view(name, full[name], candles),
                                          runner.view(name, again[name], candles), 0, n - 1)
                        for name in runner.nodes if name not in runner.scripts} | windows.get(n - 1, {}), None)
    for cut in points:
        runner.raise_first(runner.prefix_differences(full, cut) | windows.get(cut, {}), cut)
    checks = [NodeCheck(name, compiled.graph.nodes[name]["kind"], compiled.plans[name].label,
                        len(script_cuts) if name in runner.scripts else len(points),
                        SCRIPT_WINDOW if name in runner.scripts else None) for name in runner.nodes]
    return CheckReport(compiled.file, n, points, kinds, checks, time.perf_counter() - started)


def cut_points(compiled: CompiledStrategy, full: dict[str, Any], candles: pd.DataFrame, *, cuts: int,
               event_cuts: int, seed: int) -> tuple[list[int], dict[str, int]]:
    """Sorted distinct cut points, and how many there are of each kind (see the module docstring)."""
    n = len(candles)
    high = n - 2
    low = SCRIPT_WINDOW if high >= 2 * SCRIPT_WINDOW else 0  # past a script's first window, unless data is short
    if high < low:
        return [], {}
    rng = np.random.default_rng(seed)
    random = set(rng.choice(np.arange(low, high + 1), size=min(cuts, high - low + 1), replace=False).tolist())
    bars = sorted({int(b) for b in _event_bars(compiled, full) if low + 1 <= b <= high})
    events = {c for bar in _spread(bars, event_cuts) for c in (bar - 1, bar)} - random
    closing = {c for c in _before_higher_closes(compiled, candles, rng) if low <= c <= high} - random - events
    kinds = {"random": len(random), "next to signal events": len(events),
             "just before a higher-timeframe candle closes": len(closing)}
    return sorted(random | events | closing), {kind: count for kind, count in kinds.items() if count}


def _before_higher_closes(compiled: CompiledStrategy, candles: pd.DataFrame, rng: np.random.Generator) -> set[int]:
    """For each higher timeframe (of a node or a reference): the HIGHER_CUTS candles before the last one of a
    higher candle picked at random in the later half of the data, where a candle seeing it too early would show."""
    base = parse_timeframe(compiled.strategy.timeframe)
    graph = compiled.graph
    periods = {plan.timeframe for plan in compiled.plans.values() if plan.timeframe}
    periods |= {graph.nodes[n]["timeframe"] for n in graph if graph.nodes[n]["kind"] == "reference"
                and graph.nodes[n]["timeframe"][0] > base}
    found: set[int] = set()
    for period, offset in sorted(periods) if HIGHER_CUTS > 0 else ():
        closes = resample.resample(candles, period, offset, base).index + pd.Timedelta(seconds=period)
        half = len(closes) // 2  # in the later half, past most warm-ups; one whose candle before the last is there
        for close in closes[half + rng.permutation(len(closes) - half)]:
            opens = [close - pd.Timedelta(seconds=base * (k + 2)) for k in range(HIGHER_CUTS)]
            if opens[0] in candles.index:
                found |= {int(candles.index.get_loc(t)) for t in opens if t in candles.index}
                break
    return found


def _spread(items: list[int], most: int) -> list[int]:
    """At most ``most`` of the sorted ``items``, evenly spread over them (the first and the last included).

    >>> _spread([1, 2, 3, 4, 5, 6, 7], 3), _spread([1, 2], 5), _spread([1, 2], 0)
    ([1, 4, 7], [1, 2], [])
    """
    if not items or most <= 0:
        return []
    return [items[i] for i in sorted(set(np.linspace(0, len(items) - 1, min(most, len(items))).round().astype(int)))]


def _event_bars(compiled: CompiledStrategy, full: dict[str, Any]) -> list[int]:
    """Candles with a signal event, or on which a condition deciding an action is true."""
    bars: list[int] = []
    for name in compiled.graph.predecessors(EVALUATOR):
        value = full[name]
        if compiled.graph.nodes[name]["kind"] == "signal":
            bars += value["bar"].tolist()
        else:
            bars += np.flatnonzero(np.asarray(value, dtype="float64") > 0.5).tolist()
    return bars


class _Runner:
    """Runs one compiled strategy's nodes on candles or a prefix of them, and compares outputs."""

    def __init__(self, compiled: CompiledStrategy, candles: pd.DataFrame, script_options: ScriptOptions | None):
        self.compiled, self.candles, self.script_options = compiled, candles, script_options
        self.timeframe = compiled.strategy.timeframe
        self.base = parse_timeframe(self.timeframe)
        self.nodes = [name for name in compiled.order() if name in compiled.plans]
        self.scripts = {name for name in self.nodes if compiled.plans[name].script is not None}

    def graph(self, candles: pd.DataFrame, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every node's output on ``candles``, the ``given`` nodes' taken as they are; reference series hold
        only the candles closed by the last candle's close."""
        key = f"candles-{tokenize(candles)}"
        work = build(self.compiled, key, script_options=self.script_options)
        dsk = {key: candles, **work.dsk}
        dsk.update({work.keys[name]: Output(value) for name, value in given.items()})
        closed = candles.index[-1] + pd.Timedelta(seconds=self.base)  # reference candles known by then
        for name, (ref_key, frame) in reference_data(self.compiled).items():
            period = pd.Timedelta(seconds=self.compiled.graph.nodes[name]["timeframe"][0])
            dsk[ref_key] = Output(frame[frame.index + period <= closed])
        values = get(dsk, [work.keys[name] for name in self.nodes], scheduler="threads")
        return {name: output.value for name, output in zip(self.nodes, values)}

    def view(self, name: str, value: Any, candles: pd.DataFrame) -> Any:
        """A node's output as the candles see it (a higher-timeframe indicator aligned to them)."""
        return base_aligned(self.compiled.plans[name], value, candles, self.timeframe)

    def cut(self, name: str, value: Any, prefix: pd.DataFrame) -> Any:
        """The full run's output of ``name`` as a run on ``prefix`` would have it, were it causal."""
        plan, last = self.compiled.plans[name], len(prefix) - 1
        if plan.kind == "signal":
            return value[value["bar"] <= last].reset_index(drop=True)
        rows = len(node_candles(plan, prefix, self.base)) if plan.timeframe else len(prefix)
        return value.iloc[:rows]

    def windows(self, full: dict[str, Any], cuts: list[int]) -> dict[int, dict[str, tuple | None]]:
        """Every script node re-run on the SCRIPT_WINDOW candles up to each cut of the data cut there, fed the
        full run's inputs cut there (jobs run concurrently: the script pool has a worker per core); cut -> node ->
        first difference from the full run."""
        jobs = [(cut, name) for cut in cuts for name in sorted(self.scripts)]
        found: dict[int, dict[str, tuple | None]] = {}
        pool = ThreadPoolExecutor(WINDOW_THREADS, thread_name_prefix="candleflow-check")
        try:
            for (cut, name), difference in zip(jobs, pool.map(lambda job: self._window(job[1], full, job[0]), jobs)):
                found.setdefault(cut, {})[name] = difference
        finally:  # an error or Ctrl-C: drop the windows not started yet
            pool.shutdown(wait=True, cancel_futures=True)
        return found

    def _window(self, name: str, full: dict[str, Any], cut: int) -> tuple | None:
        plan, prefix, lo = self.compiled.plans[name], self.candles.iloc[:cut + 1], max(0, cut - SCRIPT_WINDOW + 1)
        upstream = {p: self.cut(p, full[p], prefix) for p in self.compiled.graph.predecessors(name)
                    if p in self.compiled.plans}
        value = run_node(plan, prefix, upstream, symbol=self.compiled.strategy.symbol, timeframe=self.timeframe,
                         script_options=self.script_options, windows=[(lo, cut + 1)])
        return _difference(self.view(name, full[name], self.candles), self.view(name, value, prefix), lo, cut)

    def prefix_differences(self, full: dict[str, Any], cut: int) -> dict[str, tuple | None]:
        """Run the graph on candles ``0..cut`` (scripts fed the full run's values); each other node's first
        difference from the full run."""
        prefix = self.candles.iloc[:cut + 1]
        part = self.graph(prefix, {name: self.cut(name, full[name], prefix) for name in self.scripts})
        return {name: _difference(self.view(name, full[name], self.candles), self.view(name, part[name], prefix),
                                  0, cut) for name in self.nodes if name not in self.scripts}

    def raise_first(self, found: Mapping[str, tuple | None], cut: int | None) -> None:
        """Raise the difference of the first node, in topological order, that has one."""
        for name in self.nodes:
            if found.get(name) is None:
                continue
            candle, with_future, without = found[name]
            when = f"candle {candle} ({self.candles.index[candle]})"
            text = (f"is not deterministic: {when} is {with_future} in one run, {without} in another" if cut is None
                    else f"looks ahead: {when} is {with_future} with later candles, {without} without (cut at {cut})")
            plan: NodePlan = self.compiled.plans[name]
            raise LookAheadError(text, file=self.compiled.file, path=plan.yaml_path, component=name)


def _difference(full: Any, other: Any, lo: int, hi: int) -> tuple[int, str, str] | None:
    """The first candle in ``lo..hi`` where two outputs of a node differ: (candle, full's value, other's)."""
    if isinstance(full, pd.DataFrame) and "bar" in full.columns and "signal_type" in full.columns:
        return _event_difference(full, other, lo, hi)
    a = np.asarray(full.iloc[lo:hi + 1], dtype="float64").reshape(hi + 1 - lo, -1)
    b = np.asarray(other.iloc[lo:hi + 1], dtype="float64").reshape(hi + 1 - lo, -1)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if same.all():
        return None
    row, column = (int(x[0]) for x in np.nonzero(~same))
    name = f"{full.columns[column]} " if isinstance(full, pd.DataFrame) else ""
    return lo + row, name + _number(a[row, column], b[row, column]), name + _number(b[row, column], a[row, column])


def _number(value: float, other: float) -> str:
    """``value`` as short as it can be while it still reads differently from ``other``."""
    if np.isnan(value):
        return "NaN"
    text, versus = f"{value:.10g}", f"{other:.10g}"
    return text if text != versus else repr(float(value))


def _event_difference(full: pd.DataFrame, other: pd.DataFrame, lo: int, hi: int) -> tuple[int, str, str] | None:
    """The first candle in ``lo..hi`` whose signal events differ, with each side's events."""
    a, b = _events_by_bar(full, lo, hi), _events_by_bar(other, lo, hi)
    for bar in sorted(set(a) | set(b)):
        if a.get(bar) != b.get(bar):
            detail = sorted(x[0] for x in a.get(bar, [])) == sorted(x[0] for x in b.get(bar, []))
            return bar, _events_text(a.get(bar), detail), _events_text(b.get(bar), detail)
    return None


def _events_by_bar(frame: pd.DataFrame, lo: int, hi: int) -> dict[int, list[tuple]]:
    rows = frame[(frame["bar"] >= lo) & (frame["bar"] <= hi)]
    events: dict[int, list[tuple]] = {}
    for bar, kind, strength, metadata in zip(rows["bar"], rows["signal_type"], rows["strength"], rows["metadata"]):
        events.setdefault(int(bar), []).append((str(kind), float(strength), repr(metadata)))
    return {bar: sorted(items) for bar, items in events.items()}


def _events_text(events: list[tuple] | None, detail: bool) -> str:
    if not events:
        return "no signal"
    if detail:  # the same signal types: the strength or metadata differ
        return ", ".join(f"{kind} (strength {strength:g}, metadata {metadata})" for kind, strength, metadata in events)
    return ", ".join(kind for kind, _, _ in events)


__all__ = ["CUTS", "EVENT_CUTS", "HIGHER_CUTS", "SCRIPT_CUTS", "SCRIPT_WINDOW", "CheckReport", "LookAheadError",
           "NodeCheck", "check_lookahead", "check_strategy", "cut_points"]
