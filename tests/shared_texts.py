"""Texts several test modules write into their workspaces (imported by name, like cluster_helpers)."""

from __future__ import annotations

from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")  # PYTHONPATH for the CLI in a subprocess

# SMA(5/20) crossover on the workspace's data.csv: the smallest valid strategy, edited by .replace in tests
DEMO_STRATEGY = """\
name: demo
symbol: EURUSD
timeframe: 1h
data: {path: data.csv}
indicators:
  - {name: fast, component: sma, params: {period: 5}}
  - {name: slow, component: sma, params: {period: 20}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
"""
