"""The one verification core: ``assets/verify.py`` (standard library only) loaded as a module.

The same file is shipped in every bundle, runs as ``python3 -I -S verify.py``, backs
``rationale verify --bundle``, and renders the bundle's views for the exporter — so the exporter, the
regulator's verifier and ours cannot drift apart.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from functools import cache
from importlib import resources
from types import ModuleType


def asset(name: str) -> bytes:
    """A file shipped in every bundle (verify.py, FORMAT.md), as the package holds it."""
    return resources.files("audit.bundle").joinpath("assets", name).read_bytes()


@cache
def core() -> ModuleType:
    """assets/verify.py as a module, loaded once from its own source."""
    source = asset("verify.py")
    spec = importlib.util.spec_from_loader("audit.bundle._verify_core", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclass-free, but keep it importable for pickling-free reuse
    exec(compile(source, "audit/bundle/assets/verify.py", "exec"), module.__dict__)
    return module


def verify_py_sha256() -> str:
    """SHA-256 of the verify.py every bundle ships: what a regulator compares their copy with."""
    return hashlib.sha256(asset("verify.py")).hexdigest()
