"""Fixtures of the cross-checks: the peers' own bundled candles.

Helpers shared by the cross-check modules live in ``crosscheck_support.py`` (a conftest is
not importable by name, since ``tests/conftest.py`` is a ``conftest`` too).
"""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def goog() -> pd.DataFrame:
    """backtesting.py's bundled GOOG daily candles (2004-08-19 .. 2013-03-01, naive index: read as UTC)."""
    from backtesting.test import GOOG

    return GOOG.copy()


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    """backtesting.py's bundled EURUSD hourly candles (5000 bars from 2017-04-19, naive index: read as UTC)."""
    from backtesting.test import EURUSD

    return EURUSD.copy()
