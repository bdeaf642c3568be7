"""The architecture holds: layers and acyclic packages (import-linter), lazy imports with a reason, public API.

* ``lint-imports`` checks the contracts in ``pyproject.toml``: each layer imports only
  the layers below it, and no package's subpackages import each other in a cycle.
* An import inside a function is allowed only with a reason on its line (a comment):
  a heavy or optional dependency, or keeping a light process light.
* Every Python example in README.md imports from ``candleflow`` itself, never a deep module.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import candleflow

SRC = Path(candleflow.__file__).resolve().parent
REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                           "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append((node.lineno, ast.unparse(node)))
    return found


def test_every_function_level_import_says_why():
    lines_by_file = {}
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        lines = lines_by_file.setdefault(path, path.read_text(encoding="utf-8").splitlines())
        for lineno, text in _function_level_imports(path):
            block = _import_block(lines, lineno)
            if not any("#" in line for line in block):
                missing.append(f"{path.relative_to(SRC.parent)}:{lineno}: {text}")
    assert not missing, "imports inside functions need a reason comment:\n" + "\n".join(missing)


def _import_block(lines: list[str], lineno: int) -> list[str]:
    """The import's own line, and the comment line right above it (a reason may stand there)."""
    block = [lines[lineno - 1]]
    if lineno >= 2 and lines[lineno - 2].strip().startswith("#"):
        block.append(lines[lineno - 2])
    return block


def test_readme_python_examples_use_the_public_api():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        for line in block.splitlines():
            match = re.match(r"\s*(?:from\s+(\S+)\s+import|import\s+(\S+))", line)
            if match and (match.group(1) or match.group(2)).startswith("candleflow"):
                assert (match.group(1) or match.group(2)) == "candleflow", line


def test_public_api_names_resolve():
    for name in candleflow.__all__:
        assert getattr(candleflow, name) is not None
    assert {"NodeCache", "ScriptOptions", "run_sweep", "write_report", "render_graph"} <= set(candleflow.__all__)
