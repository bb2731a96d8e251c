"""Library versions recorded in every explanation, so an old result can be reproduced or questioned."""

from __future__ import annotations

from importlib import metadata

ALWAYS = ("numpy", "scikit-learn", "pandas")


def library_versions(*names: str) -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in (*ALWAYS, *names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
