"""Library versions recorded in every explanation, so an old result can be reproduced or questioned."""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

ALWAYS = ("numpy", "scikit-learn", "pandas")


def library_versions(*names: str) -> dict[str, str]:
    return dict(_versions(names))


@lru_cache(maxsize=64)
def _versions(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Reading package metadata costs milliseconds; versions cannot change inside a process."""
    versions: dict[str, str] = {}
    for name in (*ALWAYS, *names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return tuple(versions.items())
