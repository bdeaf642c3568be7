"""Inputs that used to crash or never finish are refused in one line, quickly.

Each case is a file or argument that made candleflow print a traceback (exit 1),
hang, or use all memory: huge integers, far-future timestamps, NUL bytes in paths,
alias bombs, template bombs, a NUL-filled data file, a grid of 10^8 combinations,
a malformed results folder.  Each must now exit 2 with exactly one line
``error: <where>: <what>`` on stderr and no traceback.  The CLI cases run the real
``candleflow`` in a subprocess whose address space is capped, so a bound that
regresses fails the test (MemoryError, exit 1, or the timeout) instead of taking
the machine's memory; the in-process unit tests time the refusal.
"""

from __future__ import annotations

import gzip
import os
import resource
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from shared_texts import DEMO_STRATEGY

from candleflow.cli import main
from candleflow.config import load_strategy, render_template
from candleflow.config.loader import MAX_ALIAS_VALUES, MAX_DEPTH, load_yaml
from candleflow.config.sandbox import MAX_ITERATIONS, MAX_SIZE
from candleflow.data import generate_candles, load_candles, write_candles
from candleflow.data.loader import format_size, parse_size
from candleflow.errors import ConfigError, DataError
from candleflow.results import read_results
from candleflow.sweep.grid import SweepSpec, combinations, load_grid

GOOD = DEMO_STRATEGY
BIG_INT = "9" * 5000
CLI_TIMEOUT = 120  # seconds; the machine running the tests may be busy, a bound that regressed would hang far longer
MEMORY_CAP = 4 << 30  # address space of a CLI subprocess


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "components").mkdir()
    write_candles(generate_candles(120, seed=3), tmp_path / "data.csv")
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _candleflow() -> list[str]:
    exe = shutil.which("candleflow")
    return [exe] if exe else [sys.executable, "-m", "candleflow.cli"]


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CANDLEFLOW_DEBUG": ""}
    return subprocess.run(_candleflow() + list(args), cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT, preexec_fn=_cap_memory)


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """The same CLI through ``main()`` in this process: for variants of a case already run in a subprocess."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def assert_refused(proc: subprocess.CompletedProcess, expected: str) -> None:
    """Exit 2, nothing on stdout, exactly ``error: <expected>`` on stderr."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert proc.stderr == f"error: {expected}\n", proc.stderr[-2000:]
    assert (proc.returncode, proc.stdout) == (2, "")


@contextmanager
def quickly(seconds: float = 5.0) -> Iterator[None]:
    """The block must finish within ``seconds`` (generous: the bounds refuse within a second on an idle machine)."""
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"took {elapsed:.1f} s"


# --- YAML: huge integers, alias bombs, deep nesting -----------------------------------------------------------------

INT_PROBLEM = (f"integer of {len(BIG_INT):,} characters has more than 4300 digits; write a smaller number (or quote "
               f"it to make it a string)")


def test_a_huge_integer_in_a_strategy(workspace):
    (workspace / "s.yaml").write_text(GOOD.replace("period: 5}", f"period: {BIG_INT}}}"))
    assert_refused(cli(workspace, "run", "s.yaml"), f"s.yaml: line 6, column 51: {INT_PROBLEM}")


def test_a_huge_integer_in_a_grid_or_a_set_value(capsys, workspace):
    (workspace / "s.yaml").write_text(GOOD.replace("period: 5}", "period: {{ fast }}}"))
    (workspace / "grid.yaml").write_text(f"parameters:\n  fast: [5, {BIG_INT}]\n")
    assert_refused(in_process(capsys, "sweep", "s.yaml", "--grid", "grid.yaml"),
                   f"grid.yaml: line 2, column 13: {INT_PROBLEM}")
    assert_refused(in_process(capsys, "validate", "s.yaml", "--set", f"fast={BIG_INT}"), f"--set fast: {INT_PROBLEM}")


def bomb(levels: int = 9) -> str:
    """A billion laughs: each anchor lists the previous one ten times (10^levels values once expanded)."""
    anchors = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    anchors += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "{" + ", ".join(anchors) + "}"


def test_an_alias_bomb_in_script_params(workspace):
    """It used to hang while hashing the node's params; now the loader stops at the alias that crosses the budget."""
    (workspace / "components" / "x.py").write_text("print('SIGNAL_START\\n[]\\nSIGNAL_END')\n")
    text = GOOD.replace("signals:\n", f"signals:\n  - {{name: sc, component: script, path: components/x.py, "
                                      f"params: {bomb()}}}\n")
    (workspace / "s.yaml").write_text(text)
    proc = cli(workspace, "run", "s.yaml", "--out", "out")
    assert "Traceback" not in proc.stderr and (proc.returncode, proc.stdout) == (2, "")
    where, message = proc.stderr.removeprefix("error: s.yaml: line 9, column ").split(": ", 1)
    assert message == ("aliases expand this document by more than 100,000 values (an alias bomb?); write the values "
                       "out\n")
    line = text.splitlines()[8]  # a4 lists a3 (11,111 values) ten times: the budget runs out among those aliases
    assert line.index("a4: &a4") < int(where) - 1 < line.index("a5: &a5")
    assert not (workspace / "out").exists()


def test_alias_budget_in_process():
    with quickly(), pytest.raises(ConfigError, match="alias bomb"):
        load_yaml(f"x: {bomb(40)}\n", file="b.yaml")
    # an honest use of anchors stays fine, up to the budget
    values = load_yaml("base: &b {a: 1, b: 2}\nx: [*b, *b]\n", file="ok.yaml")
    assert values["x"] == [{"a": 1, "b": 2}] * 2
    assert load_yaml(f"a: &a [{', '.join(['1'] * (MAX_ALIAS_VALUES - 1))}]\nb: *a\n", file="ok.yaml")["b"][-1] == 1


@pytest.mark.parametrize("text, problem", [
    ("x: &a [1, *a]\n", "line 1, column 11: alias *a is inside the collection it refers to (a recursive structure)"),
    # the top mapping is level 1: the 100th bracket opens level 101
    ("x: " + "[" * 100_000 + "]" * 100_000 + "\n", f"line 1, column {3 + MAX_DEPTH}: nested more than "
                                                   f"{MAX_DEPTH} levels deep"),
    ("x: " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n", f"line 1, column {4 * MAX_DEPTH}: nested more than "
                                                           f"{MAX_DEPTH} levels deep"),
    ("x: 0x" + "f" * 4000 + "\n", "line 1, column 4: integer of 4,002 characters has more than 4300 digits; write a "
                                   "smaller number (or quote it to make it a string)"),
], ids=["recursive-alias", "deep-sequences", "deep-mappings", "huge-hex-integer"])
def test_recursive_deep_and_huge_yaml(text, problem):
    """A recursive alias or 100,000 nested brackets (which crashed libyaml's composer: a segfault) are refused."""
    with quickly(), pytest.raises(ConfigError) as info:
        load_yaml(text, file="y.yaml")
    if str(info.value) == f"y.yaml: line 1, column 1003: nested more than {MAX_DEPTH} levels deep":
        problem = problem.replace(f"column {3 + MAX_DEPTH}:", "column 1003:")  # PyYAML 6.0.4: libyaml's own bound
    assert str(info.value) == f"y.yaml: {problem}"


def test_nested_a_hundred_levels_is_fine():
    """The top mapping and 99 sequences are 100 levels: allowed; one more is not."""
    value = load_yaml("x: " + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\n", file="ok.yaml")["x"]
    for _ in range(MAX_DEPTH - 2):
        value = value[0]
    assert value == [1]
    with pytest.raises(ConfigError, match="nested more than"):
        load_yaml("x: " + "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH + "\n", file="deep.yaml")


# --- templates ------------------------------------------------------------------------------------------------------

def template_error(text: str) -> str:
    with quickly(), pytest.raises(ConfigError) as info:
        render_template(text, {}, file="t.yaml")
    return str(info.value)


@pytest.mark.parametrize("template, message", [
    ("{{ 2**(2**40) }}", "2 ** 1099511627776 would have more than 4300 digits"),
    ("{{ 'a'*10**10 }}", "'a' * 10000000000 would be longer than 1,000,000 characters or items"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "loops and macro calls run more than 100,000 times in all"),
])
def test_template_bombs_through_the_cli(workspace, template, message):
    (workspace / "s.yaml").write_text(GOOD.replace("name: demo\n", f"name: demo\n# {template}\n"))
    assert_refused(cli(workspace, "run", "s.yaml"), f"s.yaml: line 2: template error: {message}")


@pytest.mark.parametrize("template, message", [
    ("{{ (10**4000) * (10**4000) }}", "<4001-digit int> * <4001-digit int> would have more than 4300 digits"),
    ("{{ ('ff' * 2500)|int(base=16) }}", "filter 'int' gave an integer of more than 4300 digits"),
    ("{% set ns = namespace(x='ab') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
     "~ would be longer than 1,000,000 characters or items"),
    ("{% set ns = namespace(x=[1]) %}{% for i in range(60) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
     "'+' would be longer than 1,000,000 characters or items"),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
     "loops and macro calls run more than 100,000 times in all"),
    ("{% for c in 'x' * 1000 %}{% for d in 'y' * 1000 %}{% endfor %}{% endfor %}",
     "loops and macro calls run more than 100,000 times in all"),
    ("{{ '%0999999999d' % 1 }}", "'%' would be longer than 1,000,000 characters or items"),
    ("{{ '{:>999999999}'.format(1) }}", "str.format would be longer than 1,000,000 characters or items"),
    ("{{ 'x'.ljust(10**9) }}", "str.ljust would be longer than 1,000,000 characters or items"),
    ("{{ 'ab'.replace('', 'x' * 10**6) }}", "str.replace would be longer than 1,000,000 characters or items"),
    ("{{ 'a'|center(10**10) }}", "filter 'center' would be longer than 1,000,000 characters or items"),
    ("{{ ('x' * 1000)|join('y' * 100000) }}", "filter 'join' would be longer than 1,000,000 characters or items"),
    ("{{ ('x' * 100000)|replace('x', 'y' * 1000) }}",
     "filter 'replace' would be longer than 1,000,000 characters or items"),
    ("{{ [1]|batch(10**9, 0)|list }}", "filter 'batch' would be longer than 1,000,000 characters or items"),
    ("{{ lipsum(10**6) }}", "lipsum would be longer than 1,000,000 characters or items"),
    ("{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}",
     "list.extend would be longer than 1,000,000 characters or items"),
    ("{{ ['x' * 1000000] * 1000 }}", "{{ ... }} would be longer than 1,000,000 characters or items"),
    ("{{ (['x' * 1000000] * 1000)|string }}", "filter 'string' would be longer than 1,000,000 characters or items"),
])
def test_template_bounds(template, message):
    assert template_error("a: 1\n" + template) == f"t.yaml: line 2: template error: {message}"


def test_the_rendered_text_is_bounded():
    assert template_error("{% for i in range(1001) %}{{ 'x' * 1000 }}{% endfor %}") == (
        "t.yaml: template error: the rendered text is longer than 1,000,000 characters")


def test_templates_within_the_bounds_render_as_before():
    text = ("{{ range(5)|join(',') }} {{ 'a' ~ 1 ~ 'b' }} {{ 2**10 }} {{ 'ab' * 3 }} {{ '%05d' % 42 }} "
            "{{ '{:>3}'.format('x') }} {% for a in [1, 2] %}{{ loop.index }}/{{ loop.length }}{% endfor %} "
            "{{ 'a'|center(5) }} {{ [1, 'a', {'k': none}] }} {{ [3, 1]|sort|first }} {{ [1, 2]|map('string')|join }} "
            "{% for i in range(2) recursive %}{{ i }}{% endfor %} {{ ('x' * (MAX // 2))|length }}")
    assert render_template(text, {"MAX": MAX_SIZE}, file="t.yaml") == (
        "0,1,2,3,4 a1b 1024 ababab 00042   x 1/22/2   a   [1, 'a', {'k': None}] 1 12 01 500000")
    loops = "{% for i in range(N) %}{% endfor %}{% for i in range(M) %}{% endfor %}done"
    assert render_template(loops, {"N": MAX_ITERATIONS, "M": 0}, file="t.yaml") == "done"
    assert "loops and macro calls" in template_error(loops.replace("N", str(MAX_ITERATIONS)).replace("M", "1"))


# --- data files ---------------------------------------------------------------------------------------------------

def test_a_timestamp_outside_pandas_range_names_the_row(workspace):
    lines = (workspace / "data.csv").read_text().splitlines()
    lines[-1] = "9999-12-31T00:00:00Z," + lines[-1].split(",", 1)[1]
    (workspace / "data.csv").write_text("\n".join(lines) + "\n")
    (workspace / "s.yaml").write_text(GOOD)
    assert_refused(cli(workspace, "run", "s.yaml"), f"{workspace}/data.csv: row {len(lines)}: timestamp "
                                                    f"9999-12-31T00:00:00+00:00 is outside the range candleflow "
                                                    f"handles (1677-09-21 to 2262-04-11)")


def nul_padded(path: Path, head: bytes, size: int) -> None:
    """``head``, then NUL bytes up to ``size``: a sparse file, so it takes no disk space."""
    with path.open("wb") as out:
        out.write(head)
        out.truncate(size)


def test_a_2_gib_mostly_nul_csv(workspace):
    """It used to be OOM-killed at 24 GB; now refused by its size, and with the limit raised, by its first NUL."""
    head = (workspace / "data.csv").read_bytes()
    nul_padded(workspace / "big.csv", head, 2 << 30)
    (workspace / "s.yaml").write_text(GOOD)
    assert_refused(cli(workspace, "run", "s.yaml", "--data", "big.csv"),
                   "big.csv: data file is 2 GiB, more than the 1 GiB allowed; raise the limit with --max-data-size")
    rows = head.count(b"\n")
    assert_refused(cli(workspace, "run", "s.yaml", "--data", "big.csv", "--max-data-size", "3G"),
                   f"big.csv: row {rows + 1}: NUL byte: this is not a CSV text file (binary data, or a file padded "
                   f"with zeros?)")


def test_a_bad_max_data_size(workspace):
    (workspace / "s.yaml").write_text(GOOD)
    assert_refused(cli(workspace, "run", "s.yaml", "--max-data-size", "lots"),
                   "--max-data-size: 'lots' is not a size (e.g. 4G, 500M, 2000000)")


@pytest.mark.parametrize("size, expected", [("4G", 4 << 30), ("500M", 500 << 20), ("1.5GiB", 3 << 29), ("2000", 2000),
                                            ("64kb", 64 << 10)])
def test_sizes(size, expected):
    assert parse_size(size) == expected


def test_data_file_bounds_in_process(workspace):
    data = workspace / "data.csv"
    text = data.read_bytes()
    rows = text.count(b"\n")
    cases = {
        "nul-in-the-middle": (text.replace(b"\n", b"\n\0\0\0", 1), None, "row 2: NUL byte"),
        "nul-padded": (text + b"\0" * (3 << 20), None, f"row {rows + 1}: NUL byte"),
        "one-long-row": (text + b"x" * (2 << 20), None, f"row {rows + 1}: row longer than 1 MiB"),
        "over-the-limit": (text, len(text) - 1, f"data file is {format_size(len(text))}, more than the "
                                                f"{format_size(len(text) - 1)} allowed"),
    }
    for name, (content, limit, message) in cases.items():
        path = workspace / f"{name}.csv"
        path.write_bytes(content)
        with quickly(), pytest.raises(DataError) as info:
            load_candles(path, max_bytes=limit)
        assert str(info.value).startswith(f"{path}: {message}"), (name, str(info.value))
    # a gzip bomb: 3 KiB on disk, 300 MiB of text: refused once the text passes the limit
    bomb_file = workspace / "bomb.csv.gz"
    with gzip.open(bomb_file, "wb") as out:
        out.write(text)
        out.write(b"\n" * (300 << 20))
    with quickly(), pytest.raises(DataError, match="holds more than the 10 MiB of text allowed"):
        load_candles(bomb_file, max_bytes=10 << 20)
    # and a good file reads exactly as pandas reads it, compressed or not
    with gzip.open(workspace / "data.csv.gz", "wb") as out:
        out.write(text)
    expected = load_candles(data)
    assert load_candles(workspace / "data.csv.gz").equals(expected)
    assert expected.index[0] == pd.Timestamp(text.splitlines()[1].split(b",")[0].decode())


# --- NUL bytes in paths --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, where", [
    (("{path: data.csv}", '{path: "data\\0.csv"}'), "data.path"),
    (("signals:\n", 'signals:\n  - {name: sc, component: script, path: "components/x\\0.py"}\n'), "signals[0].path"),
    (("rules:", 'components: ["lib\\0"]\nrules:'), "components[0]"),
], ids=["data-path", "script-path", "components-folder"])
def test_a_nul_byte_in_a_yaml_path(capsys, workspace, edit, where):
    (workspace / "s.yaml").write_text(GOOD.replace(*edit))
    if where == "data.path":  # one case in a subprocess is enough
        proc = cli(workspace, "validate", "s.yaml")
    else:
        proc = in_process(capsys, "validate", "s.yaml")
    assert_refused(proc, f"s.yaml: {where}: a path cannot contain a NUL byte")


def test_a_nul_byte_in_a_grid_path(capsys, workspace):
    (workspace / "s.yaml").write_text(GOOD)
    (workspace / "grid.yaml").write_text('symbols:\n  - {symbol: X, path: "x\\0.csv"}\n')
    assert_refused(in_process(capsys, "sweep", "s.yaml", "--grid", "grid.yaml"),
                   "grid.yaml: symbols[0].path: a path cannot contain a NUL byte")


@pytest.mark.parametrize("args", [["run", "s\0.yaml"], ["run", "s.yaml", "--data", "d\0.csv"],
                                  ["run", "s.yaml", "--out", "o\0"], ["validate", "s.yaml", "--components", "c\0"],
                                  ["report", "r\0", "-o", "x.html"], ["sweep", "s.yaml", "--grid", "g\0.yaml"]])
def test_a_nul_byte_on_the_command_line(capsys, workspace, args):
    """No process can be started with one (exec refuses it), so this is main() in-process, as an embedding caller."""
    (workspace / "s.yaml").write_text(GOOD)
    assert main(args) == 2
    out, err = capsys.readouterr()
    shown = next(a for a in args if "\0" in a).replace("\0", "\\0")
    number = next(i for i, a in enumerate(args, 1) if "\0" in a)
    assert (out, err) == ("", f"error: command line: argument {number} '{shown}' contains a NUL byte\n")


def test_a_nul_byte_in_api_paths(workspace):
    with pytest.raises(ConfigError, match=r"strategy path 's\\0.yaml' contains a NUL byte"):
        load_strategy("s\0.yaml")
    with pytest.raises(DataError, match=r"data file path 'd\\0.csv' contains a NUL byte"):
        load_candles("d\0.csv")
    with pytest.raises(ConfigError, match=r"grid path 'g\\0.yaml' contains a NUL byte"):
        load_grid("g\0.yaml")
    with pytest.raises(DataError, match=r"results folder path 'r\\0' contains a NUL byte"):
        read_results("r\0")


# --- sweep grids ----------------------------------------------------------------------------------------------------

def test_a_grid_of_10_to_the_8_combinations(capsys, workspace):
    (workspace / "s.yaml").write_text(GOOD.replace("period: 5}", "period: {{ a }}}").replace("period: 20}",
                                                                                            "period: {{ b }}}"))
    (workspace / "grid.yaml").write_text("parameters:\n  a: {start: 1, stop: 10000, step: 1}\n"
                                         "  b: {start: 1, stop: 10000, step: 1}\n")
    assert_refused(cli(workspace, "sweep", "s.yaml", "--grid", "grid.yaml"),
                   "grid.yaml: the grid has 100,000,000 combinations (10,000 x 10,000), more than the 1,000,000 "
                   "allowed; raise the limit with --max-combinations")
    (workspace / "grid.yaml").write_text("parameters:\n  a: [1, 2]\n  b: [3, 4]\n")
    assert_refused(in_process(capsys, "sweep", "s.yaml", "--grid", "grid.yaml", "--max-combinations", "3"),
                   "grid.yaml: the grid has 4 combinations (2 x 2), more than the 3 allowed; raise the limit with "
                   "--max-combinations")


def test_combinations_are_counted_before_they_are_listed(tmp_path):
    spec = SweepSpec.model_validate({"parameters": {"a": {"start": 0, "stop": 10 ** 12, "step": 1},
                                                    "b": {"start": 0.0, "stop": 1.0, "step": 2.0 ** -30}},
                                     "symbols": [{"symbol": "X", "sample": "eurusd_1h"},
                                                 {"symbol": "Y", "sample": "eurusd_1h"}]})
    assert spec.counts() == [2, 10 ** 12 + 1, 2 ** 30 + 1]
    with quickly(), pytest.raises(ConfigError, match=r"^the grid has 2,147,483,650,002,147,483,650 combinations "
                                                      r"\(2 x 1,000,000,000,001 x 1,073,741,825\)"):
        combinations(spec)
    small = SweepSpec.model_validate({"parameters": {"a": [1, 2], "b": {"start": 1, "stop": 5, "step": 2}}})
    assert small.counts() == [2, 3] and len(combinations(small, limit=6)) == 6
    with pytest.raises(ConfigError, match="more than the 5 allowed"):
        combinations(small, limit=5)
    with pytest.raises(ConfigError, match="parameters.a: the range has more values than can be counted"):
        (tmp_path / "grid.yaml").write_text("parameters:\n  a: {start: 0, stop: 1.0e+300, step: 1.0e-300}\n")
        load_grid(tmp_path / "grid.yaml")


# --- results folders ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """One good results folder, written by a real run."""
    folder = tmp_path_factory.mktemp("results")
    write_candles(generate_candles(120, seed=3), folder / "data.csv")
    (folder / "s.yaml").write_text(GOOD)
    code = main(["run", str(folder / "s.yaml"), "--out", str(folder / "out"), "--no-cache", "-q",
                 "--scheduler", "sync"])
    assert code == 0
    return folder / "out"


def damaged(results: Path, tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "damaged"
    shutil.copytree(results, folder)
    (folder / name).write_text(text)
    if name.endswith(".csv"):
        (folder / name.replace(".csv", ".parquet")).unlink(missing_ok=True)  # as if written with --format csv
    (folder / "graph.svg").unlink(missing_ok=True)  # so nodes.json is read and used too
    return folder


def test_report_on_a_malformed_metrics_json(results, tmp_path):
    folder = damaged(results, tmp_path, "metrics.json", '{"metrics": ')
    assert_refused(cli(tmp_path, "report", "damaged", "-o", "r.html"),
                   "damaged/metrics.json: not valid JSON: Expecting value: line 1 column 13 (char 12)")
    assert not (tmp_path / "r.html").exists() and folder.is_dir()


@pytest.mark.parametrize("name, text, message", [
    ("metrics.json", "[1, 2]", "metrics.json: expected a JSON object"),
    ("metrics.json", '{"metrics": {}, "run": {}}', "metrics.json: run.strategy: Field required"),
    ("metrics.json", '{"metrics": {"x": %s}}' % BIG_INT, "metrics.json: not valid JSON: a number in it has more "
                                                         "than 4300 digits"),
    ("nodes.json", '[{"name": "x", "kind": "indicator", "key": "k", "seconds": "slow"}]',
     "nodes.json: [0].seconds: Input should be a valid number, unable to parse string as a number"),
    ("nodes.json", '[{"name": "x", "kind": "indicator", "key": "k", "colour": "red"}]',
     "nodes.json: [0].colour: Unexpected keyword argument"),
    ("trades.csv", "x\n1\n", "trades.csv: missing column(s): side, size, entry_bar, entry_time, entry_price, exit_bar, "
                             "exit_time, exit_price, pnl, return_pct, commission, spread_slippage, exit_reason"),
    ("equity.csv", "time,equity,drawdown,position\nnot-a-time,1,0,0\n", "equity.csv: row 2: 'time' value 'not-a-time' is not a time"),
    ("equity.csv", "time,equity,drawdown,position\n2024-01-01T00:00:00Z,rich,0,0\n",
     "equity.csv: row 2: column 'equity' has a non-numeric value 'rich'"),
    ("candles.csv", "", "candles.csv: cannot read CSV: No columns to parse from file"),
])
def test_report_on_malformed_result_files(capsys, results, tmp_path, monkeypatch, name, text, message):
    damaged(results, tmp_path, name, text)
    monkeypatch.chdir(tmp_path)
    with quickly():
        code = main(["report", "damaged", "-o", "r.html"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", f"error: damaged/{message}\n")
    assert not (tmp_path / "r.html").exists()


def test_report_on_a_good_folder_still_works(capsys, results, tmp_path):
    assert main(["report", str(results), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size > 100_000
