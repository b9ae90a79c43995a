"""Hard size caps and naming rules: modules, functions, test files, banned names, provider branches.

Exits non-zero listing every violation. ``scripts/size_allowlist.txt`` may name files exempt from
a cap (one path per line); that list may only shrink.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE_CAP = 800
FUNCTION_CAP = 80
TEST_FILE_CAP = 1000
BANNED_NAMES = {"utils.py", "helpers.py", "common.py", "misc.py", "base_utils.py"}
PROVIDER_BRANCH = re.compile(r"""if\s+[\w.]*provider[\w.]*\s*==\s*["']""")


def _allowlist() -> set[str]:
    path = ROOT / "scripts" / "size_allowlist.txt"
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def _check_source(path: Path, rel: str, problems: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    if path.name in BANNED_NAMES or path.stem.endswith("_v2"):
        problems.append(f"{rel}: module name says nothing; name it for what it is")
    if lines > MODULE_CAP:
        problems.append(f"{rel}: {lines} lines (cap {MODULE_CAP}); split it along a seam")
    if PROVIDER_BRANCH.search(text):
        problems.append(f"{rel}: branches on a provider name; express the difference as config or data")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > FUNCTION_CAP:
                problems.append(f"{rel}:{node.lineno} {node.name}() is {length} lines (cap {FUNCTION_CAP})")


def main() -> int:
    """Check every file; print problems; return the exit status."""
    allowed = _allowlist()
    problems: list[str] = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel not in allowed:
            _check_source(path, rel, problems)
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > TEST_FILE_CAP and rel not in allowed:
            problems.append(f"{rel}: {lines} lines (cap {TEST_FILE_CAP} for a test file)")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
