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

A section in condition form (``{buy: <condition>}``) takes its actions from
``conditions``: each action's boolean series (0.0/1.0, NaN false) per bar, OR-ed
with the signal-form actions of the other section by the same rules.

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
    match no rule (the caller may warn about them).  ``close_fraction`` (None: every exit is
    whole) holds, per side and bar, the largest fraction the bar's exits close.
    """

    entry: np.ndarray
    exit: np.ndarray
    unmatched: tuple[str, ...] = field(default=())
    close_fraction: np.ndarray | None = None  # [0 long | 1 short, bar]: the share of each trade an exit closes


def actions_from_signals(signal_frames: dict[str, pd.DataFrame], rules: Rules, n_candles: int,
                         conditions: dict[str, pd.Series] | None = None) -> Actions:
    """Map every node's signal events through ``rules``, and each action's condition, onto ``n_candles`` bars."""
    buy = np.zeros(n_candles, dtype=bool)
    sell = np.zeros(n_candles, dtype=bool)
    exits = np.zeros(n_candles, dtype=np.int8)
    fractions = rules.exit_fractions()
    close_fraction = np.zeros((2, n_candles))

    def close(where, flag: int, fraction: float) -> None:
        exits[where] |= flag
        for row, bit in enumerate((CLOSE_LONG, CLOSE_SHORT)):
            if flag & bit:
                close_fraction[row, where] = np.maximum(close_fraction[row, where], fraction)

    unmatched: set[str] = set()
    entry_rules, exit_rules = rules.signal_rules("entry"), rules.signal_rules("exit")
    for node, frame in signal_frames.items():
        bars = frame["bar"].to_numpy(dtype=np.int64)
        types = frame["signal_type"].to_numpy(dtype=object)
        for signal_type in pd.unique(types):
            keys = (signal_type, f"{node}.{signal_type}")
            entry_actions = {entry_rules[key] for key in keys if key in entry_rules}
            exit_flags = [(EXIT_FLAGS[exit_rules[key]], fractions.get(key, 1.0)) for key in keys if key in exit_rules]
            if not entry_actions and not exit_flags:
                unmatched.add(f"{node}.{signal_type}")
                continue
            where = bars[types == signal_type]
            if "buy" in entry_actions:
                buy[where] = True
            if "sell" in entry_actions:
                sell[where] = True
            for flag, fraction in exit_flags:
                close(where, flag, fraction)
    for action, series in (conditions or {}).items():
        where = np.asarray(series, dtype="float64") > 0.5
        if action in EXIT_FLAGS:
            close(where, EXIT_FLAGS[action], fractions.get(action, 1.0))
        else:
            (buy if action == "buy" else sell)[where] = True
    entry = buy.astype(np.int8) - sell.astype(np.int8)
    partial = fractions and bool(((close_fraction > 0) & (close_fraction < 1)).any())
    return Actions(entry=entry, exit=exits, unmatched=tuple(sorted(unmatched)),
                   close_fraction=close_fraction if partial else None)
