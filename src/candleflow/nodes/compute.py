"""Run one indicator or signal node over the whole candle series.

A node is computed once per run, as a whole causal series (never one Dask
task per candle):

* vectorized components get their input series and return a series;
* incremental components are stepped once per candle over numpy arrays;
* script components go to the warm worker pool
  (:mod:`candleflow.components.script`), one candle at a time as the seed's
  protocol requires.

A node on a higher timeframe (``plan.timeframe``) runs on the complete higher
candles (:mod:`candleflow.data.resample`); its indicator values stay indexed by
them (a node on the same timeframe reads them as they are) and are aligned to
the base candles where a base-timeframe node reads them (:func:`base_aligned`);
its signal events move to the first base candle that sees their higher candle.

Outputs are checked here (length, index, numeric dtype, multi-output columns)
so a faulty component fails at its own node with its own name.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from candleflow.config.models import parse_timeframe
from candleflow.data import resample
from candleflow.errors import CandleflowError, ComponentError
from candleflow.nodes.outputs import as_signal_frame
from candleflow.vocab import CANDLES, Binding, NodePlan, ScriptOptions


def resolve_input(binding: Binding, candles: pd.DataFrame, upstream: dict[str, Any], *,
                  base: int | None = None, reader: tuple[int, int] | None = None) -> pd.Series:
    """The series a binding points at: a candle column, or an (output of an) upstream node.

    ``candles`` are the reader's (resampled for a higher-timeframe ``reader``); a higher-timeframe
    source read by a base-timeframe node is aligned to the candles (``base`` is their period in seconds).
    """
    if binding.source == CANDLES:
        return candles[binding.output]
    value = upstream[binding.source]
    if binding.timeframe is not None and reader is None:
        value = resample.align(value, candles.index, base, binding.timeframe[0])
    return value[binding.output] if binding.output else value


def node_candles(plan: NodePlan, candles: pd.DataFrame, base: int) -> pd.DataFrame:
    """The candles ``plan`` runs on: ``candles``, or their complete higher candles."""
    if plan.timeframe is None:
        return candles
    period, offset = plan.timeframe
    bad = resample.off_grid(candles.index, base, period, offset)
    if bad is not None:
        raise ComponentError(f"candle time {candles.index[bad]} is not on the grid of the data's timeframe; "
                             f"a higher timeframe needs candles opening on whole periods", component=plan.name,
                             candle=bad)
    return resample.resample(candles, period, offset, base)


def base_aligned(plan: NodePlan, value: Any, candles: pd.DataFrame, timeframe: str) -> Any:
    """An indicator value as the base candles see it (higher-timeframe values aligned; others unchanged)."""
    if plan.timeframe is None or plan.kind != "indicator":
        return value
    return resample.align(value, candles.index, parse_timeframe(timeframe), plan.timeframe[0])


def run_node(plan: NodePlan, candles: pd.DataFrame, upstream: dict[str, Any], *,
             symbol: str, timeframe: str, progress: Callable[[int], None] | None = None,
             script_options: ScriptOptions | None = None,
             windows: Sequence[tuple[int, int]] | None = None) -> pd.Series | pd.DataFrame:
    """Compute ``plan`` on ``candles`` given its upstream nodes' outputs.

    ``windows`` runs a base-timeframe script node on those ranges of candles only (see
    ``run_script_component``); other nodes are always computed whole.
    """
    base = parse_timeframe(timeframe)
    frame = node_candles(plan, candles, base)
    value = _run_on(plan, frame, {b.name: resolve_input(b, frame, upstream, base=base, reader=plan.timeframe)
                                  for b in plan.bindings}, symbol=symbol,
                    timeframe=plan.spec.timeframe or timeframe, progress=progress, script_options=script_options,
                    windows=None if plan.timeframe else windows)
    if plan.kind == "signal" and plan.timeframe is not None:
        value = value.assign(bar=resample.first_seen(value["bar"].to_numpy(), frame.index, plan.timeframe[0],
                                                     candles.index, base).astype("int64"))
    return value


def _run_on(plan: NodePlan, candles: pd.DataFrame, inputs: dict[str, pd.Series], *, symbol: str, timeframe: str,
            progress: Callable[[int], None] | None,
            script_options: ScriptOptions | None,
            windows: Sequence[tuple[int, int]] | None = None) -> pd.Series | pd.DataFrame:
    if plan.script is not None:
        from candleflow.components.script import run_script_component  # the worker pool: for script nodes only

        options = script_options or ScriptOptions()
        timeout = options.timeout if plan.spec.timeout is None else plan.spec.timeout
        return run_script_component(
            plan.script, kind=plan.kind, name=plan.name, candles=candles, symbol=symbol, timeframe=timeframe,
            inputs=inputs or None, lookback=plan.spec.lookback, params=plan.params, progress=progress,
            timeout=timeout, workers=options.workers, verbose=options.verbose,
            isolation=script_isolation(plan, options.isolation), windows=windows)
    component = plan.component
    try:
        if component.mode == "incremental":
            raw = _run_incremental(component.target, plan.params, [inputs[n] for n in component.inputs], candles.index)
        else:
            raw = component.target(*(inputs[n] for n in component.inputs), **plan.params)
    except CandleflowError:
        raise
    except Exception as exc:
        raise ComponentError(f"{type(exc).__name__}: {exc}", component=plan.name) from exc
    if plan.kind == "signal":
        return as_signal_frame(raw, len(candles), component=plan.name)
    return check_indicator_output(raw, plan, candles.index)


def script_isolation(plan: NodePlan, run_isolation: str | None) -> str:
    """The stricter of the node's ``isolation`` and the run's (``--isolation``): ``process`` if either asks."""
    return "process" if "process" in (plan.spec.isolation, run_isolation) else "warm"


def _run_incremental(cls, params: dict, series: list[pd.Series], index: pd.Index) -> pd.Series | pd.DataFrame:
    """Step a fresh instance once per candle; state lives in the instance."""
    stepper = cls(**params).update
    columns = [s.to_numpy(dtype="float64").tolist() for s in series]
    values = [stepper(*row) for row in zip(*columns)]
    if values and isinstance(values[0], tuple):
        outputs = getattr(cls, "__candleflow_component__", {}).get("outputs")
        return pd.DataFrame(values, index=index, columns=list(outputs), dtype="float64")
    return pd.Series(values, index=index, dtype="float64")


def check_indicator_output(raw: Any, plan: NodePlan, index: pd.Index) -> pd.Series | pd.DataFrame:
    """Coerce an indicator's return value to float64 aligned with the candles, or fail clearly."""
    outputs = plan.outputs
    if outputs:
        if not isinstance(raw, pd.DataFrame):
            raise ComponentError(f"must return a DataFrame with columns {', '.join(outputs)}, "
                                 f"not {type(raw).__name__}", component=plan.name)
        missing = [c for c in outputs if c not in raw.columns]
        if missing:
            raise ComponentError(f"output lacks column(s) {', '.join(missing)}", component=plan.name)
        value = raw[list(outputs)]
    else:
        if isinstance(raw, np.ndarray) and raw.ndim == 1:
            raw = pd.Series(raw, index=index) if len(raw) == len(index) else raw
        if not isinstance(raw, pd.Series):
            raise ComponentError(f"must return a pandas Series, not {type(raw).__name__}", component=plan.name)
        value = raw
    if len(value) != len(index):
        raise ComponentError(f"returned {len(value)} values for {len(index)} candles", component=plan.name)
    if not value.index.equals(index):
        raise ComponentError("output index differs from the candles' index (keep the input index)",
                             component=plan.name)
    try:
        value = value.astype("float64")
    except (TypeError, ValueError) as exc:
        raise ComponentError(f"output is not numeric: {exc}", component=plan.name) from None
    if np.isinf(value.to_numpy()).any():
        bad = int(np.flatnonzero(np.isinf(value.to_numpy()).reshape(len(index), -1).any(axis=1))[0])
        raise ComponentError("output is infinite", component=plan.name, candle=bad)
    return value


__all__ = ["base_aligned", "check_indicator_output", "node_candles", "resolve_input", "run_node",
           "script_isolation"]
