"""Plan a sweep as ONE Dask graph whose node tasks are keyed by content hash.

Algorithm
---------
1. *Compile* every combination on the client: render the template (compiled
   once) with its variables, parse and validate, override ``symbol``/``data``
   when the grid lists symbols, compile (one component registry per
   ``components`` list, reused).  A failure here (template line, bad param such
   as ``period: 0``, unreadable data) is that combination's error; nothing is
   submitted for it.
2. *Candles*: each distinct data source is loaded once; its frame enters the
   graph once, as a data task keyed ``candles-<tokenize(frame)>`` (kept in the
   graph, not scattered, so a worker's death loses nothing that cannot be
   recomputed).
3. *Nodes*: the one task builder (:func:`candleflow.dag.build.build`, as for
   ``candleflow run``) turns the combination into tasks keyed by content hash.
   Nodes equal across combinations get equal keys, so merging the builds into
   the one graph dict deduplicates them: each shared indicator is computed once
   per symbol for every combination that needs it.
4. *Evaluator*: one ``metrics-<token>`` task per combination (the evaluator's
   content key), on top of its signal nodes, returns the metrics dict.

Counters of references vs tasks per node kind say how much was shared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from dask.base import tokenize

from candleflow.components.registry import Registry
from candleflow.config.loader import check_variables, parse_strategy, render_template
from candleflow.config.models import Strategy
from candleflow.config.sandbox import bounded_environment
from candleflow.dag.build import build
from candleflow.dag.compiler import CompiledStrategy, compile_strategy, find_workspace
from candleflow.dag.usage import check_data
from candleflow.data import load_source
from candleflow.errors import CandleflowError, ConfigError, check_no_nul
from candleflow.sweep.grid import Combination
from candleflow.vocab import CANDLES


@dataclass
class PlannedCombination:
    """One combination as planned: its metrics task key, or the error that kept it from the graph."""

    combination: Combination
    symbol: str | None
    key: str | None = None
    error: str | None = None


@dataclass
class SweepPlan:
    graph: dict[str, Any]
    combinations: list[PlannedCombination]
    references: Counter = field(default_factory=Counter)  # node kind -> uses by combinations
    tasks: Counter = field(default_factory=Counter)  # node kind -> distinct tasks in the graph

    @property
    def metric_keys(self) -> list[str]:
        """The distinct evaluator task keys, in combination order."""
        return list(dict.fromkeys(c.key for c in self.combinations if c.key is not None))


def plan_sweep(strategy_file: str | Path, combinations: list[Combination], *,
               workspace: str | Path | None = None, max_data_bytes: int | None = None,
               tolerant: bool = False, grid_file: str = "<grid>") -> SweepPlan:
    """Compile every combination and build the shared task graph (see the module docstring).

    ``tolerant`` tasks return a failure as a value (for local schedulers, whose ``get`` stops at an error).
    A grid parameter the template never uses is a ConfigError naming ``grid_file`` (it would change nothing)."""
    check_no_nul(strategy_file, "strategy path")
    path = Path(strategy_file)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("strategy file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read strategy file: {exc}", file=file) from None
    parameters = dict.fromkeys(name for combination in combinations for name in combination.params)
    check_variables(text, parameters, file=file, where=lambda name: f"parameters.{name}", error_file=grid_file)
    root = Path(workspace) if workspace else find_workspace(path)
    plan = SweepPlan(graph={}, combinations=[])
    renderer = _Renderer(text, file=file)
    registries: dict[tuple[str, ...], Registry] = {}
    candles: dict[str, str | CandleflowError] = {}
    for combination in combinations:
        entry = PlannedCombination(combination, combination.symbol.symbol if combination.symbol else None)
        plan.combinations.append(entry)
        try:
            compiled = _compile(renderer, combination, workspace=root, registries=registries)
            entry.symbol = compiled.strategy.symbol
            candles_key = _candles_key(compiled, plan, candles, max_bytes=max_data_bytes)
            check_data(compiled, plan.graph[candles_key])  # its warnings: not shown by sweeps yet
            entry.key = _add_nodes(compiled, candles_key, plan, tolerant)
        except CandleflowError as exc:
            entry.error = " ".join(str(exc).split())
    return plan


class _Renderer:
    """The strategy template, compiled once, in the loader's bounded jinja2 sandbox.

    Rendering failures are redone by the loader and parsing is the loader's, so
    every message (file, YAML path, template line) is exactly that of ``candleflow run``.
    """

    def __init__(self, text: str, *, file: str) -> None:
        self.text = text
        self.file = file
        try:
            self.template: jinja2.Template | None = bounded_environment().from_string(text)
        except jinja2.TemplateSyntaxError:
            self.template = None  # the loader reports it, with its line, for every combination

    def strategy(self, variables: dict[str, Any]) -> Strategy:
        try:
            rendered = self.template.render(**variables) if self.template is not None else None
        except Exception:
            rendered = None
        if rendered is None:
            rendered = render_template(self.text, variables, file=self.file)  # raises, naming the line
        return parse_strategy(rendered, file=self.file)


def _compile(renderer: _Renderer, combination: Combination, *, workspace: Path,
             registries: dict[tuple[str, ...], Registry]) -> CompiledStrategy:
    strategy = renderer.strategy(combination.variables)
    if combination.symbol is not None:
        strategy = strategy.model_copy(update={"symbol": combination.symbol.symbol,
                                               "data": combination.symbol.source()})
    folders = tuple(strategy.components)
    compiled = compile_strategy(strategy, workspace=workspace, file=renderer.file, registry=registries.get(folders))
    registries.setdefault(folders, compiled.registry)
    return compiled


def _candles_key(compiled: CompiledStrategy, plan: SweepPlan, seen: dict[str, str | CandleflowError], *,
                 max_bytes: int | None = None) -> str:
    """Load the combination's data source once per sweep; add it to the graph; return its key."""
    source = compiled.strategy.data.model_dump_json()
    if source not in seen:
        try:
            frame: pd.DataFrame = load_source(compiled.strategy.data, workspace=compiled.workspace,
                                              file=compiled.file, max_bytes=max_bytes)
        except CandleflowError as exc:
            seen[source] = exc
        else:
            key = f"candles-{tokenize(frame)}"
            seen[source] = key
            if key not in plan.graph:
                plan.graph[key] = frame
                plan.tasks[CANDLES] += 1
    outcome = seen[source]
    if isinstance(outcome, CandleflowError):
        raise outcome
    plan.references[CANDLES] += 1
    return outcome


def _add_nodes(compiled: CompiledStrategy, candles_key: str, plan: SweepPlan, tolerant: bool) -> str:
    """Merge the combination's build into the sweep's graph; return its metrics task key."""
    work = build(compiled, candles_key, metrics_only=True, tolerant=tolerant)
    for name in work.nodes:
        kind = work.kinds[name]
        plan.references[kind] += 1
        key = work.keys[name]
        if key not in plan.graph:
            plan.tasks[kind] += 1
            plan.graph[key] = work.dsk[key]
    return work.evaluator_key
