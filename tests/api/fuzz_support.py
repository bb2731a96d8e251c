"""The one place the fuzzers' request headers come from (tests/api/test_fuzz_openapi.py, test_hostile_json.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def fuzz_headers() -> dict[str, str]:
    """Headers sent with every fuzzed and seeding request: the fixture that builds the services fills in an
    admin key of that database (``tests.api.helpers.auth_headers``), so the fuzzers reach every route instead
    of stopping at 401."""
    return {}
