"""``run --out DIR``: the result set switches in one atomic step, even under SIGKILL, and never eats user files.

The kill tests stop a writer at every step of the switch and look at the folder afterwards: it must hold
exactly the complete old set or the complete new one (file by file, byte by byte), and the next run must
leave nothing else beside it.  Two ways of killing:

* ``test_sigkill_at_every_step_of_the_switch``: a small child process writes a folder through
  :func:`candleflow._atomic.staged_folder` with ``os.rename``/``os.unlink``/``os.rmdir`` and the exchange
  wrapped so that the N-th call SIGKILLs the process first; for the exchange and for the two-rename
  fallback, into an existing folder and a new one.  Needs nothing but Python.
* ``test_sigkill_at_every_rename_of_a_real_run``: the real ``candleflow run`` under
  ``strace -e inject=SYSCALL:signal=SIGKILL:when=N`` for every rename and renameat2 it makes (strace
  counts each system call separately).  Skipped where strace is missing (scripts/setup-test-env.sh
  installs it).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from shared_texts import DEMO_STRATEGY, SRC

from candleflow import _atomic
from candleflow.cli import main
from candleflow.data import generate_candles, write_candles
from candleflow.results import FILES, MANIFEST, read_results

STRATEGY = DEMO_STRATEGY
RUN = ["run", "s.yaml", "--out", "out", "--no-cache", "--scheduler", "sync", "-q"]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A workspace with a strategy and its data, as the cwd."""
    (tmp_path / "components").mkdir()
    (tmp_path / "s.yaml").write_text(STRATEGY)
    write_candles(generate_candles(150, seed=5), tmp_path / "data.csv")
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files_in(folder: Path) -> dict[str, bytes] | None:
    """Every file under ``folder`` by relative path (None if there is no folder)."""
    if not folder.exists():
        return None
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- SIGKILL at every step, through a Python-level hook ------------------------------------------------------------

CHILD = r"""
import json, os, signal, sys
from pathlib import Path
from candleflow import _atomic

target, mode, kill_at, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
steps = []

def step(name, real):
    def call(*args, **kwargs):
        steps.append(name)
        if len(steps) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call

if mode == "fallback":
    _atomic._exchange = lambda a, b: False
_atomic._exchange = step("exchange", _atomic._exchange)
for name in ("rename", "unlink", "rmdir"):
    setattr(os, name, step(name, getattr(os, name)))
with _atomic.staged_folder(target) as stage:
    for i, (name, text) in enumerate(files.items()):
        if kill_at == 0 and i == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # half of the new set is written
        (stage / name).write_text(text)
print(json.dumps(steps))
"""
OLD = {"metrics.json": '{"old": 1}', "trades.csv": "a,b\n1,2\n" * 50, "only_old.txt": "old"}
NEW = {"metrics.json": '{"new": 2}', "trades.csv": "a,b\n3,4\n" * 70, "only_new.txt": "new"}


def child(target: Path, mode: str, kill_at: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(target), mode, str(kill_at), json.dumps(NEW)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fresh(root: Path, existing: bool) -> Path:
    root.mkdir(parents=True)
    target = root / "out"
    if existing:
        target.mkdir()
        for name, text in OLD.items():
            (target / name).write_text(text)
    return target


@pytest.mark.parametrize("mode, existing", [("exchange", True), ("fallback", True), ("exchange", False)])
def test_sigkill_at_every_step_of_the_switch(tmp_path, mode, existing):
    calibrate = child(fresh(tmp_path / "all", existing), mode, kill_at=-1)
    out, err = calibrate.communicate(timeout=60)
    assert calibrate.returncode == 0, err
    steps = json.loads(out)
    renames = {("exchange", True): 0, ("fallback", True): 2, ("exchange", False): 1}
    assert steps.count("rename") == renames[mode, existing]
    assert files_in(tmp_path / "all" / "out") == {k: v.encode() for k, v in NEW.items()}

    old = {k: v.encode() for k, v in OLD.items()} if existing else None
    new = {k: v.encode() for k, v in NEW.items()}
    kills = {n: child(fresh(tmp_path / str(n), existing), mode, n) for n in range(len(steps) + 1)}  # 0: mid-write
    seen = []
    for n, proc in kills.items():
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, (n, err)
        target = tmp_path / str(n) / "out"
        after = files_in(target)
        if after is None and mode == "fallback" and existing:  # killed between the two renames ...
            aside = [p for p in target.parent.iterdir() if p.name.endswith(".candleflow-old")]
            assert [files_in(p) for p in aside] == [old]  # ... the complete old set waits beside it
        else:
            assert after in (old, new), (n, steps[:n])
        _atomic.clean_stale(target)  # what the next run does first
        after = files_in(target)
        assert after in (old, new), (n, steps[:n])
        seen.append("new" if after == new else "old")
        assert [p.name for p in target.parent.iterdir()] == (["out"] if after else []), n
    assert seen[0] == "old" and seen[-1] == ("new" if existing else "old")  # kills on both sides of the switch
    # (into a new folder the last step is the rename itself: the calibration run above shows the other side)


# --- SIGKILL at every rename of a real run, injected by strace ------------------------------------------------------

def same_set(got: dict[str, bytes] | None, want: dict[str, bytes]) -> bool:
    """Equal result sets, but for the node timings, which differ from run to run (in nodes.json and the graphs)."""
    if got is None or set(got) != set(want):
        return False
    untimed = {name: re.sub(rb"[0-9.]+ m?s\b", b"T", data) for name, data in got.items()}
    if any(untimed[name] != re.sub(rb"[0-9.]+ m?s\b", b"T", want[name]) for name in want
           if name not in ("nodes.json", "graph.svg")):  # (the svg's layout follows its labels' widths)
        return False
    outcome = [{k: n[k] for k in ("name", "status", "cache")} for n in json.loads(got["nodes.json"])]
    return outcome == [{k: n[k] for k in ("name", "status", "cache")} for n in json.loads(want["nodes.json"])]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (see scripts/setup-test-env.sh)")
def test_sigkill_at_every_rename_of_a_real_run(workspace, tmp_path_factory):
    args = RUN + ["--graph", "out/graph.dot"]  # a file rendered into the staged folder: one more rename
    assert main(args) == 0
    old = files_in(workspace / "out")
    (workspace / "s.yaml").write_text(STRATEGY.replace("period: 5", "period: 7"))
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONDONTWRITEBYTECODE": "1", "CANDLEFLOW_DEBUG": ""}
    command = [sys.executable, "-m", "candleflow.cli"] + args
    root = tmp_path_factory.mktemp("kills")

    def copy(name: str) -> Path:
        ws = root / name
        shutil.copytree(workspace, ws, symlinks=True)
        return ws

    ws = copy("count")
    log = ws.parent / "count.log"
    strace = ["strace", "-f", "-qq", "--seccomp-bpf"]  # (stops only at the traced calls: less slow)
    traced = subprocess.run(strace + ["-o", str(log), "-e", "trace=rename,renameat,renameat2"] + command,
                            cwd=ws, env=env, capture_output=True, text=True, timeout=120)
    assert traced.returncode == 0, traced.stderr
    new = files_in(ws / "out")
    assert not same_set(new, old) and set(new) == set(old)
    calls = [line.split()[1].split("(")[0] for line in log.read_text().splitlines() if "(" in line]
    counts = {name: calls.count(name) for name in set(calls)}
    assert counts.get("renameat2", 0) == 1 and counts.get("rename", 0) >= 1, counts  # the swap, the graph file

    kills = {}
    for syscall, count in counts.items():
        for n in range(1, count + 1):
            ws = copy(f"{syscall}-{n}")
            inject = f"inject={syscall}:signal=SIGKILL:when={n}"
            kills[ws] = subprocess.Popen(strace + ["-o", os.devnull, "-e", inject] + command, cwd=ws,
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outcomes = []
    for ws, proc in kills.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, (ws.name, err)
        after = files_in(ws / "out")
        assert after == old or same_set(after, new), ws.name
        outcomes.append("old" if after == old else "new")
        os.chdir(ws)
        assert main(args) == 0  # the next run: cleans up and writes the new set
        assert same_set(files_in(ws / "out"), new)
        assert sorted(p.name for p in ws.iterdir()) == ["components", "data.csv", "out", "s.yaml"], ws.name
    assert outcomes == ["old"] * len(outcomes)  # every rename precedes the swap; after it come only deletions,
    # whose kills test_sigkill_at_every_step_of_the_switch covers


# --- what a run does to an existing --out -----------------------------------------------------------------------------

def test_a_folder_with_other_files_is_refused_before_the_run(workspace, capsys):
    (workspace / "mine").mkdir()
    (workspace / "mine" / "notes.txt").write_text("keep me")
    (workspace / "mine" / "metrics.json").write_text("{}")
    (workspace / "s.yaml").write_text("name: [broken")  # would fail if the run got that far
    assert main(["run", "s.yaml", "--out", "mine"]) == 2
    assert capsys.readouterr().err == ("error: mine: --out: not a candleflow results folder (it holds notes.txt); "
                                       "a run replaces the whole folder, so give a new or empty one\n")
    assert files_in(workspace / "mine") == {"metrics.json": b"{}", "notes.txt": b"keep me"}


def test_files_candleflow_wrote_are_replaced_and_others_are_not(workspace, capsys):
    assert main(RUN + ["--report", "out/report.html"]) == 0  # the report is part of the set, listed in the manifest
    manifest = json.loads((workspace / "out" / MANIFEST).read_text())["files"]
    assert set(manifest) == {*FILES, "report.html"} | ({"graph.svg"} if shutil.which("dot") else set())
    assert main(RUN) == 0  # replaces its own report.html: gone from the new set
    assert not (workspace / "out" / "report.html").exists()
    (workspace / "out" / "report.html").write_text("a user's file now")  # not in the new manifest
    assert main(RUN) == 2
    assert "(it holds report.html)" in capsys.readouterr().err


def test_an_older_versions_folder_and_its_temp_files_are_replaced(workspace):
    old = workspace / "out"
    old.mkdir()
    for name in FILES:
        (old / name).write_text("old")
    (old / ".metrics.json.k3j_9x0a.tmp").write_text("torn")  # left by a killed run of the file-by-file version
    assert main(RUN) == 0
    assert set(files_in(old)) == {*FILES, MANIFEST} | ({"graph.svg"} if shutil.which("dot") else set())
    assert (old / "strategy.yaml").read_text() == STRATEGY


def test_an_empty_folder_keeps_its_mode_and_a_symlinked_one_stays_a_link(workspace):
    (workspace / "real").mkdir(mode=0o750)
    os.chmod(workspace / "real", 0o750)
    (workspace / "link").symlink_to("real")
    assert main(["run", "s.yaml", "--out", "link", "--no-cache", "--scheduler", "sync", "-q"]) == 0
    assert (workspace / "link").is_symlink() and (workspace / "real" / "metrics.json").is_file()
    assert (workspace / "real").stat().st_mode & 0o777 == 0o750


def test_a_relative_out_from_another_folder_and_a_new_nested_one(workspace, monkeypatch):
    (workspace / "sub").mkdir()
    monkeypatch.chdir(workspace / "sub")
    assert main(["run", "../s.yaml", "--out", "../a/b/out", "--no-cache", "--scheduler", "sync", "-q"]) == 0
    assert (workspace / "a" / "b" / "out" / "metrics.json").is_file()
    assert [p.name for p in (workspace / "a" / "b").iterdir()] == ["out"]


def test_the_current_folder_is_refused(workspace, capsys, monkeypatch):
    assert main(RUN) == 0
    monkeypatch.chdir(workspace / "out")
    before = files_in(workspace / "out")
    assert main(["run", "../s.yaml", "--out", ".", "--no-cache", "-q"]) == 2
    assert capsys.readouterr().err == ("error: .: --out: is the current folder or holds it; a run replaces the whole "
                                       "folder, so run it from outside\n")
    assert files_in(workspace / "out") == before


# --- what killed runs leave behind ----------------------------------------------------------------------------------

def test_the_next_run_removes_stale_folders_but_not_a_live_runs(workspace):
    stale = workspace / ".out.abcd1234.candleflow-new"
    live = workspace / ".out.live0000.candleflow-new"
    other = workspace / ".other.abcd1234.candleflow-new"  # another target's: not ours to touch
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "metrics.json").write_text("{}")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a run still writing it holds it
        assert main(RUN) == 0
        assert not stale.exists() and live.exists() and other.exists()
    finally:
        os.close(fd)
    assert main(RUN) == 0
    assert not live.exists() and other.exists()


def test_a_set_moved_aside_by_a_killed_fallback_switch_is_put_back(workspace, capsys):
    assert main(RUN) == 0
    old = files_in(workspace / "out")
    (workspace / "out").rename(workspace / ".out.ab12cd34.candleflow-old")  # killed between the two renames
    expected = json.loads(old["metrics.json"])  # null: an undefined metric, which read_results reads as NaN
    expected["metrics"] = {key: math.nan if value is None else value for key, value in expected["metrics"].items()}
    assert json.dumps(read_results("out")["metrics"], sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert files_in(workspace / "out") == old
    assert "warning: " in capsys.readouterr().err
    assert sorted(p.name for p in workspace.iterdir()) == ["components", "data.csv", "out", "s.yaml"]


def test_the_fallback_switch_warns_and_replaces_the_set(workspace, capsys, monkeypatch):
    assert main(RUN) == 0
    capsys.readouterr()
    monkeypatch.setattr(_atomic, "_exchange", lambda a, b: False)  # a file system without RENAME_EXCHANGE
    (workspace / "s.yaml").write_text(STRATEGY.replace("period: 5", "period: 8"))
    assert main(RUN) == 0
    assert "cannot swap folders atomically" in capsys.readouterr().err
    assert (workspace / "out" / "strategy.yaml").read_text() == STRATEGY.replace("period: 5", "period: 8")
    assert sorted(p.name for p in workspace.iterdir()) == ["components", "data.csv", "out", "s.yaml"]
