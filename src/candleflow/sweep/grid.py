"""The sweep spec (``grid.yaml``) and its expansion into combinations.

The spec is strict pydantic (unknown keys are errors, every error names the
file and the YAML path):

.. code-block:: yaml

    parameters:                       # template variables, each a list or a range
      fast: [5, 10, 20]
      slow: {start: 30, stop: 90, step: 20}    # 30, 50, 70, 90 (stop included)
    symbols:                          # optional; default: the strategy's own data
      - {symbol: EURUSD, path: data/EURUSD_1h.csv}
      - {symbol: EURUSD_SAMPLE, sample: eurusd_1h}
    rank: {by: sharpe, direction: max}  # direction: default the metric's better one (catalog)

Expansion is the Cartesian product, symbols outermost, then the parameters in
the order the spec lists them, so the combination order is deterministic.  Its
size is the product of the value counts (a range's counted, not listed) and is
checked against a limit (:data:`MAX_COMBINATIONS`, ``--max-combinations``)
before anything is expanded.

>>> spec = SweepSpec.model_validate({"parameters": {"fast": [5, 10], "slow": {"start": 30, "stop": 50, "step": 10}}})
>>> [c.label for c in combinations(spec)][:2]
['fast=5, slow=30', 'fast=5, slow=40']
>>> len(combinations(spec))
6
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Discriminator, Field, StrictFloat, StrictInt, Tag, ValidationError,
    field_validator, model_validator,
)

from candleflow.config.loader import load_yaml, validation_error
from candleflow.config.models import NAME_PATTERN, DataSource, PathText
from candleflow.errors import ConfigError, check_no_nul
from candleflow.portfolio.catalog import better

Number = Union[StrictInt, StrictFloat]
MAX_COMBINATIONS = 1_000_000  # a grid with more combinations is refused unless the limit is raised


def _scalar(value: Any) -> Any:
    if not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"a parameter value must be a number, string or boolean, got {value!r}")
    return value


Scalar = Annotated[Any, AfterValidator(_scalar)]


def _identity(value: Any) -> tuple:
    """What makes two grid values the same run: ``5`` and ``5.0`` are (the template prints either as a number
    the strategy reads alike), ``true`` and ``1`` are not, nor ``"5"`` and ``5``; NaN is one value."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return ("number", value) if isinstance(value, (int, float)) else ("str", value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """``start, start + step, ...`` up to ``stop`` inclusive (ints if all three are ints)."""

    start: Number
    stop: Number
    step: Number = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.stop < self.start:
            raise ValueError(f"stop ({self.stop}) is below start ({self.start})")
        if not math.isfinite((self.stop - self.start) / self.step):
            raise ValueError("the range has more values than can be counted; use a larger step")
        return self

    def _ints(self) -> bool:
        return all(isinstance(v, int) for v in (self.start, self.stop, self.step))

    def count(self) -> int:
        """How many values: known without listing them."""
        if self._ints():
            return len(range(self.start, self.stop + 1, self.step))
        return math.floor((self.stop - self.start) / self.step + 1e-9) + 1

    def values(self) -> list[int | float]:
        if self._ints():
            return list(range(self.start, self.stop + 1, self.step))
        return [round(self.start + i * self.step, 12) for i in range(self.count())]


class SymbolSpec(DataSource):
    """One symbol and its candles: ``path`` (relative to the workspace) or ``sample``."""

    symbol: str = Field(min_length=1)

    def source(self) -> DataSource:
        return DataSource(**self.model_dump(exclude={"symbol"}))


class Rank(_Strict):
    """The metric the results are sorted by, best first.

    Without a ``direction`` the metric's own better direction from the catalog
    (:func:`candleflow.portfolio.catalog.better`) applies, and ``max`` for a
    metric that has none (``n_trades``, ``exposure``).

    >>> Rank(by="sharpe").order, Rank(by="sharpe", direction="min").order
    ('max', 'min')
    """

    by: str = "sharpe"
    direction: Literal["max", "min"] | None = None

    @property
    def order(self) -> Literal["max", "min"]:
        """The direction the results are sorted in: the explicit ``direction`` or the catalog's."""
        return self.direction or better(self.by) or "max"


# The tags are spelled like pydantic's own type tags so error paths omit them (parameters.fast[0], not .list[0]).
Values = Annotated[Union[Annotated[list[Scalar], Field(min_length=1), Tag("list[values]")],
                         Annotated[Range, Tag("dict[range]")]],
                   Discriminator(lambda v: "dict[range]" if isinstance(v, (dict, Range)) else "list[values]")]


WINDOW = re.compile(r"^(\d+)\s*(h|D|W|M|Y)$")
WINDOW_UNITS = {"h": "hours", "D": "days", "W": "weeks", "M": "months", "Y": "years"}


class WalkForward(_Strict):
    """Walk-forward windows (:mod:`candleflow.sweep.walkforward`): ``train`` and ``test`` lengths such as
    ``6M`` (calendar months), ``90D``, ``2W``, ``12h``, ``1Y``; ``anchored``: every train window starts at
    the data's first candle.

    >>> WalkForward(train="6M", test="1M").offsets()
    (<DateOffset: months=6>, <DateOffset: months=1>)
    """

    train: str
    test: str
    anchored: bool = False

    @field_validator("train", "test")
    @classmethod
    def _length(cls, value: str) -> str:
        found = WINDOW.match(value)
        if not found or int(found.group(1)) < 1:
            raise ValueError(f"'{value}' is not a window length; use a whole number and a unit: h (hours), "
                             f"D (days), W (weeks), M (months), Y (years), e.g. 6M")
        return value

    def offsets(self):
        """``train`` and ``test`` as pandas DateOffsets."""
        import pandas as pd  # pandas: only when windows are cut

        return tuple(pd.DateOffset(**{WINDOW_UNITS[unit]: int(count)})
                     for count, unit in (WINDOW.match(v).groups() for v in (self.train, self.test)))


class Search(_Strict):
    """How the grid is searched: ``grid`` (every combination), ``random`` (``trials`` distinct combinations drawn
    with ``seed``) or ``tpe`` (Optuna's Bayesian TPE sampler, see :mod:`candleflow.sweep.search`: ``trials``
    and/or ``timeout`` seconds, ``batch`` trials evaluated at once, the study kept in the SQLite file
    ``storage`` so an interrupted search resumes)."""

    method: Literal["grid", "random", "tpe"] = "grid"
    trials: int | None = Field(default=None, ge=1)
    seed: int = 0
    timeout: float | None = Field(default=None, gt=0)
    batch: int | None = Field(default=None, ge=1)
    storage: PathText | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Search":
        if self.method == "grid":
            given = [k for k in ("trials", "timeout", "batch", "storage") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to a random or tpe search, not to the grid "
                                 f"(method: random or tpe)")
        elif self.method == "random":
            if self.trials is None:
                raise ValueError("a random search needs 'trials'")
            given = [k for k in ("timeout", "batch", "storage") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to a tpe search only")
        elif self.trials is None and self.timeout is None:
            raise ValueError("a tpe search needs a budget: 'trials', 'timeout' (seconds) or both")
        return self


class SweepSpec(_Strict):
    parameters: dict[str, Values] = Field(default_factory=dict)
    symbols: Annotated[list[SymbolSpec], Field(min_length=1)] | None = None
    rank: Rank = Field(default_factory=Rank)
    walk_forward: WalkForward | None = None
    search: Search = Field(default_factory=Search)

    @model_validator(mode="after")
    def _consistent(self) -> "SweepSpec":
        if not self.parameters and not self.symbols:
            raise ValueError("give 'parameters' to vary, 'symbols' to run on, or both")
        for name, values in self.parameters.items():
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"parameter name '{name}' is not a template variable name (letters, digits, _)")
            if isinstance(values, list) and len({_identity(v) for v in values}) != len(values):
                raise ValueError(f"parameters.{name}: a value is listed twice")
        for reserved in ("symbol", "error"):
            if reserved in self.parameters:
                raise ValueError(f"'{reserved}' is a result column (symbols are listed under 'symbols'); "
                                 f"rename the parameter")
        if self.symbols:
            names = [s.symbol for s in self.symbols]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"symbol listed twice: {', '.join(twice)}")
        if self.walk_forward is not None and self.symbols and len(self.symbols) > 1:
            raise ValueError("walk_forward runs on one symbol; list one under 'symbols' (or none: the strategy's)")
        return self

    def counts(self) -> list[int]:
        """How many symbols (if listed) and values of each parameter: the factors of the combination count."""
        symbols = [len(self.symbols)] if self.symbols else []
        return symbols + [v.count() if isinstance(v, Range) else len(v) for v in self.parameters.values()]

    def values(self) -> dict[str, list[Any]]:
        """Every parameter's list of values."""
        return {name: v.values() if isinstance(v, Range) else list(v) for name, v in self.parameters.items()}


@dataclass(frozen=True)
class Combination:
    """One backtest of the sweep: a symbol (None: the strategy's own data) and a parameter set."""

    symbol: SymbolSpec | None
    params: dict[str, Any]

    @property
    def variables(self) -> dict[str, Any]:
        """The template variables: the parameters, plus ``symbol`` when the grid lists symbols."""
        return {"symbol": self.symbol.symbol, **self.params} if self.symbol else dict(self.params)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.variables.items())


def combinations(spec: SweepSpec, *, limit: int = MAX_COMBINATIONS, file: str | None = None) -> list[Combination]:
    """The Cartesian product of symbols and parameter values, in a fixed order.

    More than ``limit`` combinations is a ConfigError (naming ``file``), raised
    before a single one is listed; so is running out of memory listing them.
    """
    counts = spec.counts()
    total = math.prod(counts)
    if total > limit:
        factors = " x ".join(f"{n:,}" for n in counts)
        raise ConfigError(f"the grid has {total:,} combinations ({factors}), more than the {limit:,} allowed; "
                          f"raise the limit with --max-combinations", file=file)
    try:
        values = spec.values()
        products = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
        return [Combination(symbol, params) for symbol in (spec.symbols or [None]) for params in products]
    except MemoryError:
        raise ConfigError(f"not enough memory to list the grid's {total:,} combinations", file=file) from None


def sample_combinations(spec: SweepSpec, trials: int, *, seed: int = 0) -> list[Combination]:
    """``trials`` distinct combinations drawn uniformly from the grid with ``seed`` (all of them, in grid order,
    if the grid has no more); a grid more than 4 times larger is never listed, so it may exceed memory.

    >>> spec = SweepSpec.model_validate({"parameters": {"a": {"start": 1, "stop": 1000, "step": 1}, "b": [1, 2]}})
    >>> [c.label for c in sample_combinations(spec, 3, seed=1)] == [c.label for c in sample_combinations(spec, 3, seed=1)]
    True
    """
    import numpy as np  # numpy: only for a random search

    total = math.prod(spec.counts())
    rng = np.random.default_rng(seed)
    if total <= 4 * trials:  # a small grid: list it and draw from the list
        listed = combinations(spec, limit=total)
        return [listed[i] for i in rng.permutation(total)[:trials]] if trials < total else listed
    symbols, values = spec.symbols or [None], spec.values()
    sizes = [len(symbols)] + [len(v) for v in values.values()]
    seen, chosen = set(), []
    while len(chosen) < trials:
        for digits in zip(*(rng.integers(0, size, trials).tolist() for size in sizes)):
            if digits not in seen and len(chosen) < trials:
                seen.add(digits)
                chosen.append(digits)
    return [Combination(symbols[d[0]], {name: vs[i] for (name, vs), i in zip(values.items(), d[1:])})
            for d in chosen]


def load_grid(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file."""
    check_no_nul(path, "grid path")
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("grid file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read grid file: {exc}", file=file) from None
    raw = load_yaml(text, file=file)  # the strategy's loader: safe, bounded, a key given twice is an error
    if not isinstance(raw, dict):
        raise ConfigError("a grid file is a mapping with 'parameters', 'symbols' and 'rank'", file=file)
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, file=file) from None
