"""Reference data (another symbol, an index) as inputs: as-of alignment by close time, errors, memo keys, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from candleflow.cli import main
from candleflow.config import parse_strategy
from candleflow.dag.build import build, node_keys
from candleflow.dag.compiler import compile_strategy
from candleflow.data import generate_candles, write_candles
from candleflow.errors import CompileError
from candleflow.nodes.compute import run_node
from candleflow.results import read_results
from candleflow.vocab import CANDLES, EVALUATOR

HOUR = 3600


def _compiled(workspace: Path, references: str, nodes: str, signals: str = ""):
    signals = signals or "  - {name: zz, component: ma_crossover, inputs: [close, close]}\n"
    text = (f"name: t\nsymbol: X\ntimeframe: 1h\ndata: {{sample: eurusd_1h}}\nreferences: {references}\n"
            f"indicators:\n{nodes}signals:\n{signals}rules: {{entry: {{golden_cross: buy}}}}\n")
    return compile_strategy(parse_strategy(text), workspace=workspace)


def _run_all(compiled, candles: pd.DataFrame, references: dict[str, pd.DataFrame]) -> dict:
    values = dict(references)
    for name in compiled.order():
        if name in (CANDLES, EVALUATOR) or name in references:
            continue
        upstream = {p: values[p] for p in compiled.graph.predecessors(name) if p != CANDLES}
        values[name] = run_node(compiled.plans[name], candles, upstream, symbol="X", timeframe="1h")
    return values


def _gappy(n: int, seed: int, drop: float, **kwargs) -> pd.DataFrame:
    candles = generate_candles(n, seed=seed, **kwargs)
    keep = np.random.default_rng(seed + 1).random(n) >= drop
    keep[0] = True
    return candles[keep]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 300), seed=st.integers(0, 10_000), drop=st.sampled_from([0.0, 0.3, 0.8]),
       ref_hours=st.sampled_from([1, 4, 24]), shift=st.integers(-30, 30), data=st.data())
def test_reference_value_is_the_last_closed_reference_candle(tmp_path, n, seed, drop, ref_hours, shift, data):
    candles = _gappy(n, seed, drop)
    start = candles.index[0] + pd.Timedelta(hours=shift)
    ref = _gappy(max(2, n // ref_hours), seed + 7, drop, price=4000.0, start=str(start))
    ref.index = pd.DatetimeIndex(start + pd.Timedelta(hours=ref_hours) * np.arange(len(ref)), name="time")
    write_candles(ref, tmp_path / "ref.csv")
    compiled = _compiled(tmp_path, f"{{spx: {{path: ref.csv, timeframe: {ref_hours}h}}}}",
                         "  - {name: s, component: sma, params: {period: 3}, inputs: [spx.close]}\n",
                         "  - {name: x, component: ma_crossover, inputs: [close, spx.close]}\n")
    values = _run_all(compiled, candles, {"spx": ref})
    ref_close = ref.index + pd.Timedelta(hours=ref_hours)
    for i in sorted(set(data.draw(st.lists(st.integers(0, len(candles) - 1), min_size=1, max_size=8)))):
        known = ref[ref_close <= candles.index[i] + pd.Timedelta(hours=1)]  # closed by candle i's close
        # the value computed from base candles 0..i and the reference candles closed by then, alone
        prefix = _run_all(compiled, candles.iloc[: i + 1], {"spx": known})
        np.testing.assert_array_equal(values["s"].iloc[: i + 1], prefix["s"])
        pd.testing.assert_frame_equal(values["x"][values["x"]["bar"] <= i].reset_index(drop=True),
                                      prefix["x"].reset_index(drop=True))
        # and the sma reads, at candle i, the close of the last closed reference candle (as-of, no fill beyond)
        asof = pd.merge_asof(pd.DataFrame({"t": candles.index[: i + 1] + pd.Timedelta(hours=1)}),
                             pd.DataFrame({"t": ref_close, "close": ref["close"].to_numpy()}), on="t")
        expected = asof["close"].rolling(3).mean().to_numpy()[-1]
        np.testing.assert_allclose(values["s"].iloc[i], expected, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("references, nodes, path, words", [
    ("{spx: {path: nope.csv}}", "  - {name: s, component: sma, inputs: [spx.close]}\n", "references.spx.path",
     "file 'nope.csv' not found"),
    ("{spx: {path: ref.csv}}", "  - {name: s, component: sma, inputs: [spx.vwap]}\n", "indicators[0].inputs[0]",
     "reference 'spx' has the candle columns open, high, low, close, volume; write e.g. 'spx.close'"),
    ("{spx: {path: ref.csv}}", "  - {name: s, component: sma, inputs: [spy.close]}\n", "indicators[0].inputs[0]",
     "unknown indicator 'spy.close'"),
    ("{spx: {path: ref.csv}}", "  - {name: spx, component: sma}\n", "indicators[0].name",
     "duplicate name 'spx' (already used by references.spx)"),
    ("{close: {path: ref.csv}}", "  - {name: s, component: sma}\n", "references.close", "is reserved"),
    ("{spx: {path: ref.csv}}", "  - {name: s, component: sma, inputs: [spx.close], timeframe: 1d}\n",
     "indicators[0].inputs[0]", "'spx' is a reference; a higher-timeframe node reads candle columns"),
])
def test_bad_references_are_one_error_with_their_path(tmp_path, references, nodes, path, words):
    write_candles(generate_candles(30), tmp_path / "ref.csv")
    with pytest.raises(CompileError) as caught:
        _compiled(tmp_path, references, nodes)
    assert caught.value.path == path and words in str(caught.value)


def test_reference_candles_are_content_keyed(tmp_path):
    write_candles(generate_candles(30, seed=1), tmp_path / "ref.csv")
    nodes = "  - {name: s, component: sma, inputs: [spx.close]}\n"
    first = node_keys(_compiled(tmp_path, "{spx: {path: ref.csv}}", nodes), "candles-k")
    again = node_keys(_compiled(tmp_path, "{spx: {path: ref.csv}}", nodes), "candles-k")
    write_candles(generate_candles(30, seed=2), tmp_path / "ref.csv")
    changed = node_keys(_compiled(tmp_path, "{spx: {path: ref.csv}}", nodes), "candles-k")
    assert first == again and first["spx"] != changed["spx"] and first["s"] != changed["s"]
    work = build(_compiled(tmp_path, "{spx: {path: ref.csv}}", nodes), "candles-k")
    assert "spx" not in work.nodes and changed["spx"] in work.dsk  # data, not a task


def test_cli_runs_with_a_reference_and_reports_a_bad_one_in_one_line(tmp_path, repo, capsys):
    ref = generate_candles(24 * 30, seed=3, price=4000.0, start="2023-01-01T12:00:00Z")
    write_candles(ref, tmp_path / "SPX_1h.csv")
    text = (f"name: t\nsymbol: EURUSD\ntimeframe: 1h\ndata: {{path: {repo / 'data' / 'EURUSD_1h.csv'}}}\n"
            "references: {spx: {path: SPX_1h.csv}}\n"
            "indicators:\n  - {name: spx_sma, component: sma, params: {period: 24}, inputs: [spx.close]}\n"
            "signals:\n  - {name: risk, component: ma_crossover, inputs: [spx.close, spx_sma]}\n"
            "rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}\n")
    (tmp_path / "s.yaml").write_text(text)
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--no-cache"]) == 0
    indicators = read_results(tmp_path / "out")["indicators"]
    # an hourly reference candle opening at t closes at t + 1h: the EURUSD candle opening at t sees it;
    # EURUSD starts 2023-01-02 00:00, so the first 24-candle mean is at 23:00, of the references 00:00..23:00
    assert indicators["spx_sma"].first_valid_index() == pd.Timestamp("2023-01-02T23:00", tz="UTC")
    expected = ref.loc["2023-01-02T00:00":"2023-01-02T23:00", "close"].mean()
    assert indicators.loc["2023-01-02T23:00", "spx_sma"] == pytest.approx(expected, rel=1e-12)
    capsys.readouterr()
    (tmp_path / "SPX_1h.csv").write_text("time,open,high,low,close,volume\n2023-01-01T00:00:00Z,1,0.5,1,1,1\n")
    assert main(["run", str(tmp_path / "s.yaml"), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "SPX_1h.csv" in err
