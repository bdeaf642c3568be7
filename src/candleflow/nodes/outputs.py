"""Check what a signal component returned against the signal-frame contract.

The contract itself (columns, constructors) lives in :mod:`candleflow.vocab`:

* An **indicator** output is a float64 ``pandas.Series`` (one output) or a
  ``DataFrame`` of float64 columns (several outputs, e.g. Bollinger
  ``upper/middle/lower``), indexed exactly like the candles; NaN during warm-up.
* A **signal** output is a *signal frame*: one row per event, columns
  ``bar`` (int64 candle position), ``signal_type`` (str), ``strength`` (float64)
  and ``metadata`` (dict or None), sorted by ``bar``.  An event at bar ``i``
  was decided with candles ``0..i`` and acts, by default, at bar ``i + 1``'s open.

>>> as_signal_frame({"golden_cross": [False, True, False]}, 3, component="x")["bar"].tolist()
[1]
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from candleflow.errors import ComponentError
from candleflow.vocab import SIGNAL_COLUMNS, empty_signal_frame, make_signal_frame, signal_frame_from_masks


def as_signal_frame(value: object, n_candles: int, *, component: str) -> pd.DataFrame:
    """Normalise what a signal function returned into a checked signal frame.

    Accepted: a signal frame, or a mapping ``signal_type -> boolean mask``.
    """
    if isinstance(value, Mapping):
        frame = signal_frame_from_masks(value)
        for signal_type, mask in value.items():
            if len(mask) != n_candles:
                raise ComponentError(f"mask '{signal_type}' has {len(mask)} values for {n_candles} candles",
                                     component=component)
    elif isinstance(value, pd.DataFrame) and {"bar", "signal_type"} <= set(value.columns):
        frame = value.copy()
        if "strength" not in frame:
            frame["strength"] = 1.0
        if "metadata" not in frame:
            frame["metadata"] = None
        frame = make_signal_frame(frame["bar"].to_numpy(), frame["signal_type"].tolist(),
                                  frame["strength"].to_numpy(), frame["metadata"].tolist())
    else:
        raise ComponentError(
            f"a signal must return a mapping of signal type to boolean mask or a signal frame, "
            f"not {type(value).__name__}", component=component)
    if len(frame) and (frame["bar"].min() < 0 or frame["bar"].max() >= n_candles):
        raise ComponentError(f"signal bar outside 0..{n_candles - 1}", component=component)
    if not np.all(np.isfinite(frame["strength"].to_numpy())):
        raise ComponentError("signal strength is NaN or infinite", component=component)
    return frame[list(SIGNAL_COLUMNS)]


__all__ = ["SIGNAL_COLUMNS", "as_signal_frame", "empty_signal_frame", "make_signal_frame", "signal_frame_from_masks"]
