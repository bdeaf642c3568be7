"""Set-up as a newcomer meets it (issue 14, part 3): on Debian `pip install` outside a virtual environment fails
(PEP 668) and there is no `python` command, so the README's two set-up commands create and use `.venv`, `.ci/run` is
exactly the second one, and the set-up script installs into `.venv` only (asking apt for python3-venv if it must).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_the_readme_commands_use_a_venv_and_ci_runs_the_second():
    install, tests = setup_commands()
    assert install == "bash scripts/setup.sh && .venv/bin/candleflow run strategies/ma_crossover.yaml"
    assert tests == "bash scripts/setup-test-env.sh && .venv/bin/python -m pytest -q"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == tests
    assert ".venv/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    for command in (install, tests):  # no bare `python` or `pip`: Debian has neither on PATH
        assert not re.search(r"(^|&& )(python|pip)\b", command), command


STUB = """#!/usr/bin/env bash
echo "{name} $*" >> "$LOG"
{body}
"""
# python3 without python3-venv, as on Debian: `-m venv` fails until apt has installed the package
PYTHON3 = """if [ "$1 $2" = "-m venv" ]; then
    grep -q "install .*python3-venv" "$LOG" || { mkdir -p "$3/bin"; exit 1; }
    mkdir -p "$3/bin"
    printf '#!/usr/bin/env bash\\necho "venv-python $*" >> "$LOG"\\n' > "$3/bin/python"
    chmod +x "$3/bin/python"
fi
"""


def test_the_setup_script_installs_into_the_venv_only(tmp_path):
    """The script in a copy of the repository, with stub commands: python3 without venv support, apt, sudo."""
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    for name in ("setup-test-env.sh", "setup.sh"):
        script = (REPO / "scripts" / name).read_text(encoding="utf-8")
        (tmp_path / "repo" / "scripts" / name).write_text(script, encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {"python3": PYTHON3, "python": "exit 1", "pip": "exit 1", "apt-get": "", "sudo": '"$@"',
             "dot": "", "chromium": "", "strace": ""}
    for name, body in stubs.items():
        (bin_dir / name).write_text(STUB.format(name=name, body=body), encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log), "HOME": str(tmp_path)}
    for _ in range(2):  # safe to run again: the second run reuses .venv
        done = subprocess.run(["bash", "scripts/setup-test-env.sh"], cwd=tmp_path / "repo", env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    calls = log.read_text(encoding="utf-8").splitlines()
    apt = [c for c in calls if c.startswith("apt-get install")]
    assert len(apt) == 1 and apt[0].endswith(" python3-venv"), calls
    assert [c for c in calls if c.startswith("python3 -m venv")] == ["python3 -m venv .venv"] * 2, calls
    assert [c for c in calls if c.startswith(("venv-python", "python ", "pip "))] == [
        "venv-python -m pip install -q -e .[test]"] * 2, calls
    assert os.access(tmp_path / "repo" / ".venv" / "bin" / "python", os.X_OK)


def test_the_first_command_sets_up_a_venv_without_the_test_extras(tmp_path):
    """``scripts/setup.sh`` alone, as the first README command runs it: the package only, into .venv."""
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    (tmp_path / "repo" / "scripts" / "setup.sh").write_text((REPO / "scripts" / "setup.sh").read_text("utf-8"), "utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"python3": PYTHON3, "python": "exit 1", "pip": "exit 1", "apt-get": "", "sudo": '"$@"'}.items():
        (bin_dir / name).write_text(STUB.format(name=name, body=body), encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log), "HOME": str(tmp_path)}
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path / "repo", env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    calls = log.read_text(encoding="utf-8").splitlines()
    assert [c for c in calls if c.startswith("apt-get install")][0].endswith(" python3-venv"), calls
    pips = [c for c in calls if c.startswith(("venv-python", "python ", "pip "))]
    assert pips == ["venv-python -m pip install -q -e ."]
