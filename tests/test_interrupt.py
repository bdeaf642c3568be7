"""Ctrl-C (SIGINT) and SIGTERM in the middle of a real ``candleflow run``: clean exit, no partial results.

The strategy has a deliberately slow workspace indicator that depends on a fast
one, so when the slow one announces it has started (a marker file) the fast one
is already computed and cached, and the run is certainly not finished.  After the
signal: exit code 130 (SIGINT) or 143 (SIGTERM), one line on stderr, no result
files in ``--out``, no temp files, every cache entry readable, and a second run
succeeds and reuses the cached nodes.  Both signals run at once (one with the
threaded scheduler, one with the synchronous one) to keep the test short.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from candleflow.cli import main
from candleflow.data import generate_candles, write_candles
from candleflow.results import FILES

SLOW = """\
import os
import time
from pathlib import Path

from candleflow import indicator


@indicator("slow_sma")
def slow_sma(close, *, period: int = 5):
    marker = os.environ.get("SLOW_MARKER")
    if marker:
        Path(marker).write_text("started")
    deadline = time.monotonic() + float(os.environ.get("SLOW_SECONDS", "0"))
    while time.monotonic() < deadline:
        time.sleep(0.02)
    return close.rolling(period, min_periods=period).mean()
"""

STRATEGY = """\
name: slow_demo
symbol: EURUSD
timeframe: 1h
data: {path: data.csv}
indicators:
  - {name: fast, component: sma, params: {period: 5}}
  - {name: slow, component: slow_sma, inputs: [fast], params: {period: 10}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
"""

MESSAGES = {
    signal.SIGINT: "candleflow: interrupted; no partial result files were written\n",
    signal.SIGTERM: "candleflow: terminated (SIGTERM); no partial result files were written\n",
}


def make_workspace(root: Path) -> Path:
    (root / "components").mkdir(parents=True)
    (root / "components" / "slow.py").write_text(SLOW)
    (root / "s.yaml").write_text(STRATEGY)
    write_candles(generate_candles(300, seed=4), root / "data.csv")
    return root


def _candleflow() -> list[str]:
    exe = shutil.which("candleflow")
    return [exe] if exe else [sys.executable, "-m", "candleflow.cli"]


def cache_entries(cache: Path) -> dict[str, object]:
    """Every cache entry by key; fails if one is torn (does not verify) or a temp file was left behind."""
    from candleflow.dag.cache import SUFFIX, read_entry

    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != SUFFIX]
    return {path.stem: read_entry(path.read_bytes(), path.stem, None) for path in cache.rglob(f"*{SUFFIX}")}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_and_sigterm_mid_run_leave_no_partial_results(tmp_path, monkeypatch):
    # the threaded run's slow node finishes its sleep in its worker thread before the process can exit
    runs = {signal.SIGINT: ("threads", "2"), signal.SIGTERM: ("sync", "60")}
    procs = {}
    for signum, (scheduler, seconds) in runs.items():
        ws = make_workspace(tmp_path / signum.name)
        env = {**os.environ, "SLOW_SECONDS": seconds, "SLOW_MARKER": str(ws / "started"), "CANDLEFLOW_DEBUG": ""}
        procs[signum] = (ws, subprocess.Popen(
            _candleflow() + ["run", "s.yaml", "--out", "out", "--cache-dir", "cache", "--scheduler", scheduler],
            cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

    pending = dict(procs)
    deadline = time.monotonic() + 90
    while pending and time.monotonic() < deadline:
        for signum, (ws, proc) in list(pending.items()):
            if (ws / "started").exists():
                assert proc.poll() is None, proc.communicate()
                proc.send_signal(signum)
                del pending[signum]
            elif proc.poll() is not None:
                pytest.fail(f"{signum.name} run ended before the slow node started: {proc.communicate()}")
        time.sleep(0.02)
    assert not pending, "the slow node never started"

    for signum, (ws, proc) in procs.items():
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in out + err
        assert err == MESSAGES[signum]
        assert proc.returncode == 128 + signum
        assert not (ws / "out").exists() or not any((ws / "out").iterdir())
        entries = cache_entries(ws / "cache")
        assert any(key.startswith("fast-") for key in entries)  # completed before the signal

        # a second run (in-process) succeeds and reuses every node the interrupted one completed
        monkeypatch.chdir(ws)
        monkeypatch.setenv("SLOW_SECONDS", "0")
        assert main(["run", "s.yaml", "--out", "out", "--cache-dir", "cache", "--scheduler", "sync", "-q"]) == 0
        nodes = {node["key"]: node for node in json.loads((ws / "out" / "nodes.json").read_text())}
        assert {key: nodes[key]["cache"] for key in entries} == {key: "hit" for key in entries}
        assert nodes[next(k for k in nodes if k.startswith("slow-"))]["status"] == "ok"
        assert set(FILES) <= {p.name for p in (ws / "out").iterdir()}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_interrupt_while_writing_results_leaves_all_or_nothing(tmp_path, monkeypatch):
    """A Ctrl-C arriving between result files (simulated: as the 3rd one is written) leaves the old set, untouched."""
    ws = make_workspace(tmp_path)
    monkeypatch.chdir(ws)
    args = ["run", "s.yaml", "--out", "out", "--no-cache", "--scheduler", "sync", "-q"]
    assert main(args) == 0
    old = snapshot(ws / "out")
    (ws / "s.yaml").write_text(STRATEGY.replace("period: 5", "period: 6"))  # the next set differs

    real = Path.write_text
    staged = []

    def interrupted_third(path, *a, **k):
        if path.parent.name.endswith(".candleflow-new"):
            staged.append(path.name)
            if len(staged) == 3:
                raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(Path, "write_text", interrupted_third)
    assert main(args) == 130
    monkeypatch.undo()
    assert len(staged) == 3
    assert snapshot(ws / "out") == old
    assert sorted(p.name for p in ws.iterdir()) == ["components", "data.csv", "out", "s.yaml"]  # no staged folder


def test_signals_held_during_the_switch_are_delivered_after(tmp_path, monkeypatch):
    """A Ctrl-C arriving as the folders are swapped waits until the new set is in and the old one is gone."""
    from candleflow import _atomic

    target = tmp_path / "out"
    target.mkdir()
    (target / "f.txt").write_text("old")
    original = signal.getsignal(signal.SIGINT)
    real_exchange = _atomic._exchange

    def exchange_and_interrupt(a, b):
        swapped = real_exchange(a, b)
        signal.raise_signal(signal.SIGINT)  # arrives mid-switch: held until it is done
        return swapped

    monkeypatch.setattr(_atomic, "_exchange", exchange_and_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with _atomic.staged_folder(target) as stage:
            (stage / "f.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (target / "f.txt").read_text() == "new"
    assert signal.getsignal(signal.SIGINT) is original
