"""The export payload class round-trips and refuses malformed lists; the archive check of the verification
core accepts a ZIP64 archive (more than 65,535 members, as a 100,000-decision bundle has)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from audit.bundle.core import core
from audit.bundle.payload import ExportCreated, ExportPayloadError, MatchedDecision


def _payload(**changes: object) -> ExportCreated:
    fields: dict[str, object] = {
        "export_id": "e1",
        "requested_by": "cli",
        "filter": {"model": "credit@1"},
        "tree_size": 10,
        "manifest_sha256": "ab" * 32,
        "decisions": (MatchedDecision("d-1", 3, (4, 5), (7,)), MatchedDecision("d-2", 6)),
        "models": (0,),
    }
    fields.update(changes)
    return ExportCreated(**fields)  # type: ignore[arg-type]


def test_the_export_payload_round_trips_and_lists_its_entries():
    payload = _payload()
    assert ExportCreated.from_payload(payload.to_payload()) == payload
    assert payload.indices == [0, 3, 4, 5, 6, 7]
    assert payload.to_payload()["version"] == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"manifest_sha256": "AB" * 32},
        {"models": (3,)},  # listed twice
        {"tree_size": 7},  # an entry at or after the tree size
        {"decisions": (MatchedDecision("d-1", 3), MatchedDecision("d-1", 4))},
    ],
)
def test_malformed_export_payloads_are_refused(changes):
    with pytest.raises(ExportPayloadError):
        _payload(**changes)


def test_an_unknown_version_is_refused():
    data = _payload().to_payload()
    with pytest.raises(ExportPayloadError):
        ExportCreated.from_payload({**data, "version": 2})
    with pytest.raises(ExportPayloadError):
        ExportCreated.from_payload({**data, "extra": 1})


def test_a_zip64_archive_passes_the_archive_rules(tmp_path: Path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(65_600):
            z.writestr(zipfile.ZipInfo(f"entries/{i}.json", date_time=(2000, 1, 1, 0, 0, 0)), b"{}")
    with open(path, "rb") as handle:
        handle.seek(-22 - 20, 2)
        assert handle.read(4) == b"PK\x06\x07"  # really ZIP64: the end locator precedes the end record
    archive = core().Archive(str(path))
    assert len(archive.names) == 65_600
    archive.close()
    lines: list[str] = []
    assert core().verify(str(path), [], out=lines.append) == 1
    assert lines[-1] == "FAILED  checkpoint.txt is missing"
