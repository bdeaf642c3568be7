"""Shared fixtures: small deterministic candle sets and paths into the example workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from candleflow.data import generate_candles

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def candles_500():
    return generate_candles(500, seed=7)
