"""`audit` imports nothing of ours (PRODUCT §2): a verifier can be lifted out with only its own package."""

from __future__ import annotations

import ast
from pathlib import Path

AUDIT = Path(__file__).resolve().parents[2] / "audit"
OURS = {"api", "storage", "explain", "rationale", "bench", "tests"}


def test_audit_imports_no_other_package_of_ours():
    offending = []
    for path in AUDIT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offending += [f"{path.relative_to(AUDIT.parent)}: {n}" for n in names if n.split(".")[0] in OURS]
    assert not offending, offending
