"""Output paths: checked before the work starts, and a write-time OSError is one line naming the path.

The real CLI, in parallel subprocesses, for the faults a test can produce as root: a path under a regular
file, a folder where a file is expected, a file where a folder is expected, a device.  Every case is built
so that the command's own work would fail with a different message (a broken strategy, a missing grid or
results folder): the output error must come first.  What root cannot produce (a read-only place, a full
disk) is simulated in-process.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shared_texts import DEMO_STRATEGY, SRC

from candleflow import output_paths
from candleflow.cli import main
from candleflow.data import generate_candles, write_candles

STRATEGY = DEMO_STRATEGY
RUN = ["run", "s.yaml", "--no-cache", "--scheduler", "sync", "-q"]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "components").mkdir()
    (tmp_path / "s.yaml").write_text(STRATEGY)
    (tmp_path / "broken.yaml").write_text("name: [broken")
    (tmp_path / "folder.svg").mkdir()
    (tmp_path / "folder.html").mkdir()
    write_candles(generate_candles(150, seed=5), tmp_path / "data.csv")
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


CASES = {  # command -> the one line it must print
    ("run", "broken.yaml", "--out", "data.csv"): "data.csv: --out: is a file, not a folder",
    ("run", "broken.yaml", "--out", "data.csv/out"): "data.csv/out: --out: 'data.csv' is a file, not a folder",
    ("run", "broken.yaml", "--graph", "folder.svg"): "folder.svg: --graph: is a folder, not a file",
    ("run", "broken.yaml", "--graph", "data.csv/g.svg"): "data.csv/g.svg: --graph: 'data.csv' is a file, not a folder",
    ("run", "broken.yaml", "--report", "folder.html"): "folder.html: --report: is a folder, not a file",
    ("run", "broken.yaml", "--report", "/dev/null"): "/dev/null: --report: exists and is not a regular file",
    ("render", "broken.yaml", "-o", "data.csv/g.svg"): "data.csv/g.svg: -o: 'data.csv' is a file, not a folder",
    ("report", "missing", "-o", "folder.html"): "folder.html: -o: is a folder, not a file",
    ("sample", "-o", "components"): "components: -o: is a folder, not a file",
    ("sweep", "s.yaml", "--grid", "missing.yaml", "--out", "data.csv/r.csv"):
        "data.csv/r.csv: --out: 'data.csv' is a file, not a folder",
}


@pytest.mark.parametrize("args", list(CASES), ids=lambda args: " ".join(args))
def test_bad_output_paths_are_one_line_before_any_work(workspace, capsys, args):
    before = sorted(p.name for p in workspace.iterdir())
    assert main(list(args)) == 2
    assert capsys.readouterr() == ("", f"error: {CASES[args]}\n")
    assert sorted(p.name for p in workspace.iterdir()) == before
    assert list((workspace / "folder.svg").iterdir()) == []


def test_through_the_real_cli(workspace):
    """Two of the cases as real subprocesses, at once: exit 2, the exact line, no traceback."""
    env = {**os.environ, "PYTHONPATH": SRC, "CANDLEFLOW_DEBUG": ""}
    cases = [("run", "broken.yaml", "--out", "data.csv/out"),
             ("sweep", "s.yaml", "--grid", "missing.yaml", "--out", "data.csv/r.csv")]
    procs = {args: subprocess.Popen([sys.executable, "-m", "candleflow.cli", *args], cwd=workspace, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in cases}
    for args, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, err, out) == (2, f"error: {CASES[args]}\n", ""), args


def test_a_read_only_place_is_found_before_the_run(workspace, capsys, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(output_paths.tempfile, "mkstemp", read_only)
    (workspace / "s.yaml").write_text("name: [broken")
    assert main(RUN + ["--report", "r.html"]) == 2
    assert capsys.readouterr().err == "error: r.html: --report: cannot write in '.' (Read-only file system)\n"


def test_a_full_disk_is_found_before_the_sweep(workspace, capsys, monkeypatch):
    real = os.statvfs

    class Full:
        def __init__(self, stats):
            self.f_blocks, self.f_bfree, self.f_bavail = stats.f_blocks, 0, 0

    monkeypatch.setattr(output_paths.os, "statvfs", lambda path: Full(real(path)))
    assert main(["sweep", "s.yaml", "--grid", "missing.yaml", "--out", "r.csv"]) == 2
    assert capsys.readouterr().err == "error: r.csv: --out: the disk holding '.' is full\n"


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_the_disk_filling_up_while_writing_results_keeps_the_old_set(workspace, capsys, monkeypatch):
    assert main(RUN + ["--out", "out"]) == 0
    old = {p.name: p.read_bytes() for p in (workspace / "out").iterdir()}
    real = Path.write_bytes

    def full_at_candles(path, *args, **kwargs):
        if path.name == "candles.parquet":
            enospc()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_bytes", full_at_candles)
    assert main(RUN + ["--out", "out"]) == 2
    assert capsys.readouterr().err == "error: out: cannot write the results (No space left on device)\n"
    assert {p.name: p.read_bytes() for p in (workspace / "out").iterdir()} == old
    assert sorted(p.name for p in workspace.iterdir()) == ["broken.yaml", "components", "data.csv", "folder.html",
                                                           "folder.svg", "out", "s.yaml"]


@pytest.mark.parametrize("args, what", [
    (["sample", "-o", "x.csv"], "the sample"),
    (["render", "s.yaml", "-o", "x.dot"], "the graph"),
    (RUN + ["--report", "x.html"], "the report"),
])
def test_the_disk_filling_up_while_writing_a_file_is_one_line(workspace, capsys, monkeypatch, args, what):
    monkeypatch.setattr(os, "replace", enospc)  # the temp file's rename onto the target
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: {args[-1]}: cannot write {what} (No space left on device)\n"
    assert not [p.name for p in workspace.iterdir() if p.name.startswith((".x", "x"))]  # no temp file left


def test_good_paths_pass_and_nothing_is_created_by_the_check(tmp_path):
    assert output_paths.check_file(tmp_path / "a" / "b" / "r.html", "-o") == tmp_path / "a" / "b" / "r.html"
    assert output_paths.check_folder(tmp_path / "new", "--out") == tmp_path / "new"
    assert list(tmp_path.iterdir()) == []
