"""Regulator exports: select decisions at one tree size, write the content, commit it in an export entry, seal."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from api.container import Services
from api.services.checkpoints import publish_now
from api.services.witnessing import latest_witnessed, parse_witnesses
from audit.bundle.core import asset, core, verify_py_sha256
from audit.bundle.payload import ExportCreated, MatchedDecision
from audit.bundle.writer import ASSETS, BundleWriter
from audit.cosignature import Cosignature
from audit.entry import EntryDraft, StoredEntry, format_timestamp
from audit.note import verifier_key
from audit.port import StoredCheckpoint, StoredKey
from storage.cosignatures import CosignatureRepository
from storage.errors import NotFoundError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportFilter:
    model: str | None = None
    subject_refs: list[str] | None = None
    decision_ids: list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("since", "until"):
            if data[key] is not None:
                data[key] = format_timestamp(data[key])
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True, slots=True)
class ExportRecord:
    export_id: str
    bundle_path: str
    bundle_sha256: str
    size: int
    entries: int
    decisions: int
    tree_size: int
    ledger_index: int
    created_at: str
    filter: dict[str, Any] = field(default_factory=dict)
    manifest_sha256: str = ""
    checkpoint_size: int = 0
    verifier_key: str = ""  # the key that signed the bundle's checkpoint: what the regulator pins
    verify_py_sha256: str = ""  # SHA-256 of the verify.py shipped in the bundle
    witnesses: list[str] = field(default_factory=list)  # the witness keys whose cosignatures the checkpoint carries

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("bundle_path")
        return data


def export_dir(services: Services) -> Path:
    path = services.settings.data_dir / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _select(services: Services, flt: ExportFilter) -> list[str]:
    return _selection(services, flt)[1]


def _selection(services: Services, flt: ExportFilter) -> tuple[int, list[str]]:
    """The ledger size the filter is evaluated at, and the matching decision ids in storage order."""
    with services.db.unit_of_work(write=False) as uow:
        tree_size = uow.ledger.size()
        model_ids = None
        if flt.model:
            name, _, version = flt.model.partition("@")
            model_ids = [r.id for r in uow.models.list(name=name) if not version or r.version == version]
        found: dict[str, int] = {}  # decision id -> storage sequence
        subjects: list[str | None] = list(flt.subject_refs) if flt.subject_refs else [None]
        # named decisions are looked up by id (in slices), not found by reading every decision
        named = list(dict.fromkeys(flt.decision_ids)) if flt.decision_ids is not None else None
        slices = [named[i : i + 500] for i in range(0, len(named), 500)] if named is not None else [None]
        for subject in subjects:
            for wanted in slices:
                cursor = None
                while True:
                    page, cursor = uow.decisions.search(
                        model_version_ids=model_ids,
                        subject_ref=subject,
                        outcome=flt.outcome,
                        since=flt.since,
                        until=flt.until,
                        cursor=cursor,
                        limit=1000,
                        decision_ids=wanted,
                    )
                    found.update((d.decision_id, d.seq) for d in page if d.ledger_index < tree_size)
                    if cursor is None:
                        break
    return tree_size, sorted(found, key=found.__getitem__)


def create_export(
    services: Services,
    *,
    flt: ExportFilter,
    requested_by: str = "api",
    progress: Callable[[int], None] | None = None,
) -> ExportRecord:
    """Build the bundle for ``flt``, committed by the ledger before it is sealed (assets/FORMAT.md).

    The filter is evaluated at one tree size; the content (entries, views, cards, verify.py) is written and
    listed in manifest.json; an export.created entry commits to the manifest's hash and to what the filter
    matched; a checkpoint covering that entry is published; the entry, the proofs, the checkpoint and the keys
    seal the bundle. Memory stays bounded: decisions are read in chunks and the views are streamed to disk.
    """
    tree_size, decision_ids = _selection(services, flt)
    if not decision_ids:
        raise NotFoundError("no recorded decision matches the export filter")
    view = core()
    export_id = uuid.uuid4().hex
    path = export_dir(services) / f"{export_id}.zip"
    work = Path(tempfile.mkdtemp(dir=export_dir(services), prefix=f".{export_id}-"))
    created_at = format_timestamp(services.clock())
    writer = BundleWriter(path)
    try:
        matched: list[MatchedDecision] = []
        leaves: dict[int, bytes] = {}

        def add_entry(entry: StoredEntry) -> dict[str, Any]:
            writer.add(f"entries/{entry.index}.json", entry.canonical)
            leaves[entry.index] = entry.leaf_hash
            return entry.document()

        with services.db.unit_of_work(write=False) as uow:
            model_index: dict[int, int] = {}  # model version id -> its model.registered entry
            for start in range(0, len(decision_ids), CHUNK):  # the models first: the report opens with them
                for selected in uow.decisions.get_many(decision_ids[start : start + CHUNK]):
                    if selected.model_version_id not in model_index:
                        found = uow.models.get_by_id(selected.model_version_id)
                        assert found is not None
                        model_index[selected.model_version_id] = found.ledger_index
            model_indices = set(model_index.values())
            models = [add_entry(uow.ledger.read(i)) for i in sorted(model_indices)]
            header = view.header_of(
                {
                    "origin": services.settings.origin,
                    "export_id": export_id,
                    "created_at": created_at,
                    "filter": flt.to_dict(),
                    "tree_size": tree_size,
                },
                len(decision_ids),
            )
            sinks = {name: open(work / name.replace("/", "_"), "wb") for name in view.VIEWS}  # noqa: SIM115
            try:
                views = view.Views(header, models, sinks)
                for start in range(0, len(decision_ids), CHUNK):
                    chunk = decision_ids[start : start + CHUNK]
                    for record in sorted(uow.decisions.get_many(chunk), key=lambda r: r.seq):
                        decision = add_entry(uow.ledger.read(record.ledger_index))
                        found_explanations = sorted(
                            e.ledger_index
                            for e in uow.explanations.for_decision(record.decision_id)
                            if e.ledger_index < tree_size
                        )
                        explanations = [add_entry(uow.ledger.read(i)) for i in found_explanations]
                        outcome = uow.outcomes.get(record.decision_id)
                        outcome_indices = (
                            [outcome["ledger_index"]] if outcome and outcome["ledger_index"] < tree_size else []
                        )
                        outcomes = [add_entry(uow.ledger.read(i)) for i in outcome_indices]
                        views.add(decision, explanations, outcomes)
                        matched.append(
                            MatchedDecision(
                                record.decision_id,
                                record.ledger_index,
                                tuple(found_explanations),
                                tuple(outcome_indices),
                            )
                        )
                        if progress is not None:
                            progress(1 + len(explanations) + len(outcomes))
                views.close()
            finally:
                for sink in sinks.values():
                    sink.close()
        if len(matched) != len(decision_ids):
            raise NotFoundError("a selected decision disappeared while exporting")
        for name in view.VIEWS:
            writer.add(name, work / name.replace("/", "_"))
        for model in models:
            writer.add(view.card_name(model["payload"]["model"]), view.render_card(model))
        for name in ASSETS:
            writer.add(name, asset(name))
        with services.db.unit_of_work(write=False) as uow:  # published keys and the keyring's (the signer)
            published = {k.key_id: k for k in [*uow.ledger.keys(), *services.keyring.all_public()]}
        writer.add("keys.json", _keys_json(list(published.values())))
        commitment = ExportCreated(
            export_id=export_id,
            requested_by=requested_by,
            filter=flt.to_dict(),
            tree_size=tree_size,
            manifest_sha256="0" * 64,
            decisions=tuple(matched),
            models=tuple(sorted(model_indices)),
        )
        manifest = writer.manifest(
            export_id=export_id,
            origin=services.settings.origin,
            created_at=created_at,
            flt=flt.to_dict(),
            tree_size=tree_size,
            indices=commitment.indices,
        )
        commitment = replace(commitment, manifest_sha256=hashlib.sha256(manifest).hexdigest())
        with services.db.unit_of_work() as uow:
            [entry] = services.ledger.append(uow.ledger, [EntryDraft(ExportCreated.TYPE, commitment.to_payload())])
        signed = publish_now(services)
        assert signed is not None and signed.tree_size > entry.index
        checkpoint, note, cosigned = _sealing_checkpoint(services, signed)
        leaves[entry.index] = entry.leaf_hash
        proofs = work / "proofs.jsonl"
        with services.db.unit_of_work(write=False) as uow:
            keys = uow.ledger.keys()  # a key rotated in since keys.json was written signs the checkpoint
            prove = services.ledger.inclusion_prover(uow.ledger, tree_size=checkpoint.tree_size)
            with open(proofs, "wb") as out:
                for index in [*commitment.indices, entry.index]:
                    line = {"index": index, "leaf_hash": leaves[index].hex(), "proof": [h.hex() for h in prove(index)]}
                    out.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            rotations = _rotations_jsonl(uow.ledger.rotation_entries(), checkpoint.tree_size, prove)
        signer = next(k for k in keys if k.key_id == checkpoint.key_id)
        summary = writer.seal(
            manifest=manifest,
            export_entry=entry.canonical,
            proofs=proofs,
            checkpoint=note,
            rotations=rotations,
        )
    except BaseException:
        writer.abort()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    export = ExportRecord(
        export_id=export_id,
        bundle_path=str(path),
        bundle_sha256=summary.sha256,
        size=summary.size,
        entries=summary.entries,
        decisions=len(matched),
        tree_size=tree_size,
        ledger_index=entry.index,
        created_at=created_at,
        filter=flt.to_dict(),
        manifest_sha256=commitment.manifest_sha256,
        checkpoint_size=checkpoint.tree_size,
        verifier_key=verifier_key(signer.name, signer.public_key),
        verify_py_sha256=verify_py_sha256(),
        witnesses=[str(c.key) for c in cosigned],
    )
    (export_dir(services) / f"{export_id}.json").write_text(json.dumps(asdict(export), indent=2))
    return export


CHUNK = 500


def _sealing_checkpoint(
    services: Services, published: StoredCheckpoint
) -> tuple[StoredCheckpoint, str, list[Cosignature]]:
    """The checkpoint a bundle is sealed with, as a note carrying its witnesses' cosignatures.

    Without configured witnesses: ``published`` as signed. With them: the newest checkpoint at or after
    ``published`` that every witness has cosigned (the pushers of ``rationale serve`` or ``rationale export``
    send each new one), waited for up to ``export_witness_wait_seconds``; after that, the newest one at or after
    it with the most cosignatures (or ``published`` with none), so a witness that is down delays exports but
    never stops them. A regulator who pins the witnesses (``verify.py --witness-key``) then knows the operator
    could not have shown them another history."""
    witnesses = len(parse_witnesses(services.settings.witnesses))
    if not witnesses:
        return published, published.note, []
    deadline = time.monotonic() + services.settings.export_witness_wait_seconds
    while True:
        with services.db.unit_of_work(write=False) as uow:
            repo = CosignatureRepository(uow.session)
            waited = time.monotonic() >= deadline
            for count in range(witnesses, 0 if waited else witnesses - 1, -1):
                found = latest_witnessed(services, uow.ledger, repo, count)
                if found is not None and found[0].tree_size >= published.tree_size:
                    if count < witnesses:
                        log.warning(
                            "export sealed with checkpoint %d cosigned by %d of %d witnesses (waited %.1f s)",
                            found[0].tree_size,
                            count,
                            witnesses,
                            services.settings.export_witness_wait_seconds,
                        )
                    return found
            if waited:
                log.warning("export sealed with checkpoint %d: no witness cosigned it in time", published.tree_size)
                return published, published.note, []
        time.sleep(0.05)


def _rotations_jsonl(
    entries: Sequence[StoredEntry], tree_size: int, prove: Callable[[int], list[bytes]]
) -> bytes | None:
    """rotations.jsonl: every key rotation in the checkpoint's tree with its proof, so that a regulator who
    pinned an earlier key reaches the key that signed (FORMAT.md §6); None when there has been none."""
    lines = [
        json.dumps(
            {"index": e.index, "entry": e.canonical.decode("utf-8"), "proof": [h.hex() for h in prove(e.index)]},
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for e in entries
        if e.index < tree_size
    ]
    return b"".join(lines) or None


def _keys_json(keys: list[StoredKey]) -> bytes:
    """keys.json: the deployment's public keys, as data to check — never a trust anchor (FORMAT.md)."""
    listed = [
        {
            "key_id": k.key_id,
            "name": k.name,
            "algorithm": "ed25519",
            "public_key": base64.b64encode(k.public_key).decode(),
            "verifier_key": verifier_key(k.name, k.public_key),
        }
        for k in keys
    ]
    return json.dumps({"keys": listed}, indent=2).encode()


def read_export(services: Services, export_id: str) -> ExportRecord:
    if not export_id.isalnum():
        raise NotFoundError(f"export {export_id!r} does not exist")
    path = export_dir(services) / f"{export_id}.json"
    if not path.exists():
        raise NotFoundError(f"export {export_id!r} does not exist")
    return ExportRecord(**json.loads(path.read_text()))
