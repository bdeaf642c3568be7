"""Shared fixtures: small deterministic candle sets and paths into the example workspace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from candleflow.data import generate_candles

REPO = Path(__file__).resolve().parent.parent

# Tests that start the installed `candleflow` command find the one beside the Python running them (.venv/bin, see
# scripts/setup-test-env.sh) first, not another installation's on PATH.
if (Path(sys.executable).parent / "candleflow").exists():
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def candles_500():
    return generate_candles(500, seed=7)


def pytest_collection_modifyitems(config, items):
    """``slow`` tests run only when ``-m`` names them (``-m slow``); otherwise they show as skipped."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)
