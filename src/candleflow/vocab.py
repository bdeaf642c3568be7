"""The graph's shared vocabulary: node names, columns, plans, stats, options and the signal frame.

Every candleflow package may import this module, and it imports no other
candleflow module, so no import cycle can run through it -- the same reason
Hamilton keeps its node types in a leaf module.  Each constant is defined here
once.  It imports only the standard library when loaded (numpy and pandas inside
the signal-frame functions), so a script worker process can use its constants
without loading pandas.

* Well-known node ids: :data:`CANDLES` (the data source), :data:`EVALUATOR`.
* Columns: :data:`CANDLE_COLUMNS` (what components may read), :data:`PRICE_COLUMNS`.
* :class:`Binding` and :class:`NodePlan`: what the compiler resolved for one
  indicator or signal node, and all a task needs to compute it.
* :class:`NodeStats`: what happened to one node in one run.
* :class:`ScriptOptions`: how script components run (typed, not a dict).
* The *signal frame*, the value a signal node emits: one row per event, columns
  ``bar`` (int64 candle position), ``signal_type`` (str), ``strength`` (float64)
  and ``metadata`` (dict or None), sorted by ``bar``.  An event at bar ``i`` was
  decided with candles ``0..i``.  An *indicator* output is a float64 Series (one
  output) or a DataFrame of float64 columns, indexed exactly like the candles.

>>> frame = signal_frame_from_masks({"golden_cross": [False, True, False]})
>>> frame[["bar", "signal_type"]].values.tolist()
[[1, 'golden_cross']]
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CANDLES = "candles"
EVALUATOR = "evaluator"
SCRIPT_CANDLES = "CANDLE_DATA"  # what a script node reads of the candles node: every candle, as that env var
PRICE_COLUMNS = ("open", "high", "low", "close")
CANDLE_COLUMNS = (*PRICE_COLUMNS, "volume")
SIGNAL_COLUMNS = ("bar", "signal_type", "strength", "metadata")

NodeKind = Literal["candles", "indicator", "signal", "condition", "evaluator"]


@dataclass(frozen=True)
class Binding:
    """Input ``name`` of a node reads ``output`` (None: the whole value) of node ``source``.

    ``timeframe`` is the source's, when it runs on a higher timeframe (its values are then indexed by
    the higher candles and aligned to a base-timeframe reader, see ``candleflow.data.resample``).
    """

    name: str
    source: str
    output: str | None = None
    timeframe: tuple[int, int] | None = None  # the source node's (period, offset) in seconds if on a higher timeframe

    @classmethod
    def parse(cls, name: str, ref: str) -> "Binding":
        """Input ``name`` bound to ``ref``: a candle column (``close``), a node (``sma``) or an output (``bb.upper``).

        >>> Binding.parse("x", "bb.upper"), Binding.parse("y", "close").source
        (Binding(name='x', source='bb', output='upper', timeframe=None), 'candles')
        """
        if ref in CANDLE_COLUMNS:
            return cls(name, CANDLES, ref)
        source, _, output = ref.partition(".")
        return cls(name, source, output or None)

    @property
    def ref(self) -> str:
        if self.output and self.source != CANDLES:
            return f"{self.source}.{self.output}"
        return self.output or self.source


@dataclass(frozen=True)
class NodePlan:
    """Everything needed to run one indicator or signal node.

    ``spec`` is the node's YAML entry (a ``config.models.ComponentSpec``) and
    ``component`` the resolved ``components.Component`` (None for a script
    component, whose file is ``script``); both are typed loosely here so that
    this module imports neither package.
    """

    name: str
    kind: str
    yaml_path: str
    spec: Any
    component: Any
    script: Path | None
    params: dict[str, Any]
    bindings: tuple[Binding, ...]
    timeframe: tuple[int, int] | None = None  # (period, offset) in seconds on a higher timeframe; None: the data's

    @property
    def label(self) -> str:
        return f"script:{self.script.name}" if self.script else self.spec.component

    @property
    def outputs(self) -> tuple[str, ...] | None:
        return self.component.outputs if self.component else None


@dataclass
class NodeStats:
    """What happened to one node in one run (drawn on the annotated graph, written to nodes.json)."""

    name: str
    kind: str
    key: str
    cache: Literal["hit", "miss", "off"] = "miss"
    status: Literal["ok", "failed", "skipped", "replayed"] = "skipped"
    seconds: float = 0.0
    signals: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class ScriptOptions:
    """How script components run: per-candle ``timeout`` (s), worker processes, verbose logging, isolation.

    >>> ScriptOptions(timeout=5.0).workers is None
    True
    """

    timeout: float = 10.0
    workers: int | None = None
    verbose: bool = False
    isolation: Literal["warm", "process"] = "warm"  # the run's; a node's own ``isolation: process`` wins

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be more than 0 seconds, got {self.timeout!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers!r}")
        if self.isolation not in ("warm", "process"):
            raise ValueError(f"isolation must be warm or process, got {self.isolation!r}")


def source_hash(*objects: ModuleType | type | Any) -> str:
    """Hash of the source code of modules, classes or functions (16 hex digits).

    Memo keys are derived from it, so editing the code a node runs changes its key.
    """
    digest = hashlib.sha256()
    for obj in objects:
        try:
            text = inspect.getsource(obj)
        except (OSError, TypeError):
            text = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


# --- the signal frame ------------------------------------------------------------------


def empty_signal_frame() -> pd.DataFrame:
    import pandas as pd  # pandas only where a frame is made: see the module docstring

    return pd.DataFrame({
        "bar": pd.Series([], dtype="int64"),
        "signal_type": pd.Series([], dtype=object),
        "strength": pd.Series([], dtype="float64"),
        "metadata": pd.Series([], dtype=object),
    })


def make_signal_frame(
    bars: Sequence[int] | np.ndarray,
    signal_types: Sequence[str] | np.ndarray,
    strengths: Sequence[float] | np.ndarray | None = None,
    metadata: Sequence[dict | None] | None = None,
) -> pd.DataFrame:
    """Build a signal frame from parallel sequences, sorted stably by bar."""
    import numpy as np  # see empty_signal_frame
    import pandas as pd  # see empty_signal_frame

    bars = np.asarray(bars, dtype="int64")
    n = len(bars)
    if n == 0:
        return empty_signal_frame()
    frame = pd.DataFrame({
        "bar": bars,
        "signal_type": pd.Series(list(signal_types), dtype=object),
        "strength": np.ones(n) if strengths is None else np.asarray(strengths, dtype="float64"),
        "metadata": pd.Series([None] * n if metadata is None else list(metadata), dtype=object),
    })
    return frame.sort_values("bar", kind="stable").reset_index(drop=True)


def signal_frame_from_masks(
    masks: Mapping[str, pd.Series | np.ndarray],
    strengths: Mapping[str, pd.Series | np.ndarray] | None = None,
) -> pd.DataFrame:
    """One event per True of each boolean mask: ``{"golden_cross": cross_up}``."""
    import numpy as np  # see empty_signal_frame

    bars, types, values = [], [], []
    for signal_type, mask in masks.items():
        where = np.flatnonzero(np.asarray(mask, dtype=bool))
        bars.append(where)
        types.extend([signal_type] * len(where))
        if strengths and signal_type in strengths:
            values.append(np.asarray(strengths[signal_type], dtype="float64")[where])
        else:
            values.append(np.ones(len(where)))
    if not bars:
        return empty_signal_frame()
    return make_signal_frame(np.concatenate(bars), types, np.concatenate(values))
