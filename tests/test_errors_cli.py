"""Bad strategies through the real CLI: one exact line on stderr, exit code 2, no traceback, no output files.

Every case starts from a valid strategy (``GOOD``, proven to run by
``test_the_good_strategy_runs``) and breaks one thing, so each message below is
the whole of what a user sees.  The messages name the file and the YAML path
(or the template line); they are copied from the code after checking that each
one says what is wrong, where, and how to fix it when that is not obvious.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from candleflow.cli import main
from candleflow.data import generate_candles, write_candles

GOOD = """\
name: demo
symbol: EURUSD
timeframe: 1h
data: {path: data.csv}
indicators:
  - {name: fast, component: sma, params: {period: 5}}
  - {name: slow, component: sma, params: {period: 20}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules:
  entry: {golden_cross: buy}
  exit: {death_cross: close}
"""

FAST = "{name: fast, component: sma, params: {period: 5}}"
SLOW = "{name: slow, component: sma, params: {period: 20}}"
KNOWN_INDICATORS = ("adx, atr, bollinger, cci, donchian, ema, highest, hma, keltner, lowest, macd, obv, roc, rsi, sma, "
                    "stddev, stoch, vwap, wma")


def edit(old: str, new: str, base: str = GOOD) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A workspace (has components/) holding a small valid data file; the cwd, so paths print short."""
    (tmp_path / "components").mkdir()
    write_candles(generate_candles(120, seed=3), tmp_path / "data.csv")
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(capsys, workspace: Path, text: str, *extra: str, command: str = "run"):
    """Write ``text`` to s.yaml and run ``candleflow <command> s.yaml ...``; return (code, stdout, stderr)."""
    (workspace / "s.yaml").write_text(text, encoding="utf-8")
    args = [command, "s.yaml"]
    if command == "run":
        args += ["--out", "out", "--cache-dir", "cache", "--scheduler", "sync", "-q"]
    code = main(args + list(extra))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, out: str, err: str, expected: str, workspace: Path) -> None:
    assert "Traceback" not in out + err
    assert err == f"error: {expected}\n", err  # exactly one line
    assert code == 2
    out_dir = workspace / "out"
    assert not out_dir.exists() or not any(out_dir.iterdir()), sorted(out_dir.iterdir())


def test_the_good_strategy_runs(capsys, workspace):
    code, out, err = run_cli(capsys, workspace, GOOD)
    assert (code, err) == (0, "")
    assert (workspace / "out" / "metrics.json").is_file()


# (id, strategy text, extra CLI args, expected message after "error: ")
CASES = [
    # --- the file itself --------------------------------------------------------------------------------------------
    ("empty", "", [], "s.yaml: strategy file is empty"),
    ("only-comments", "# TODO: write me\n", [], "s.yaml: strategy file is empty"),
    ("yaml-unclosed-bracket", "name: [demo\n", [],
     "s.yaml: line 2, column 1: invalid YAML: did not find expected ',' or ']'"),
    ("yaml-bad-indent", edit("symbol: EURUSD", "  symbol: EURUSD"), [],
     "s.yaml: line 2, column 9: invalid YAML: mapping values are not allowed in this context"),
    ("yaml-tab", edit("symbol: EURUSD", "\tsymbol: EURUSD"), [],
     "s.yaml: line 2, column 1: invalid YAML: found a tab character that violates indentation"),
    ("yaml-duplicate-key", GOOD + "name: again\n", [], "s.yaml: line 13: duplicate key 'name' (first at line 1)"),
    ("yaml-two-documents", GOOD + "---\nname: other\n", [],
     "s.yaml: line 13, column 1: invalid YAML: but found another document"),
    ("top-level-list", "- name: demo\n- symbol: EURUSD\n", [], "s.yaml: top level must be a mapping, not list"),
    ("top-level-scalar", "just some text\n", [], "s.yaml: top level must be a mapping, not str"),
    # --- wrong types ------------------------------------------------------------------------------------------------
    ("cash-not-a-number", GOOD + "initial_cash: lots\n", [],
     "s.yaml: initial_cash: Input should be a valid number, unable to parse string as a number, got 'lots'"),
    ("name-not-a-string", edit("name: demo", "name: 5"), [], "s.yaml: name: Input should be a valid string, got 5"),
    ("indicators-not-a-list", edit(f"  - {FAST}\n  - {SLOW}\n", "").replace("indicators:", "indicators: 5"), [],
     "s.yaml: indicators: Input should be a valid list, got 5"),
    ("indicator-not-a-mapping", edit(f"  - {FAST}", "  - fast"), [],
     "s.yaml: indicators[0]: expected a mapping (key: value pairs), got 'fast'"),
    ("params-not-a-mapping", edit("params: {period: 5}", "params: 5"), [],
     "s.yaml: indicators[0].params: Input should be a valid dictionary, got 5"),
    ("inputs-neither-list-nor-mapping", edit("inputs: [fast, slow]", "inputs: 5"), [],
     "s.yaml: signals[0].inputs: Input should be a valid list or a valid dictionary, got 5"),
    ("input-not-a-string", edit("inputs: [fast, slow]", "inputs: [[fast], slow]"), [],
     "s.yaml: signals[0].inputs[0]: Input should be a valid string"),
    ("bad-rule-action", edit("golden_cross: buy", "golden_cross: purchase"), [],
     "s.yaml: rules.entry.golden_cross: Input should be 'buy' or 'sell', got 'purchase'"),
    ("bad-timeframe", edit("timeframe: 1h", "timeframe: 1 hour"), [],
     "s.yaml: timeframe: timeframe '1 hour' not understood; use e.g. 1m, 15m, 1h, 4h, 1d"),
    ("bad-node-name", edit("name: fast,", "name: 1fast,"), [],
     "s.yaml: indicators[0].name: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$', got '1fast'"),
    ("fraction-above-one", GOOD + "sizing: {method: fraction, value: 2}\n", [],
     "s.yaml: sizing.value: fraction sizing takes a value in (0, 1] (a fraction of equity), got 2.0"),
    # --- unknown keys (every model is strict) -----------------------------------------------------------------------
    ("unknown-top-level-key", GOOD + "colour: red\n", [],
     "s.yaml: colour: unknown key (check the spelling; see README for the schema)"),
    ("unknown-key-starting-with-int", GOOD + "interval: 1h\n", [],
     "s.yaml: interval: unknown key (check the spelling; see README for the schema)"),
    ("unknown-nested-key", GOOD + "execution: {fill: next_open, comission: 0.001}\n", [],
     "s.yaml: execution.comission: unknown key (check the spelling; see README for the schema)"),
    ("unknown-key-in-node", edit("params: {period: 5}", "parms: {period: 5}"), [],
     "s.yaml: indicators[0].parms: unknown key (check the spelling; see README for the schema)"),
    # --- missing fields ---------------------------------------------------------------------------------------------
    ("missing-name", edit("name: demo\n", ""), [], "s.yaml: name: required field missing"),
    ("missing-rules", edit("rules:\n  entry: {golden_cross: buy}\n  exit: {death_cross: close}\n", ""), [],
     "s.yaml: rules: required field missing"),
    ("missing-component", edit("component: sma, params: {period: 5}", "params: {period: 5}"), [],
     "s.yaml: indicators[0].component: required field missing"),
    ("data-path-and-sample", edit("{path: data.csv}", "{path: data.csv, sample: eurusd_1h}"), [],
     "s.yaml: data: give exactly one of 'path' or 'sample'"),
    ("unknown-sample", edit("{path: data.csv}", "{sample: eurusd_5m}"), [],
     "s.yaml: data.sample: unknown sample 'eurusd_5m' (samples: eurusd_1h)"),
    # --- graph: components, names, inputs ---------------------------------------------------------------------------
    ("unknown-component", edit("component: sma, params: {period: 5}", "component: smaa, params: {period: 5}"), [],
     f"s.yaml: indicators[0].component: unknown indicator component 'smaa' (known: {KNOWN_INDICATORS}; "
     f"or component: script with a path)"),
    ("signal-listed-as-indicator", edit("component: sma, params: {period: 5}", "component: ma_crossover"), [],
     "s.yaml: indicators[0].component: 'ma_crossover' is a signal component, not an indicator; list it under signals"),
    ("duplicate-node-name", edit(SLOW, "{name: fast, component: ema, params: {period: 20}}",
                                 edit("inputs: [fast, slow]", "inputs: [fast, fast]")), [],
     "s.yaml: indicators[1].name: duplicate name 'fast' (already used by indicators[0])"),
    ("reserved-node-name", edit("name: fast,", "name: close,", edit("[fast, slow]", "[close, slow]")), [],
     "s.yaml: indicators[0].name: 'close' is reserved; pick another name"),
    ("cycle-of-two", edit(SLOW, "{name: slow, component: sma, params: {period: 20}, inputs: [fast]}",
                          edit(FAST, "{name: fast, component: sma, params: {period: 5}, inputs: [slow]}")), [],
     "s.yaml: indicators[0].inputs: inputs form a cycle: fast -> slow -> fast"),
    ("cycle-of-one", edit(FAST, "{name: fast, component: ema, params: {period: 5}, inputs: [fast]}"), [],
     "s.yaml: indicators[0].inputs: inputs form a cycle: fast -> fast"),
    ("input-names-missing-node", edit("inputs: [fast, slow]", "inputs: [fast, sma_200]"), [],
     "s.yaml: signals[0].inputs[1]: unknown indicator 'sma_200'"),
    ("input-names-missing-output", edit("inputs: [fast, slow]", "inputs: [fast.upper, slow]"), [],
     "s.yaml: signals[0].inputs[0]: indicator 'fast' has one output; write 'fast', not 'fast.upper'"),
    ("input-names-a-signal", edit("signals:\n", "signals:\n  - {name: again, component: ma_crossover, "
                                               "inputs: [cross, slow]}\n"), [],
     "s.yaml: signals[0].inputs[0]: 'cross' is a signal; inputs must be indicators or candle columns"),
    ("too-many-inputs", edit("inputs: [fast, slow]", "inputs: [fast, slow, close]"), [],
     "s.yaml: signals[0].inputs: ma_crossover takes 2 input(s) (fast, slow), got 3"),
    ("unknown-named-input", edit("inputs: [fast, slow]", "inputs: {fast: fast, slowest: slow}"), [],
     "s.yaml: signals[0].inputs.slowest: ma_crossover has no input 'slowest' (inputs: fast, slow)"),
    # --- params -----------------------------------------------------------------------------------------------------
    ("unknown-param", edit("params: {period: 5}", "params: {period: 5, smoothing: 2}"), [],
     "s.yaml: indicators[0].params.smoothing: unknown parameter; sma takes: period"),
    ("param-wrong-type", edit("params: {period: 5}", "params: {period: five}"), [],
     "s.yaml: indicators[0].params.period: Input should be a valid integer, unable to parse string as an integer, "
     "got 'five'"),
    ("param-out-of-range", edit("params: {period: 5}", "params: {period: 0}"), [],
     "s.yaml: indicators[0].params.period: Input should be greater than or equal to 1, got 0"),
    # --- rules ------------------------------------------------------------------------------------------------------
    ("rule-type-nobody-emits", edit("golden_cross: buy", "moon_landing: buy"), [],
     "s.yaml: rules.entry.moon_landing: no signal emits 'moon_landing' (emitted: death_cross, golden_cross)"),
    ("qualified-rule-type-not-emitted", edit("death_cross: close", "cross.overbought: close"), [],
     "s.yaml: rules.exit.cross.overbought: signal 'cross' never emits 'overbought' (it emits: golden_cross, "
     "death_cross)"),
    ("rule-names-non-signal-node", edit("golden_cross: buy", "fast.golden_cross: buy"), [],
     "s.yaml: rules.entry.fast.golden_cross: 'fast' is not a signal node (signals: cross)"),
    ("no-entry-rule", edit("entry: {golden_cross: buy}", "entry: {}"), [],
     "s.yaml: rules.entry: no entry rule: map a signal type to buy or sell"),
    # --- several mistakes are reported together ---------------------------------------------------------------------
    ("three-mistakes", edit("golden_cross: buy", "moon: buy", edit(
        "params: {period: 20}", "params: {period: 20, x: 1}",
        edit("component: sma, params: {period: 5}", "component: smaa, params: {period: 5}"))), [],
     f"s.yaml: indicators[0].component: unknown indicator component 'smaa' (known: {KNOWN_INDICATORS}; or "
     f"component: script with a path) (and 2 more: indicators[1].params.x: unknown parameter; sma takes: period; "
     f"rules.entry.moon: no signal emits 'moon' (emitted: death_cross, golden_cross))"),
    # --- templates and --set ----------------------------------------------------------------------------------------
    ("template-undefined-variable", edit("period: 5", "period: {{ fast }}"), [],
     "s.yaml: line 6: template variable 'fast' is undefined; pass it with --set NAME=VALUE or in the sweep grid"),
    ("template-other-variable-set", edit("period: 5", "period: {{ fast }}"), ["--set", "slow=20"],
     "s.yaml: line 6: template variable 'fast' is undefined; pass it with --set NAME=VALUE or in the sweep grid"),
    ("template-bad-expression", edit("period: 5", "period: {{ fast + }}"), ["--set", "fast=5"],
     "s.yaml: line 6: template syntax error: unexpected 'end of print statement'"),
    ("template-unclosed-if", edit("name: demo\n", "name: demo\n{% if fast %}\n"), ["--set", "fast=5"],
     "s.yaml: line 2: template syntax error: Unexpected end of template. Jinja was looking for the following tags: "
     "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."),
    ("template-unknown-filter", edit("period: 5", "period: {{ fast | double }}"), ["--set", "fast=5"],
     "s.yaml: line 6: template syntax error: No filter named 'double'."),
    ("template-attribute-of-a-number", edit("period: 5", "period: {{ fast.value }}"), ["--set", "fast=5"],
     "s.yaml: line 6: template error: 'int object' has no attribute 'value'"),
    ("template-division-by-zero", edit("period: 5", "period: {{ fast / 0 }}"), ["--set", "fast=5"],
     "s.yaml: line 6: template error: ZeroDivisionError: division by zero"),
    ("template-value-wrong-type", edit("period: 5", "period: {{ fast }}"), ["--set", "fast=abc"],
     "s.yaml: indicators[0].params.period: Input should be a valid integer, unable to parse string as an integer, "
     "got 'abc'"),
    ("set-without-equals", edit("period: 5", "period: {{ fast }}"), ["--set", "fast"],
     "--set expects NAME=VALUE, got 'fast'"),
    ("set-value-not-yaml", edit("period: 5", "period: {{ fast }}"), ["--set", "fast=[5"],
     "--set fast: value '[5' is not valid YAML (did not find expected ',' or ']'); "
     "quote it, e.g. --set 'fast=\"[5\"'"),
    # --- data named by the strategy ---------------------------------------------------------------------------------
    ("data-file-missing", edit("{path: data.csv}", "{path: data/missing.csv}"), [],
     "s.yaml: data.path: data file 'data/missing.csv' not found (relative paths start at the workspace {workspace})"),
]


@pytest.mark.parametrize("text, extra, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_strategy(capsys, workspace, text, extra, expected):
    code, out, err = run_cli(capsys, workspace, text, *extra)
    assert_user_error(code, out, err, expected.format(workspace=workspace), workspace)


def test_validate_reports_the_same_line(capsys, workspace):
    code, out, err = run_cli(capsys, workspace, edit("inputs: [fast, slow]", "inputs: [fast, sma_200]"),
                             command="validate")
    assert (code, out, err) == (2, "", "error: s.yaml: signals[0].inputs[1]: unknown indicator 'sma_200'\n")


def test_missing_strategy_file(capsys, workspace):
    code = main(["run", "nope.yaml", "--out", "out", "-q"])
    out, err = capsys.readouterr()
    assert_user_error(code, out, err, "nope.yaml: strategy file not found", workspace)


def test_usage_errors_exit_2_without_traceback(capsys, workspace):
    for args, line in [(["frobnicate"], "error: No such command 'frobnicate'. (see 'candleflow --help')"),
                       (["run"], "error: Missing argument 'strategy'. (see 'candleflow run --help')"),
                       (["sweep", "s.yaml", "--grid", "g.yaml", "--workers", "0"],
                        "error: Invalid value for '--workers': Input should be greater than or equal to 1 "
                        "(see 'candleflow sweep --help')")]:
        code = main(args)
        out, err = capsys.readouterr()
        assert (code, out, err) == (2, "", line + "\n")


def test_debug_adds_the_traceback(capsys, workspace):
    (workspace / "s.yaml").write_text("")
    assert main(["--debug", "validate", "s.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: s.yaml: strategy file is empty\n") and "Traceback" in err


def _candleflow() -> list[str]:
    exe = shutil.which("candleflow")
    return [exe] if exe else [sys.executable, "-m", "candleflow.cli"]


def test_real_subprocess_exit_code_2_and_no_traceback(workspace):
    """The installed ``candleflow`` script, two processes in parallel: a graph error and a data error."""
    (workspace / "graph.yaml").write_text(edit("inputs: [fast, slow]", "inputs: [fast, sma_200]"))
    (workspace / "good.yaml").write_text(GOOD)
    (workspace / "bad.csv").write_text("time,open,high,low,close\n2024-01-01T00:00:00Z,1.1,1.0,1.2,1.1\n")
    runs = {
        "graph.yaml: signals[0].inputs[1]: unknown indicator 'sma_200'": ["run", "graph.yaml", "--out", "out"],
        "bad.csv: row 2: high 1.0 < low 1.2": ["run", "good.yaml", "--data", "bad.csv", "--out", "out"],
    }
    env = {**os.environ, "CANDLEFLOW_DEBUG": ""}
    procs = {msg: subprocess.Popen(_candleflow() + args, cwd=workspace, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for msg, args in runs.items()}
    for message, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert "Traceback" not in out + err
        assert err == f"error: {message}\n"
        assert proc.returncode == 2
    assert not (workspace / "out").exists()


# --- script components that misbehave --------------------------------------------------------------------------------
# The failing scripts are the script runner's own (tests/scripts/), copied into the workspace: a strategy may only
# point at scripts inside it.  The runner's own tests check each failure in detail; here each one must come out of
# the CLI as one line naming the node and the candle, exit 2, no output files.

SCRIPTS = Path(__file__).resolve().parent / "scripts"
SCRIPT_STRATEGY = """\
name: scripted
symbol: EURUSD
timeframe: 1h
data: {path: data.csv}
signals:
  - {name: custom, component: script, path: components/%s}
rules: {entry: {anything: buy}}
"""

SCRIPT_CASES = [
    ("raises.py", "candle 5: script raised ValueError: boom at five (line 5)"),
    ("exits_nonzero.py", "candle 7: script exited with code 3 (giving up)"),
    ("prints_nothing.py", "candle 11: printed no SIGNAL_START/SIGNAL_END block on any of 12 candles "
                          "(last stdout: (empty))"),
    ("garbage.py", "candle 4: invalid JSON between SIGNAL_START and SIGNAL_END: Expecting property name enclosed in "
                   "double quotes at line 1 column 3 ([{'not': json}])"),
    ("two_blocks.py", "candle 6: printed 2 SIGNAL_START/SIGNAL_END blocks; expected one per candle "
                      "(SIGNAL_START | [] | SIGNAL_END | SIGNAL_START | [] | SIGNAL_END)"),
    ("huge_output.py", "candle 3: printed more than the 1 MiB (1048576 characters) allowed on stdout per candle "
                       f"({'x' * 200})"),
    ("sleeps.py", "candle 2: timed out after 1 s (at line 7)"),
    ("future_timestamp.py", "candle 8: signal timestamp 2024-01-01T09:00:00+00:00 is after the current candle's time "
                            "2024-01-01T08:00:00+00:00 (look-ahead) ([{\"timestamp\": 1704099600, \"signal_type\": "
                            "\"peek\", \"strength\": 1.0, \"metadata\": null}])"),
]


@pytest.fixture(scope="module")
def script_pool():
    """One warm worker pool for the whole subset, shut down (no process left) at the end."""
    script = pytest.importorskip("candleflow.components.script")
    yield
    script.shutdown_pool()


@pytest.fixture
def script_workspace(workspace, script_pool):
    candles = generate_candles(12, seed=3)
    candles.index = pd.date_range("2024-01-01", periods=12, freq="h", tz="UTC", name="time")
    write_candles(candles, workspace / "data.csv")
    for script in SCRIPTS.glob("*.py"):
        shutil.copy(script, workspace / "components" / script.name)
    (workspace / "components" / "prints_nothing.py").write_text("# prints nothing at all\n")
    return workspace


@pytest.mark.parametrize("script, expected", SCRIPT_CASES, ids=[c[0].removesuffix(".py") for c in SCRIPT_CASES])
def test_failing_script_component(capsys, script_workspace, script, expected):
    code, out, err = run_cli(capsys, script_workspace, SCRIPT_STRATEGY % script, "--timeout", "1")
    assert err == "error: s.yaml: signals[0]: component 'custom': " + expected + "\n"
    assert err.count("\n") == 1 and code == 2
    assert "Traceback" not in out + err
    out_dir = script_workspace / "out"
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_debug_is_accepted_after_the_command(capsys, workspace):
    code, out, err = run_cli(capsys, workspace, "", "--debug", command="validate")
    assert code == 2 and err.startswith("error: s.yaml: strategy file is empty\n") and "Traceback" in err
