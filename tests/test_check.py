"""The look-ahead check (``candleflow check``, ``validate --deep``), through the real CLI where exit codes count.

Each leaky component is written into a temporary workspace and the one error line is taken apart and checked
against the data: the candle it names, its time, and its value with later candles recomputed here (``close`` of
the next candle, a centred mean).  The built-in example strategies must pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from candleflow.backtest import prepare, run_backtest
from candleflow.check import (CUTS, EVENT_CUTS, SCRIPT_CUTS, SCRIPT_WINDOW, LookAheadError, _difference,
                              check_lookahead, cut_points)
from candleflow.components.script import run_script_component
from candleflow.data import generate_candles, load_candles, resample, write_candles
from candleflow.vocab import make_signal_frame
from shared_texts import DEMO_STRATEGY, SRC

ROOT = Path(__file__).resolve().parent.parent

LEAKY = '''\
import random

import numpy as np
from candleflow import indicator, signal


@indicator("next_close")
def next_close(close):
    return close.shift(-1)


@indicator("centred_mean")
def centred_mean(close, *, period: int = 5):
    return close.rolling(period, center=True).mean()


@signal("peek_up", signal_types=("up",))
def peek_up(close):
    return {"up": close.shift(-1) > close}


@indicator("noisy")
def noisy(close):
    return close + np.random.default_rng().normal(0.0, 1e-6, len(close))
'''

# Reads the candle after CURRENT_INDEX when CANDLE_DATA has one (the seed's protocol would allow it), without a
# lookback; candleflow hands a script candles 0..i only, so it can only ever print the current close.
PEEKING_SCRIPT = '''\
import json
import os

candles = json.loads(os.environ["CANDLE_DATA"])
i = int(os.environ["CURRENT_INDEX"])
ahead = candles[i + 1:i + 2]
print("INDICATOR_START")
print(json.dumps({"current": (ahead or candles[i:i + 1])[0]["close"]}))
print("INDICATOR_END")
'''

RANDOM_SCRIPT = '''\
import json
import os
import random

close = json.loads(os.environ["CANDLE_DATA"])[-1]["close"]
print("INDICATOR_START")
print(json.dumps({"current": close + random.SystemRandom().random() * 1e-6}))
print("INDICATOR_END")
'''

LEAK = re.compile(r"error: s\.yaml: (?P<path>\S+): component '(?P<node>\w+)': looks ahead: candle (?P<candle>\d+) "
                  r"\((?P<time>[^)]+)\) is (?P<full>\S+) with later candles, (?P<prefix>\S+) without "
                  r"\(cut at (?P<cut>\d+)\)\n")


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "leaky.py").write_text(LEAKY)
    write_candles(generate_candles(300, seed=3), tmp_path / "data.csv")
    return tmp_path


def cli(folder: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": SRC, "CANDLEFLOW_DEBUG": ""}
    done = subprocess.run([sys.executable, "-m", "candleflow.cli", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


USES_PEEK = "exit: {close: {any: [death_cross, {above: [peek, 1000000000]}]}}"  # so that no warning says peek is unread


def strategy_with(workspace: Path, node: str) -> None:
    text = DEMO_STRATEGY.replace("signals:", f"  - {node}\nsignals:").replace("exit: {death_cross: close}", USES_PEEK)
    (workspace / "s.yaml").write_text(text)


def leak(workspace: Path, node: str) -> dict:
    strategy_with(workspace, node)
    code, out, err = cli(workspace, "check", "s.yaml")
    match = LEAK.fullmatch(err)
    assert (code, out) == (2, "") and match, err
    found = match.groupdict()
    assert (found["path"], found["node"]) == ("indicators[2]", "peek")
    return found


def test_shift_minus_one_is_caught_at_the_cut(workspace):
    found = leak(workspace, "{name: peek, component: next_close}")
    close = load_candles(workspace / "data.csv")["close"]
    cut = int(found["cut"])
    assert int(found["candle"]) == cut  # the last candle before the cut lacks its next one
    assert found["time"] == str(close.index[cut])
    assert (found["full"], found["prefix"]) == (f"{close.iloc[cut + 1]:.10g}", "NaN")


def test_a_centred_window_is_caught_two_candles_before_its_end(workspace):
    found = leak(workspace, "{name: peek, component: centred_mean}")
    close = load_candles(workspace / "data.csv")["close"].to_numpy()
    cut = int(found["cut"])
    assert int(found["candle"]) == cut - 1  # rolling(5, center=True) at j reads j-2..j+2: j = cut-1 is the first
    assert (found["full"], found["prefix"]) == (f"{close[cut - 3:cut + 2].mean():.10g}", "NaN")


def test_a_signal_deciding_on_the_next_close_is_caught(workspace):
    (workspace / "s.yaml").write_text(DEMO_STRATEGY.replace("rules:", "  - {name: peek, component: peek_up}\nrules:")
                                      .replace("entry: {golden_cross: buy}", "entry: {golden_cross: buy, up: buy}"))
    code, out, err = cli(workspace, "check", "s.yaml")
    match = re.fullmatch(r"error: s\.yaml: signals\[1\]: component 'peek': looks ahead: candle (\d+) \([^)]+\) is up "
                         r"with later candles, no signal without \(cut at (\d+)\)\n", err)
    assert code == 2 and match, err
    close = load_candles(workspace / "data.csv")["close"].to_numpy()
    assert match[1] == match[2] and close[int(match[1]) + 1] > close[int(match[1])]


def test_a_daily_node_is_caught_where_the_hours_see_it(workspace):
    found = leak(workspace, "{name: peek, component: next_close, timeframe: 1d}")
    candles = load_candles(workspace / "data.csv")
    cut, candle = int(found["cut"]), int(found["candle"])
    daily = resample.resample(candles, 86400, 0, 3600)["close"]
    seen = resample.align(daily.shift(-1), candles.index, 3600, 86400)
    assert candle <= cut and found["full"] == f"{seen.iloc[candle]:.10g}" and found["prefix"] == "NaN"
    prefix_days = resample.resample(candles.iloc[:cut + 1], 86400, 0, 3600)
    assert seen.index[candle] + pd.Timedelta(hours=1) == prefix_days.index[-1] + pd.Timedelta(days=1)


def not_deterministic(workspace: Path, node: str) -> int:
    """Check a strategy with ``node`` that must be reported as not deterministic; the candle named."""
    strategy_with(workspace, node)
    code, out, err = cli(workspace, "check", "s.yaml")
    match = re.fullmatch(r"error: s\.yaml: indicators\[2\]: component 'peek': is not deterministic: candle (\d+) "
                         r"\([^)]+\) is \S+ in one run, \S+ in another\n", err)
    assert (code, out) == (2, "") and match, err
    return int(match[1])


def test_unseeded_randomness_is_not_deterministic(workspace):
    assert not_deterministic(workspace, "{name: peek, component: noisy}") == 0


def test_a_script_reading_past_current_index_sees_nothing_there(workspace):
    """No lookback, and the script reads CANDLE_DATA[CURRENT_INDEX + 1]: candleflow never hands it that candle
    (CANDLE_DATA ends at the current one), so its values are the closes and the check finds no leak."""
    (workspace / "components" / "peek.py").write_text(PEEKING_SCRIPT)
    strategy_with(workspace, "{name: peek, component: script, path: components/peek.py}")
    code, out, err = cli(workspace, "check", "s.yaml")
    assert (code, err) == (0, "")
    assert re.search(rf"^peek +indicator +script:peek\.py +{SCRIPT_CUTS} \(last {SCRIPT_WINDOW} candles each\) +ok$",
                     out, re.M)
    result = run_backtest(workspace / "s.yaml", scheduler="sync")
    peek = result.indicators()["peek"]
    assert peek.equals(result.candles["close"].rename(peek.name))


def test_a_script_drawing_unseeded_random_numbers_is_not_deterministic(workspace):
    (workspace / "components" / "draw.py").write_text(RANDOM_SCRIPT)
    # the script's second run is its window on the last candles: the first of them differs
    node = "{name: peek, component: script, path: components/draw.py}"
    assert not_deterministic(workspace, node) == 300 - SCRIPT_WINDOW


def test_a_node_reading_a_reference_is_cut_with_it(workspace):
    write_candles(generate_candles(300, seed=9, price=4000.0), workspace / "spx.csv")
    text = DEMO_STRATEGY.replace("signals:", "  - {name: peek, component: next_close, inputs: [spx.close]}\n"
                                             "signals:")
    (workspace / "s.yaml").write_text("references: {spx: {path: spx.csv}}\n" + text)
    code, out, err = cli(workspace, "check", "s.yaml")
    assert code == 2 and "component 'peek': looks ahead:" in err and "NaN without" in err
    (workspace / "s.yaml").write_text("references: {spx: {path: spx.csv}}\n" + text.replace("next_close", "sma"))
    assert cli(workspace, "check", "s.yaml")[0] == 0


@pytest.mark.parametrize("strategy", ["trend_daily_filter", "reference"])
def test_alignment_showing_a_higher_candle_an_hour_early_is_caught(workspace, monkeypatch, strategy):
    """A bug in the alignment itself (not in a component): every daily or reference candle shown one base candle
    before it closes.  Only cutting the data finds it: the full run and a second run agree."""
    write_candles(generate_candles(300, seed=9, price=4000.0), workspace / "spx.csv")
    if strategy == "reference":
        text = "references: {spx: {path: spx.csv}}\n" + DEMO_STRATEGY.replace(
            "signals:", "  - {name: spx_sma, component: sma, params: {period: 3}, inputs: [spx.close]}\nsignals:")
    else:
        text = (ROOT / "strategies" / "trend_daily_filter.yaml").read_text().replace("data/EURUSD_1h.csv", "data.csv")
        write_candles(generate_candles(24 * 40, seed=3), workspace / "data.csv")  # 40 days: a daily SMA(20)
    (workspace / "s.yaml").write_text(text)
    compiled, _ = prepare(workspace / "s.yaml")
    candles = load_candles(workspace / "data.csv")
    assert check_lookahead(compiled, candles).nodes  # correct alignment: clean
    visible = resample.visible_positions
    monkeypatch.setattr(resample, "visible_positions",
                        lambda index, base, *rest: visible(index + pd.Timedelta(seconds=base), base, *rest))
    # the daily case with only the cut points just before a day closes: they alone catch it
    only = dict(cuts=0, event_cuts=0) if strategy == "trend_daily_filter" else {}
    with pytest.raises(LookAheadError, match="looks ahead: candle"):
        check_lookahead(compiled, candles, **only)


def test_cut_points_are_bounded_fixed_and_next_to_events(workspace):
    strategy_with(workspace, "{name: peek, component: sma}")
    compiled, _ = prepare(workspace / "s.yaml")
    candles = load_candles(workspace / "data.csv")
    result = run_backtest(workspace / "s.yaml", scheduler="sync")
    full = {**result.values}
    points, kinds = cut_points(compiled, full, candles, cuts=CUTS, event_cuts=EVENT_CUTS, seed=0)
    again, _ = cut_points(compiled, full, candles, cuts=CUTS, event_cuts=EVENT_CUTS, seed=0)
    assert points == again and kinds["random"] == CUTS and list(kinds) == ["random", "next to signal events"]
    assert len(points) <= CUTS + 2 * EVENT_CUTS and points == sorted(set(points))
    assert all(SCRIPT_WINDOW <= p <= len(candles) - 2 for p in points)
    bars = set(result.signals()["cross"]["bar"].tolist())
    assert len(bars) >= EVENT_CUTS  # so the events below are picked from many
    next_to_events = [p for p in points if p in bars or p + 1 in bars]
    assert len(next_to_events) >= EVENT_CUTS


def test_script_windows_see_what_the_whole_run_saw():
    """``windows`` runs only those candles, each range as one chunk; each candle gets the environment of the
    whole run, so its value is the whole run's."""
    candles = generate_candles(200, seed=5)
    script = ROOT / "components" / "indicators" / "sma.py"
    args = dict(kind="indicator", name="sma", candles=candles, symbol="EURUSD", timeframe="1h",
                params={"period": 5}, lookback=60)
    whole = run_script_component(script, **args)
    window = run_script_component(script, **args, windows=[(180, 200), (2, 10)])
    inside = np.zeros(200, dtype=bool)
    inside[180:200] = inside[2:10] = True
    assert window[~inside].isna().all() and whole.iloc[180:].notna().all()
    assert window[inside].equals(whole[inside])  # the first 4 are NaN in both: warm-up


EXAMPLES = ["ma_crossover", "ma_crossover_filtered", "mean_reversion", "trend_daily_filter", "donchian_breakout"]


def test_the_example_strategies_pass(tmp_path):
    """Every example in strategies/ (the script one on its first 1,000 candles, to keep the suite quick; the whole
    file takes ~20 s) exits 0 with its table; ``validate --deep`` runs the same check.  All at once."""
    head = load_candles(ROOT / "data" / "EURUSD_1h.csv").iloc[:1000]
    write_candles(head, tmp_path / "head.csv")
    runs = {name: ["check", f"strategies/{name}.yaml"] for name in EXAMPLES}
    runs["ma_crossover_script"] = ["check", "strategies/ma_crossover_script.yaml", "--data", str(tmp_path / "head.csv")]
    runs["validate"] = ["validate", "--deep", "strategies/ma_crossover.yaml"]
    env = {**os.environ, "PYTHONPATH": SRC, "CANDLEFLOW_DEBUG": ""}
    procs = {name: subprocess.Popen([sys.executable, "-m", "candleflow.cli", *args], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in runs.items()}
    heads = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert (proc.returncode, err) == (0, ""), (name, err)
        lines = out.splitlines()
        if name == "validate":
            assert lines[0].startswith("strategies/ma_crossover.yaml: ok (")
            lines = lines[1:]
        head_line, columns, *rows = lines
        assert head_line.startswith(f"strategies/{name if name != 'validate' else 'ma_crossover'}.yaml: no "
                                    f"look-ahead found: {len(rows)} nodes, ")
        assert re.search(r" \d+ cut points \(8 random, 1[56] next to signal events(, 3 just before a higher-timeframe "
                         r"candle closes)?\), 2 full runs equal", head_line), head_line
        assert columns.split() == ["node", "kind", "component", "cut", "points", "result"]
        assert rows and all(row.endswith("  ok") for row in rows)
        heads[name] = head_line
    assert "3 just before a higher-timeframe candle closes" in heads["trend_daily_filter"]


def test_validate_deep_exits_2_on_a_leak(workspace):
    strategy_with(workspace, "{name: peek, component: next_close}")
    code, out, err = cli(workspace, "validate", "--deep", "s.yaml")
    assert code == 2 and out.startswith("s.yaml: ok (") and LEAK.fullmatch(err)
    assert cli(workspace, "validate", "s.yaml")[0] == 0  # without --deep nothing runs


def test_signal_differences_name_the_events_and_when_the_types_agree_their_strength():
    full = make_signal_frame([3, 7, 9], ["up", "up", "down"], [1.0, 0.5, 1.0])
    assert _difference(full, make_signal_frame([3, 9], ["up", "down"]), 0, 9) == (7, "up", "no signal")
    stronger = make_signal_frame([3, 7], ["up", "up"], [1.0, 0.8])
    assert _difference(full, stronger, 0, 8) == (7, "up (strength 0.5, metadata None)",
                                                  "up (strength 0.8, metadata None)")
    assert _difference(full, stronger, 0, 6) is None  # only candles 0..6 compared


def test_no_cut_point_is_a_warning(workspace):
    strategy_with(workspace, "{name: peek, component: next_close}")
    code, out, err = cli(workspace, "check", "s.yaml", "--cuts", "0", "--event-cuts", "0")
    assert code == 0
    assert out.startswith("s.yaml: deterministic, look-ahead not checked: 7 nodes, 300 candles, 0 cut points, ")
    assert err == ("warning: s.yaml: no cut point tried (300 candles; --cuts and --event-cuts 0 and 0): only two full "
                   "runs were compared, so look-ahead was not checked\n")
