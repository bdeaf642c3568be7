"""What a sweep's Dask tasks run on a worker: one node, or one combination's evaluator.

Each task's static part (the node plan, or the strategy) arrives as opaque bytes
made by :func:`pack`, its data (candles, upstream outputs) as Dask dependencies.
Opaque bytes are serialized once per distinct task, never scanned by Dask for
keys, and made by cloudpickle, which honours ``register_pickle_by_value``:
workspace components (modules no worker can import) always travel by value,
whatever distributed's own serializer would pick.
"""

from __future__ import annotations

import pickle
from typing import Any

import pandas as pd


def pack(*static: Any) -> bytes:
    """Serialize a task's static arguments so that workspace code travels by value."""
    import cloudpickle

    return cloudpickle.dumps(static)


def node_task(packed: bytes, candles: pd.DataFrame, *upstream_values: Any) -> pd.Series | pd.DataFrame:
    """Compute one indicator/signal node; ``packed`` holds (plan, symbol, timeframe, upstream names, file).

    A failure names the strategy file and the node's YAML entry, as in ``candleflow run``.
    """
    from candleflow.errors import CandleflowError
    from candleflow.nodes.compute import run_node

    plan, symbol, timeframe, upstream_names, file = pickle.loads(packed)
    try:
        return run_node(plan, candles, dict(zip(upstream_names, upstream_values)), symbol=symbol,
                        timeframe=timeframe)
    except CandleflowError as exc:
        exc.file = exc.file or file
        exc.path = exc.path or plan.yaml_path
        raise


def metrics_task(packed: bytes, candles: pd.DataFrame, *signal_frames: pd.DataFrame) -> dict[str, float]:
    """Run the evaluator of one combination and return only its metrics (small to ship back)."""
    from candleflow.nodes.evaluator import evaluate

    strategy, signal_names = pickle.loads(packed)
    return dict(evaluate(strategy, candles, dict(zip(signal_names, signal_frames))).metrics)
