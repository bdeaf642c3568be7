"""Turn signal frames into per-bar trading actions using the strategy's ``rules``.

Matching: a rule key matches an event of signal node ``node`` with type ``t`` when
the key is ``t`` (bare: any node's ``t``) or ``node.t`` (qualified).  Every rule
that matches an event applies, so a bare and a qualified key may both fire.

Per bar the result holds

* ``entry`` (int8): ``+1`` open long (``buy``), ``-1`` open short (``sell``),
  ``0`` nothing.  **Conflicting entries cancel**: a bar that has both a ``buy``
  and a ``sell`` gets ``0``; repeated entries in one direction count once.
* ``exit`` (int8 bit flags): ``CLOSE_LONG`` (1) | ``CLOSE_SHORT`` (2);
  ``close`` sets both (3).  Exits on one bar are OR-ed together.

A bar may carry both an exit and an entry; the simulator applies exits first.

>>> from candleflow.config.models import Rules
>>> from candleflow.nodes.outputs import make_signal_frame
>>> frames = {"cross": make_signal_frame([1, 3], ["up", "down"])}
>>> acts = actions_from_signals(frames, Rules(entry={"up": "buy"}, exit={"cross.down": "close"}), 5)
>>> acts.entry.tolist(), acts.exit.tolist()
([0, 1, 0, 0, 0], [0, 0, 0, 3, 0])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from candleflow.config.models import Rules

CLOSE_LONG = 1
CLOSE_SHORT = 2
EXIT_FLAGS = {"close_long": CLOSE_LONG, "close_short": CLOSE_SHORT, "close": CLOSE_LONG | CLOSE_SHORT}


@dataclass(frozen=True)
class Actions:
    """Per-bar actions decided on each bar's close (see module docstring).

    ``unmatched`` lists, sorted, the ``node.signal_type`` events that occurred but
    match no rule (the caller may warn about them).
    """

    entry: np.ndarray
    exit: np.ndarray
    unmatched: tuple[str, ...] = field(default=())


def actions_from_signals(signal_frames: dict[str, pd.DataFrame], rules: Rules, n_candles: int) -> Actions:
    """Map every node's signal events through ``rules`` onto ``n_candles`` bars."""
    buy = np.zeros(n_candles, dtype=bool)
    sell = np.zeros(n_candles, dtype=bool)
    exits = np.zeros(n_candles, dtype=np.int8)
    unmatched: set[str] = set()
    for node, frame in signal_frames.items():
        bars = frame["bar"].to_numpy(dtype=np.int64)
        types = frame["signal_type"].to_numpy(dtype=object)
        for signal_type in pd.unique(types):
            keys = (signal_type, f"{node}.{signal_type}")
            entry_actions = {rules.entry[key] for key in keys if key in rules.entry}
            exit_flags = [EXIT_FLAGS[rules.exit[key]] for key in keys if key in rules.exit]
            if not entry_actions and not exit_flags:
                unmatched.add(f"{node}.{signal_type}")
                continue
            where = bars[types == signal_type]
            if "buy" in entry_actions:
                buy[where] = True
            if "sell" in entry_actions:
                sell[where] = True
            for flag in exit_flags:
                exits[where] |= flag
    entry = buy.astype(np.int8) - sell.astype(np.int8)
    return Actions(entry=entry, exit=exits, unmatched=tuple(sorted(unmatched)))
