"""What a script component sees: the environment variables of one candle.

Per candle ``i`` a script gets (the seed's protocol, plus candleflow extensions
marked *ext*):

``CANDLE_DATA``
    JSON list of ``{"time": <epoch s>, "open", "high", "low", "close", "volume"}``
    for candles ``lo..i``, where ``lo = 0``, or ``max(0, i - N + 1)`` with a
    lookback of ``N``.
``CURRENT_INDEX``
    Position of candle ``i`` *within* ``CANDLE_DATA`` (``i - lo``), so the
    seed's ``candle_data[:current_index + 1]`` idiom works with a lookback.
``CANDLE_OFFSET`` *ext*
    ``lo``, the global index of ``CANDLE_DATA[0]``.
``GLOBAL_INDEX`` *ext*
    ``i``, the candle's position in the whole series.
``SYMBOL``, ``TIMEFRAME``, ``COMPONENT_TYPE`` (``indicator``/``signal``), ``COMPONENT_NAME``
    Constant for the run.
``COMPONENT_PARAMS`` *ext*
    JSON object of the YAML node's ``params`` (``{}`` if none).
``INDICATOR_DATA``
    ``{"<input name>": {"values": [v_lo..v_i], "current": v_i}}`` with NaN as
    ``null``; always set for signals (``{}`` without inputs), and for
    indicators that have inputs (*ext*).

The lookback ``N`` is the YAML node's ``lookback`` or else a top-level
``LOOKBACK = <int>`` in the script, found with :mod:`ast` (the script is not
imported in the parent).  :func:`script_imports` reads, the same way, the
modules a worker may preload for the script.

Algorithm: :class:`RunData` serialises every candle (and every input value)
to a JSON fragment once per run, concatenated into one string with per-item
``start``/``end`` offsets; the value for candle ``i`` is then one slice
``"[" + body[start[lo]:end[i]] + "]"`` -- no per-candle ``json.dumps``.  The
``RunData`` is shipped to each worker process once per run; the worker calls
:meth:`RunData.candle_env` per candle and sets ``os.environ`` in-process, so
no ``execve`` size limit (``MAX_ARG_STRLEN`` = 128 KiB) applies.

>>> import pandas as pd
>>> candles = pd.DataFrame({c: [1.0, 2.0, 3.0] for c in ("open", "high", "low", "close", "volume")},
...     index=pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00"], tz="UTC", name="time"))
>>> data = RunData.build(candles, kind="indicator", name="x", symbol="EURUSD", timeframe="1h", lookback=2)
>>> env = data.candle_env(2)
>>> env["CURRENT_INDEX"], env["CANDLE_OFFSET"], env["CANDLE_DATA"][:40]
('1', '1', '[{"time": 1704070800, "open": 2.0, "high')
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from candleflow.errors import ComponentError
from candleflow.vocab import CANDLE_COLUMNS

if TYPE_CHECKING:  # the worker imports this module for RunData.candle_env and must stay free of pandas
    import pandas as pd



@dataclass(frozen=True)
class JsonSeries:
    """A sequence of JSON fragments joined by commas, with each fragment's offsets."""

    body: str
    starts: list[int]
    ends: list[int]

    @classmethod
    def from_fragments(cls, fragments: list[str]) -> "JsonSeries":
        starts, ends, position = [], [], 0
        for fragment in fragments:
            starts.append(position)
            position += len(fragment)
            ends.append(position)
            position += 1  # the comma
        return cls(",".join(fragments), starts, ends)

    def array(self, lo: int, hi: int) -> str:
        """JSON list of fragments ``lo..hi`` inclusive."""
        return "[" + self.body[self.starts[lo]:self.ends[hi]] + "]"

    def item(self, i: int) -> str:
        return self.body[self.starts[i]:self.ends[i]]


@dataclass(frozen=True)
class RunData:
    """Everything a worker needs to build any candle's environment for one run."""

    kind: str
    name: str
    static_env: dict[str, str]
    candles: JsonSeries
    times: list[int]  # epoch seconds per candle, for the look-ahead check
    inputs: dict[str, JsonSeries]
    lookback: int | None

    @classmethod
    def build(cls, candles: pd.DataFrame, *, kind: str, name: str, symbol: str, timeframe: str,
              inputs: Mapping[str, pd.Series] | None = None, params: Mapping[str, Any] | None = None,
              lookback: int | None = None) -> "RunData":
        times = epoch_seconds(candles.index)
        columns = [candles[column].to_numpy(dtype="float64").tolist() for column in CANDLE_COLUMNS]
        fragments = [
            f'{{"time": {t}, "open": {_number(o)}, "high": {_number(h)}, "low": {_number(lo)}, '
            f'"close": {_number(c)}, "volume": {_number(v)}}}'
            for t, o, h, lo, c, v in zip(times, *columns)
        ]
        series = {
            input_name: JsonSeries.from_fragments([_number(x) for x in values.to_numpy(dtype="float64").tolist()])
            for input_name, values in (inputs or {}).items()
        }
        static_env = {
            "SYMBOL": symbol,
            "TIMEFRAME": timeframe,
            "COMPONENT_TYPE": kind,
            "COMPONENT_NAME": name,
            "COMPONENT_PARAMS": json.dumps(dict(params or {})),
        }
        return cls(kind, name, static_env, JsonSeries.from_fragments(fragments), times, series, lookback)

    @property
    def with_indicator_data(self) -> bool:
        return self.kind == "signal" or bool(self.inputs)

    def candle_env(self, i: int) -> dict[str, str]:
        """The per-candle variables (``static_env`` holds the rest)."""
        lo = 0 if self.lookback is None else max(0, i - self.lookback + 1)
        env = {
            "CANDLE_DATA": self.candles.array(lo, i),
            "CURRENT_INDEX": str(i - lo),
            "CANDLE_OFFSET": str(lo),
            "GLOBAL_INDEX": str(i),
        }
        if self.with_indicator_data:
            env["INDICATOR_DATA"] = "{" + ", ".join(
                f'{json.dumps(input_name)}: {{"values": {values.array(lo, i)}, "current": {values.item(i)}}}'
                for input_name, values in self.inputs.items()
            ) + "}"
        return env


def epoch_seconds(index: pd.Index) -> list[int]:
    """Whole epoch seconds of a UTC DatetimeIndex."""
    import pandas as pd  # parent side only (see the TYPE_CHECKING import)

    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError("candles must be indexed by a DatetimeIndex")
    stamps = index if index.tz is not None else index.tz_localize("UTC")
    return (stamps.as_unit("ns").asi8 // 1_000_000_000).tolist()


def script_lookback(path: Path, *, component: str) -> int | None:
    """The value of a top-level ``LOOKBACK = <int>`` in the script, if any (static, via ast)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise ComponentError(f"script has a syntax error at line {exc.lineno}: {exc.msg}",
                             component=component, detail=(exc.text or "").strip() or None) from None
    found = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "LOOKBACK" for t in node.targets):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "LOOKBACK":
            value = node.value
        else:
            continue
        if not (isinstance(value, ast.Constant) and type(value.value) is int and value.value >= 1):
            raise ComponentError(f"LOOKBACK at line {node.lineno} must be a positive integer literal "
                                 f"(it is read without running the script)", component=component)
        found = value.value
    return found


def script_imports(path: Path) -> tuple[str, ...]:
    """Top-level names of the modules imported by the script's leading import statements.

    Only the statements before the first statement that is not an import (a
    docstring aside) count -- code before an import, such as setting an
    environment variable, may change what the import does -- and only modules
    not found in the script's own folder: those are the script's code and run
    in its own process, never in a template.  A syntax error gives ``()``
    (:func:`script_lookback` reports it).
    """
    import importlib.machinery  # only here: the parent reads a script's imports once per run

    try:
        body = ast.parse(path.read_bytes(), filename=str(path)).body
    except SyntaxError:
        return ()
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    names: list[str] = []
    for node in body:
        if isinstance(node, ast.Import):
            names += [alias.name.partition(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module != "__future__":
                names.append(node.module.partition(".")[0])
        else:
            break
    folder = [str(path.parent)]
    return tuple(name for name in dict.fromkeys(names)
                 if importlib.machinery.PathFinder.find_spec(name, folder) is None)


def _number(value: float) -> str:
    return repr(value) if math.isfinite(value) else "null"

