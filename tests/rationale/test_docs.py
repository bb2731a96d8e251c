"""docs/data-scientist.md runs: every ```python block, in order, in one namespace, against a served instance."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.heavy
DOC = Path(__file__).resolve().parents[2] / "docs" / "data-scientist.md"


def test_the_walk_through_runs(served: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 10
    namespace: dict[str, object] = {"__name__": "walk_through"}
    for number, block in enumerate(blocks, 1):
        code = block.replace('"http://127.0.0.1:8000"', repr(served))
        exec(compile(code, f"{DOC.name} block {number}", "exec"), namespace)
