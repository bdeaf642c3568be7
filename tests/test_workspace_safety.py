"""The strategy file never executes code; component paths never leave the workspace.

Script and workspace components *are* code, run as the user with the user's
permissions; what the tests pin down is that (1) nothing in a YAML file or its
template can run code by itself, and (2) a strategy can only point at
components inside its own workspace: ``..``, absolute paths and symlinks that
lead outside are rejected at compile time, with the YAML path of the field.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import candleflow
from candleflow.cli import main
from candleflow.dag.compiler import resolve_in_workspace

STRATEGY = """\
name: demo
symbol: EURUSD
timeframe: 1h
data: {sample: eurusd_1h}
indicators:
  - {name: fast, component: sma, params: {period: 5}}
  - {name: slow, component: sma, params: {period: 20}}
signals:
  - {name: cross, component: ma_crossover, inputs: [fast, slow]}
rules: {entry: {golden_cross: buy}, exit: {death_cross: close}}
"""


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """``tmp/ws`` is the workspace (it has components/); ``tmp/outside.py`` and ``tmp/elsewhere/`` are not in it."""
    ws = tmp_path / "ws"
    (ws / "components").mkdir(parents=True)
    (ws / "components" / "inside.py").write_text("print('inside')\n")
    (tmp_path / "outside.py").write_text("print('outside')\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.delenv("CANDLEFLOW_DEBUG", raising=False)
    monkeypatch.chdir(ws)
    return ws.resolve()


def _candleflow() -> list[str]:
    exe = shutil.which("candleflow")
    return [exe] if exe else [sys.executable, "-m", "candleflow.cli"]


def validate(capsys, text: str) -> tuple[int, str]:
    Path("s.yaml").write_text(text)
    code = main(["validate", "s.yaml"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.err


# --- resolve_in_workspace ------------------------------------------------------------------------------------------

def test_paths_inside_the_workspace_resolve(layout):
    assert resolve_in_workspace(layout, "components/inside.py") == layout / "components" / "inside.py"
    assert resolve_in_workspace(layout, "components/../components/inside.py") == layout / "components" / "inside.py"
    assert resolve_in_workspace(layout, "not/yet/there.py") == layout / "not" / "yet" / "there.py"
    assert resolve_in_workspace(layout, ".") == layout


@pytest.mark.parametrize("relative", ["../outside.py", "components/../../outside.py", "..", "../ws_sibling/x.py"])
def test_dot_dot_escapes_are_rejected(layout, relative):
    assert resolve_in_workspace(layout, relative) is None


def test_absolute_paths_outside_are_rejected(layout):
    assert resolve_in_workspace(layout, str(layout.parent / "outside.py")) is None
    assert resolve_in_workspace(layout, "/etc/passwd") is None
    # an absolute path that happens to be inside is fine
    assert resolve_in_workspace(layout, str(layout / "components" / "inside.py")) == layout / "components" / "inside.py"


def test_symlinks_are_followed_before_the_check(layout):
    (layout / "components" / "link_out.py").symlink_to(layout.parent / "outside.py")
    (layout / "components" / "dir_out").symlink_to(layout.parent / "elsewhere", target_is_directory=True)
    (layout / "components" / "link_in.py").symlink_to(layout / "components" / "inside.py")
    assert resolve_in_workspace(layout, "components/link_out.py") is None
    assert resolve_in_workspace(layout, "components/dir_out") is None
    assert resolve_in_workspace(layout, "components/dir_out/anything.py") is None
    assert resolve_in_workspace(layout, "components/link_in.py") == layout / "components" / "inside.py"


def test_a_workspace_reached_through_a_symlink_still_works(layout, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(layout, target_is_directory=True)
    assert resolve_in_workspace(alias, "components/inside.py") == layout / "components" / "inside.py"
    assert resolve_in_workspace(alias, "../outside.py") is None


# --- through the CLI -------------------------------------------------------------------------------------------------

def script_signal(path: str) -> str:
    return STRATEGY.replace("signals:\n", f"signals:\n  - {{name: custom, component: script, path: '{path}'}}\n")


@pytest.mark.parametrize("path", ["../outside.py", "components/../../outside.py", "{parent}/outside.py",
                                  "scripts/link_out.py"])
def test_script_paths_outside_the_workspace(capsys, layout, path):
    # (a link in components/ is refused earlier, when the folder is scanned: see test_symlinks_leading_outside...)
    (layout / "scripts").mkdir()
    (layout / "scripts" / "link_out.py").symlink_to(layout.parent / "outside.py")
    path = path.format(parent=layout.parent)
    code, err = validate(capsys, script_signal(path))
    assert code == 2
    assert err == (f"error: s.yaml: signals[0].path: script '{path}' is outside the workspace {layout}; "
                   f"component paths must stay inside it\n")


def test_script_path_inside_the_workspace_compiles(capsys, layout):
    (layout / "components" / "link_in.py").symlink_to(layout / "components" / "inside.py")
    code, err = validate(capsys, script_signal("components/link_in.py"))
    assert (code, err) == (0, "")


@pytest.mark.parametrize("folder", ["..", "../elsewhere", "{parent}/elsewhere", "lib_link"])
def test_component_folders_outside_the_workspace(capsys, layout, folder):
    (layout / "lib_link").symlink_to(layout.parent / "elsewhere", target_is_directory=True)
    folder = folder.format(parent=layout.parent)
    code, err = validate(capsys, STRATEGY + f"components: ['{folder}']\n")
    assert code == 2
    assert err == f"error: s.yaml: components[0]: folder '{folder}' is outside the workspace {layout}\n"


def test_an_escaping_component_folder_is_never_imported(capsys, layout):
    """The check happens before discovery: a component file outside is not even parsed, let alone run."""
    marker = layout.parent / "imported.txt"
    (layout.parent / "elsewhere" / "evil.py").write_text(
        f"from candleflow import indicator\nopen({str(marker)!r}, 'w').write('ran')\n"
        f"@indicator('evil')\ndef evil(close):\n    return close\n")
    code, err = validate(capsys, STRATEGY + "components: [../elsewhere]\n")
    assert code == 2 and not marker.exists()


# --- symlinks inside the workspace's component folders ---------------------------------------------------------------

EVIL = ("from candleflow import indicator\nopen({marker!r}, 'w').write('ran')\n"
        "@indicator('evil')\ndef evil(close):\n    return close\n")


def _escape_message(link: str, ws: Path) -> str:
    return (f"error: {link}: symlink leads outside the workspace {ws}; component files and folders must stay "
            f"inside it\n")


def test_a_component_file_linked_from_outside_is_rejected_by_the_real_cli(layout):
    """The installed CLI in a subprocess: the linked file is neither imported nor named by its target."""
    marker = layout.parent / "imported.txt"
    (layout.parent / "elsewhere" / "evil.py").write_text(EVIL.format(marker=str(marker)))
    (layout / "components" / "evil.py").symlink_to(layout.parent / "elsewhere" / "evil.py")
    Path("s.yaml").write_text(STRATEGY)
    env = {**os.environ, "CANDLEFLOW_DEBUG": ""}
    proc = subprocess.run(_candleflow() + ["run", "s.yaml", "--out", "out", "-q", "--no-cache"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", _escape_message("components/evil.py", layout))
    assert not marker.exists() and not Path("out").exists()


@pytest.mark.parametrize("link, target, extra", [
    ("components/evil.py", "elsewhere/evil.py", ""),                    # a file
    ("components/lib", "elsewhere", ""),                                # a folder
    ("components/sub/evil.py", "elsewhere/evil.py", ""),                # a file deeper down
    ("lib/evil.py", "elsewhere/evil.py", "components: [lib]\n"),        # in a folder the strategy lists
    ("components", "elsewhere", ""),                                    # the components folder itself
])
def test_symlinks_leading_outside_are_rejected_at_discovery(capsys, layout, link, target, extra):
    marker = layout.parent / "imported.txt"
    (layout.parent / "elsewhere" / "evil.py").write_text(EVIL.format(marker=str(marker)))
    if link == "components":
        shutil.rmtree(layout / "components")
    (layout / link).parent.mkdir(parents=True, exist_ok=True)
    (layout / link).symlink_to(layout.parent / target)
    code, err = validate(capsys, STRATEGY + extra)
    assert (code, err) == (2, _escape_message(link, layout))
    assert not marker.exists()


def test_a_symlink_loop_is_named_not_followed(capsys, layout):
    (layout / "components" / "a.py").symlink_to(layout / "components" / "b.py")
    (layout / "components" / "b.py").symlink_to(layout / "components" / "a.py")
    code, err = validate(capsys, STRATEGY)
    assert code == 2 and err.startswith("error: components/a.py: symlink cannot be resolved (a loop?)")


def test_symlinks_that_stay_inside_are_followed(capsys, layout):
    """A linked folder inside the workspace is scanned like any other (link loops end): its component is found."""
    (layout / "shared").mkdir()
    (layout / "shared" / "mine.py").write_text(
        "from candleflow import indicator\n@indicator('mine')\ndef mine(close):\n    return close\n")
    (layout / "components" / "shared").symlink_to(layout / "shared", target_is_directory=True)
    (layout / "components" / "again").symlink_to(layout / "components", target_is_directory=True)
    (layout / "components" / "notes.md").symlink_to("/etc/hostname")  # not a component file: ignored
    text = STRATEGY.replace("indicators:\n", "indicators:\n  - {name: m, component: mine}\n")
    assert validate(capsys, text) == (0, "warning: s.yaml: indicators[0]: indicator 'm' is read by nothing (no "
                                         "signal, condition or indicator names it); remove it or use it\n")


# --- the YAML never runs code --------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:subprocess.check_call [['touch', '{marker}']]",
    "!!python/name:os.system",
])
def test_python_tags_are_rejected_and_run_nothing(capsys, layout, payload):
    marker = layout / "pwned"
    code, err = validate(capsys, STRATEGY.replace("name: demo", "name: " + payload.format(marker=marker)))
    assert code == 2 and not marker.exists()
    assert re.fullmatch(r"error: s\.yaml: line 1, column 7: invalid YAML: could not determine a constructor "
                        r"for the tag 'tag:yaml\.org,2002:python/[a-z/]+:[a-z.]+\w*'\n", err), err


@pytest.mark.parametrize("expression, attribute, owner", [
    ("lipsum.__globals__['os'].system('touch {marker}')", "__globals__", "function"),
    ("cycler.__init__.__globals__.os.system('touch {marker}')", "__init__", "type"),
    ("''.__class__.__mro__[1].__subclasses__()", "__class__", "str"),
])
def test_templates_are_sandboxed(capsys, layout, expression, attribute, owner):
    marker = layout / "pwned"
    code, err = validate(capsys, STRATEGY.replace("name: demo", "name: {{ %s }}" % expression.format(marker=marker)))
    assert code == 2 and not marker.exists()
    assert err == (f"error: s.yaml: line 1: template error: access to attribute '{attribute}' of '{owner}' object "
                   f"is unsafe.\n")


def test_no_unsafe_yaml_or_eval_in_the_package():
    """The code reading strategies and data never uses an unsafe YAML loader, eval, or exec.

    (The script worker execs the user's own script file: that is what a script component is.)
    """
    root = Path(candleflow.__file__).parent
    unsafe = re.compile(r"\byaml\.(unsafe_load|full_load|Loader|UnsafeLoader|FullLoader)\b|\b(eval|exec)\(")
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "script":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if unsafe.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert found == []
