"""The on-disk node cache under faults: damaged, misplaced, planted and unwritable entries.

Every case runs a real strategy through the CLI (``main([...])`` in-process, and the
installed ``candleflow`` script in a subprocess where the exit and the stderr line of a
real process matter) and compares the result files with those of a clean run.  The
strategy has an indicator Series (``fast``), a multi-output indicator frame (``bands``),
a signal frame whose metadata column holds dicts (``tagged``, a workspace component) and
the evaluator, so every kind of entry is on disk.

The tests run as root, for whom ``chmod`` does not make a folder read-only; the
unwritable cases therefore use a cache path below a regular file (a real ``mkdir``
failure) and a patched write raising ENOSPC/EROFS/EACCES/EDQUOT.  The chmod case runs
only for other users.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import candleflow
from candleflow.cli import main
from candleflow.dag import cache as cache_module
from candleflow.dag.cache import SUFFIX, Damaged, NodeCache, entry_bytes, read_entry
from candleflow.data import generate_candles, write_candles

COMPONENTS = '''
import numpy as np
from candleflow import signal
from candleflow.nodes.outputs import make_signal_frame

@signal("tagged_cross", signal_types=("golden_cross", "death_cross"))
def tagged_cross(fast, slow, *, mode: str = "json"):
    up = ((fast.shift(1) <= slow.shift(1)) & (fast > slow)).to_numpy()
    down = ((fast.shift(1) >= slow.shift(1)) & (fast < slow)).to_numpy()
    bars = np.flatnonzero(up | down)
    meta = [{"gap": float(fast.iloc[b] - slow.iloc[b]), "at": [int(b), None], "up": bool(up[b])} for b in bars]
    if mode == "tuple":  # not plain JSON: a tuple would come back as a list
        meta = [{"at": (int(b),)} for b in bars]
    return make_signal_frame(bars, ["golden_cross" if up[b] else "death_cross" for b in bars], None, meta)
'''

STRATEGY = """\
name: integrity
symbol: TEST
timeframe: 1h
data: {path: data.csv}
indicators:
  - {name: fast, component: sma, params: {period: 5}}
  - {name: slow, component: sma, params: {period: 20}}
  - {name: bands, component: bollinger, params: {period: 20, stddev: 2.0}}
signals:
  - {name: tagged, component: tagged_cross, inputs: [fast, slow], params: {mode: %s}}
  - {name: breakout, component: bollinger_breakout, inputs: {upper: bands.upper, lower: bands.lower}}
rules:
  entry: {golden_cross: buy}
  exit: {death_cross: close, breakout_up: close}
risk: {stop_loss: 0.01, take_profit: 0.02}
"""

COMPARED = ("metrics.json", "trades.csv", "equity.parquet", "signals.csv", "indicators.parquet")  # not the node timings
ENTRIES = ("fast", "bands", "tagged", "evaluator")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "tagged.py").write_text(COMPONENTS, encoding="utf-8")
    write_candles(generate_candles(400, seed=11), tmp_path / "data.csv")
    (tmp_path / "s.yaml").write_text(STRATEGY % "json", encoding="utf-8")
    (tmp_path / "tuple.yaml").write_text(STRATEGY % "tuple", encoding="utf-8")
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, out: str, *extra: str, strategy: str = "s.yaml", cache: str = "cache") -> tuple[int, str]:
    """``candleflow run`` in-process (sync scheduler, quiet); returns (exit code, stderr)."""
    code = main(["run", strategy, "--out", out, "--cache-dir", cache, "--scheduler", "sync", "-q", *extra])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


def outputs(folder: str) -> dict[str, bytes]:
    return {name: (Path(folder) / name).read_bytes() for name in COMPARED}


def entry_file(name: str, cache: str = "cache") -> Path:
    (path,) = Path(cache).rglob(f"{name}-*{SUFFIX}")
    return path


@pytest.fixture
def clean(workspace, capsys):
    """A clean run's outputs and entry files (the cache then holds every node)."""
    code, err = run(capsys, "clean")
    assert (code, err) == (0, "")
    return outputs("clean"), {name: entry_file(name).read_bytes() for name in ENTRIES}


def stats(out: str) -> dict[str, str]:
    import json

    return {s["name"]: s["cache"] for s in json.loads((Path(out) / "nodes.json").read_text())}


def test_a_clean_rerun_hits_every_entry_and_is_silent(capsys, clean):
    code, err = run(capsys, "again")
    assert (code, err) == (0, "")
    assert set(stats("again").values()) == {"hit"}
    assert outputs("again") == clean[0]
    assert {name: entry_file(name).read_bytes() for name in ENTRIES} == clean[1]  # encoding is deterministic


def _positions(size: int, rng: np.random.Generator) -> list[int]:
    """Byte positions to damage: in the magic, the checksum, the header length and JSON, then three in the
    Arrow streams (every position of one entry is flipped in-process below; each CLI run here costs ~0.2 s)."""
    return [3, 30, 49, 60] + sorted(int(p) for p in rng.choice(np.arange(size // 4, size), size=3, replace=False))


@pytest.mark.parametrize("name", ENTRIES)
def test_a_flipped_bit_anywhere_is_detected_recomputed_and_replaced(capsys, clean, name):
    clean_outputs, clean_entries = clean
    rng = np.random.default_rng(len(name))
    for position in _positions(len(clean_entries[name]), rng):
        path = entry_file(name)
        damaged = bytearray(clean_entries[name])
        damaged[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(damaged))
        code, err = run(capsys, "out")
        assert code == 0
        assert err.startswith(f"warning: {path}: damaged cache entry (") and err.count("\n") == 1, (position, err)
        assert outputs("out") == clean_outputs, position
        assert stats("out")[name] == "miss" and list(stats("out").values()).count("miss") == 1
        assert path.read_bytes() == clean_entries[name], position  # replaced by the recomputed entry
    code, err = run(capsys, "after")
    assert (code, err) == (0, "")
    assert set(stats("after").values()) == {"hit"}


def test_every_single_bit_flip_of_an_entry_is_rejected(clean):
    """Not through the CLI: all 8 x size flips of the signal frame's entry, straight into read_entry."""
    data = clean[1]["tagged"]
    key = entry_file("tagged").name[:-len(SUFFIX)]
    assert isinstance(read_entry(data, key, "signal"), pd.DataFrame)
    damaged = bytearray(data)
    for position in range(len(data)):
        for bit in range(8):
            damaged[position] ^= 1 << bit
            with pytest.raises(Damaged):
                read_entry(bytes(damaged), key, "signal")
            damaged[position] ^= 1 << bit


def test_several_damaged_entries_warn_once_and_all_are_replaced(capsys, clean):
    for name in ENTRIES:
        entry_file(name).write_bytes(clean[1][name][: len(clean[1][name]) // 2])  # truncated
    code, err = run(capsys, "out")
    assert code == 0 and err.count("\n") == 1 and "damaged cache entry" in err
    assert outputs("out") == clean[0]
    assert {name: entry_file(name).read_bytes() for name in ENTRIES} == clean[1]


def test_a_valid_entry_under_another_keys_name_is_not_used(capsys, clean):
    slow = entry_file("slow")
    slow.write_bytes(clean[1]["fast"])  # a perfectly valid entry, of the wrong node
    code, err = run(capsys, "out")
    assert code == 0
    assert err == (f"warning: {slow}: damaged cache entry (it holds the entry of key '{entry_file('fast').stem}'); "
                   f"recomputing and replacing it (other damaged entries in this run are replaced without a warning)\n")
    assert outputs("out") == clean[0]
    assert stats("out")["slow"] == "miss"


def test_an_entry_stored_for_another_node_kind_is_not_used(clean):
    key = entry_file("fast").stem
    value = read_entry(clean[1]["fast"], key, "indicator")
    with pytest.raises(Damaged, match="holds a signal output, expected indicator"):
        read_entry(entry_bytes(key, value, "signal"), key, "indicator")


class _Planted:
    """Unpickling this creates the marker file: what a malicious pickle in a shared cache folder could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_pickle_planted_in_the_cache_is_never_unpickled(capsys, clean, workspace):
    marker = workspace / "pwned"
    planted = pickle.dumps(_Planted(marker))
    pickle.loads(planted).close()  # the control: unpickling it does create the marker
    assert marker.exists()
    marker.unlink()
    evaluator = entry_file("evaluator")
    evaluator.with_suffix(".pkl").write_bytes(planted)  # where the pickle cache kept entries
    evaluator.write_bytes(planted)
    code, err = run(capsys, "out")
    assert code == 0
    assert err == (f"warning: {evaluator}: damaged cache entry (not a candleflow cache entry); recomputing and "
                   f"replacing it (other damaged entries in this run are replaced without a warning)\n")
    assert not marker.exists()
    assert outputs("out") == clean[0]
    assert evaluator.read_bytes() == clean[1]["evaluator"]


def test_a_value_that_needs_pickle_stays_in_memory_with_one_warning(capsys, workspace):
    code, err = run(capsys, "out", strategy="tuple.yaml")
    assert code == 0
    assert err == ("warning: node 'tagged': its output is kept in memory only, not in the on-disk cache (column "
                   "'metadata' holds a builtins.tuple, not plain JSON; the cache stores no pickles)\n")
    assert not list(Path("cache").rglob(f"tagged-*{SUFFIX}"))
    assert entry_file("evaluator").is_file()  # the other nodes are stored
    code, err = run(capsys, "again", strategy="tuple.yaml")
    assert code == 0 and err.count("warning: node 'tagged'") == 1
    assert stats("again")["tagged"] == "miss" and stats("again")["evaluator"] == "hit"
    assert outputs("again") == outputs("out")


def _failing_write(error: int):
    """A write that fails like a full or read-only disk, after half the bytes went into the temp file."""
    from candleflow._atomic import atomic_path

    calls = []

    def write(path, data):
        calls.append(path)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data[: len(data) // 2])
            raise OSError(error, os.strerror(error))

    return write, calls


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_an_unwritable_cache_warns_once_and_the_run_goes_on(capsys, workspace, monkeypatch, error):
    code, err = run(capsys, "expected", "--no-cache")
    assert code == 0
    write, calls = _failing_write(error)
    monkeypatch.setattr(cache_module, "write_bytes_atomic", write)
    code, err = run(capsys, "out")
    assert code == 0
    assert err == (f"warning: cache: cannot write the node cache ({os.strerror(error)}); "
                   f"this run goes on without storing entries on disk\n")
    assert len(calls) == 1  # no further attempts after the first failure
    assert outputs("out") == outputs("expected")
    assert not [p for p in Path("cache").rglob("*") if p.is_file()]  # no entry, no temp file left


def test_an_unreadable_cache_warns_once_and_the_run_goes_on(capsys, clean, monkeypatch):
    real = Path.read_bytes

    def read_bytes(self):
        if self.suffix == SUFFIX:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    code, err = run(capsys, "out")
    assert code == 0
    assert err == "warning: cache: cannot read the node cache (Permission denied); this run goes on without it\n"
    assert set(stats("out").values()) == {"miss"}
    assert outputs("out") == clean[0]


def _candleflow() -> tuple[list[str], dict]:
    exe = shutil.which("candleflow")
    env = {**os.environ, "CANDLEFLOW_DEBUG": "", "PYTHONPATH": str(Path(candleflow.__file__).parents[1])}
    return ([exe] if exe else [sys.executable, "-m", "candleflow.cli"]), env


def test_real_process_damaged_entry_and_a_cache_folder_that_cannot_be_made(capsys, clean, workspace):
    """The installed script, two processes: a flipped bit in the evaluator entry; a cache path below a file."""
    evaluator = entry_file("evaluator")
    damaged = bytearray(clean[1]["evaluator"])
    damaged[len(damaged) // 2] ^= 0x08
    evaluator.write_bytes(bytes(damaged))
    (workspace / "a_file").write_text("not a folder")
    command, env = _candleflow()
    runs = {
        "damaged": ["run", "s.yaml", "--out", "damaged"],
        "under-a-file": ["run", "s.yaml", "--out", "under", "--cache-dir", "a_file/cache"],
    }
    runs["damaged"] += ["--cache-dir", "cache", "-q"]
    runs["under-a-file"] += ["-q"]
    procs = {name: subprocess.Popen(command + args, cwd=workspace, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for name, args in runs.items()}
    results = {name: proc.communicate(timeout=120) + (proc.returncode,) for name, proc in procs.items()}
    _, err, code = results["damaged"]
    assert code == 0
    assert err == (f"warning: {evaluator}: damaged cache entry (checksum mismatch); recomputing and replacing it "
                   f"(other damaged entries in this run are replaced without a warning)\n")
    assert outputs("damaged") == clean[0]
    assert evaluator.read_bytes() == clean[1]["evaluator"]
    _, err, code = results["under-a-file"]
    assert code == 0
    assert err == ("warning: a_file/cache: cannot write the node cache (Not a directory); "
                   "this run goes on without storing entries on disk\n")
    assert outputs("under") == clean[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_serves_hits_and_warns_once(capsys, clean):
    entry_file("evaluator").unlink()  # the one node that has to be written
    folders = [Path("cache"), *Path("cache").iterdir()]
    for folder in folders:
        folder.chmod(0o555)
    try:
        code, err = run(capsys, "out")
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert code == 0
    assert err == ("warning: cache: cannot write the node cache (Permission denied); "
                   "this run goes on without storing entries on disk\n")
    assert stats("out")["evaluator"] == "miss" and list(stats("out").values()).count("hit") == len(stats("out")) - 1
    assert outputs("out") == clean[0]


def _forged(data: bytes, **changes) -> bytes:
    """``data`` with its JSON header changed and the checksum recomputed: well formed, but not what put() wrote."""
    import hashlib
    import json

    from candleflow.dag.cache import MAGIC

    start = len(MAGIC) + 32
    size = int.from_bytes(data[start:start + 4], "little")
    header = json.loads(data[start + 4:start + 4 + size])
    header.update(changes)
    text = json.dumps(header).encode()
    body = len(text).to_bytes(4, "little") + text + data[start + 4 + size:]
    return MAGIC + hashlib.sha256(body).digest() + body


@pytest.mark.parametrize("changes, reason", [
    ({"format": 0}, "format 0, expected 1"),
    ({"type": "pickle"}, "undecodable: ValueError: unknown value type 'pickle' with 1 streams"),
    ({"streams": [1]}, "stream lengths do not match the file"),
    ({"value": {"name": None}}, "undecodable: KeyError: 'index'"),
])
def test_a_checksummed_entry_that_is_not_ours_is_a_miss(tmp_path, changes, reason):
    from candleflow.errors import CandleflowWarning

    key = "fast-0123"
    NodeCache(tmp_path).put(key, pd.Series([1.0, np.nan]), kind="indicator")
    (path,) = tmp_path.rglob(f"*{SUFFIX}")
    path.write_bytes(_forged(path.read_bytes(), **changes))
    with pytest.warns(CandleflowWarning) as caught:
        assert NodeCache(tmp_path).get(key, None, kind="indicator") is None
    assert [str(w.message) for w in caught] == [
        f"{path}: damaged cache entry ({reason}); recomputing and replacing it "
        f"(other damaged entries in this run are replaced without a warning)"]
    assert not path.exists()  # removed, so that put() writes it afresh
