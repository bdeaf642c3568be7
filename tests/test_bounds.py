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

import os
import resource
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from candleflow.config import render_template
from candleflow.config.loader import MAX_ALIAS_VALUES, MAX_DEPTH, load_yaml
from candleflow.config.sandbox import MAX_ITERATIONS, MAX_SIZE
from candleflow.data import generate_candles, write_candles
from candleflow.errors import ConfigError

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
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
"""
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


def test_a_huge_integer_in_a_grid(workspace):
    (workspace / "s.yaml").write_text(GOOD.replace("period: 5}", "period: {{ fast }}}"))
    (workspace / "grid.yaml").write_text(f"parameters:\n  fast: [5, {BIG_INT}]\n")
    assert_refused(cli(workspace, "sweep", "s.yaml", "--grid", "grid.yaml"), f"grid.yaml: line 2, column 13: "
                                                                               f"{INT_PROBLEM}")


def test_a_huge_integer_in_a_set_value(workspace):
    (workspace / "s.yaml").write_text(GOOD.replace("period: 5}", "period: {{ fast }}}"))
    assert_refused(cli(workspace, "validate", "s.yaml", "--set", f"fast={BIG_INT}"), f"--set fast: {INT_PROBLEM}")


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
    assert message == "aliases expand this document by more than 100,000 values (an alias bomb?); write the values out\n"
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
