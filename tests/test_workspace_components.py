"""User components in a workspace folder: discovered by path, both execution modes, params validated."""

from __future__ import annotations


import numpy as np
import pytest

from candleflow.backtest import run_backtest
from candleflow.cli import main
from candleflow.data import generate_candles, write_candles
from candleflow.errors import CompileError

COMPONENTS = '''
import math
from candleflow import indicator, signal

@indicator("midpoint")
def midpoint(high, low, *, shift: float = 0.0):
    return (high + low) / 2 + shift

@indicator("running_max")
class RunningMax:
    """Highest value of the last `period` inputs (incremental)."""
    def __init__(self, *, period: int = 10):
        self.period, self.window = period, []
    def update(self, value: float) -> float:
        self.window = (self.window + [value])[-self.period:]
        return max(self.window) if len(self.window) == self.period else math.nan

@signal("new_high", signal_types=("new_high",))
def new_high(close, ceiling):
    return {"new_high": close >= ceiling}
'''

STRATEGY = '''
name: workspace_test
symbol: TEST
timeframe: 1h
data: {path: candles.csv}
indicators:
  - {name: mid, component: midpoint}
  - {name: top, component: running_max, inputs: [mid], params: {period: 24}}
signals:
  - {name: breakout, component: new_high, inputs: {ceiling: top}}
rules: {entry: {new_high: buy}}
risk: {stop_loss: 0.002, take_profit: 0.002}
'''


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "mine.py").write_text(COMPONENTS)
    # a script component beside it is never imported by discovery (it would crash on import)
    (tmp_path / "components" / "script.py").write_text("raise SystemExit('must not be imported')\n")
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "s.yaml").write_text(STRATEGY)
    candles = generate_candles(400, seed=11)
    write_candles(candles, tmp_path / "candles.csv")
    return tmp_path


def test_workspace_components_run(workspace):
    result = run_backtest(workspace / "strategies" / "s.yaml", cache=None)
    candles = result.candles
    mid = (candles.high + candles.low) / 2
    expected_top = mid.rolling(24).max()
    np.testing.assert_allclose(result.values["top"], expected_top, rtol=0, atol=1e-12)
    expected_bars = np.flatnonzero((candles.close >= expected_top).to_numpy())
    assert result.signals()["breakout"]["bar"].tolist() == expected_bars.tolist()
    assert len(result.trades) > 0


def test_workspace_param_errors_name_the_yaml_path(workspace):
    path = workspace / "strategies" / "s.yaml"
    path.write_text(STRATEGY.replace("params: {period: 24}", "params: {period: many}"))
    with pytest.raises(CompileError, match=r"indicators\[1\]\.params\.period: Input should be a valid integer"):
        run_backtest(path, cache=None)


def test_components_option_adds_a_folder(workspace, tmp_path_factory, capsys):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (workspace / "components" / "mine.py").rename(elsewhere / "mine.py")
    strategy = str(workspace / "strategies" / "s.yaml")
    assert main(["validate", strategy]) == 2
    assert "unknown indicator component 'midpoint'" in capsys.readouterr().err
    assert main(["validate", strategy, "--components", str(elsewhere)]) == 0
