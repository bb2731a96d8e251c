"""The SQL implementation of audit's LedgerStore port. Inserts only: there is no update or delete here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import and_, func, insert, or_, select, text
from sqlalchemy.orm import Session

from audit.entry import StoredEntry
from audit.errors import EntryNotFoundError, LedgerGapError
from audit.port import StoredCheckpoint, StoredKey
from storage.bulk import insert_rows
from storage.tables import CheckpointRow, LedgerEntryRow, LedgerNodeRow, SigningKeyRow

# pg_advisory_xact_lock key: "RATL" — serializes appends across processes, released at commit.
APPEND_LOCK_KEY = 0x5241544C
RANGE_BATCH = 10_000


class SqlLedgerStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_and_size(self) -> int:
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
        # SQLite: the BEGIN IMMEDIATE write transaction already holds the database's write lock.
        return self.size()

    def size(self) -> int:
        top = self.session.execute(select(func.max(LedgerEntryRow.idx))).scalar_one_or_none()
        return 0 if top is None else int(top) + 1

    def append(self, entries: Sequence[StoredEntry]) -> None:
        if not entries:
            return
        start = self.size()
        for offset, entry in enumerate(entries):
            if entry.index != start + offset:
                raise LedgerGapError(f"append at index {entry.index} but the ledger has {start + offset} entries")
        insert_rows(
            self.session,
            LedgerEntryRow,
            [
                {
                    "idx": e.index,
                    "entry_type": e.type,
                    "recorded_at": e.recorded_at,
                    "canonical": e.canonical,
                    "leaf_hash": e.leaf_hash,
                }
                for e in entries
            ],
        )

    def read(self, index: int) -> StoredEntry:
        row = self.session.get(LedgerEntryRow, index)
        if row is None:
            raise EntryNotFoundError(f"no ledger entry at index {index}")
        return _entry(row)

    def iter_range(self, start: int, end: int) -> Iterator[StoredEntry]:
        cursor = start
        while cursor < end:
            upper = min(end, cursor + RANGE_BATCH)
            rows = self.session.execute(
                select(
                    LedgerEntryRow.idx,
                    LedgerEntryRow.entry_type,
                    LedgerEntryRow.recorded_at,
                    LedgerEntryRow.canonical,
                    LedgerEntryRow.leaf_hash,
                )
                .where(LedgerEntryRow.idx >= cursor, LedgerEntryRow.idx < upper)
                .order_by(LedgerEntryRow.idx)
            ).all()
            for idx, entry_type, recorded_at, canonical, leaf in rows:
                yield StoredEntry(int(idx), entry_type, recorded_at, bytes(canonical), bytes(leaf))
            cursor = upper

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        rows = self.session.execute(
            select(LedgerEntryRow.leaf_hash)
            .where(LedgerEntryRow.idx >= start, LedgerEntryRow.idx < end)
            .order_by(LedgerEntryRow.idx)
        ).scalars()
        return [bytes(h) for h in rows]

    def put_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if nodes:
            rows = [{"level": lvl, "idx": i, "hash": h} for lvl, i, h in nodes]
            insert_rows(self.session, LedgerNodeRow, rows)

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        by_level: dict[int, list[int]] = {}
        for level, idx in dict.fromkeys(keys):
            by_level.setdefault(level, []).append(idx)
        # One indexed (level, idx IN ...) clause per level, OR-ed: both databases use the primary key.
        clauses = [
            and_(LedgerNodeRow.level == level, LedgerNodeRow.idx.in_(indexes)) for level, indexes in by_level.items()
        ]
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(clauses), 40):
            rows = self.session.execute(
                select(LedgerNodeRow.level, LedgerNodeRow.idx, LedgerNodeRow.hash).where(
                    or_(*clauses[start : start + 40])
                )
            ).all()
            for level, idx, digest in rows:
                found[(int(level), int(idx))] = bytes(digest)
        return found

    def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        rows = self.session.execute(
            select(LedgerNodeRow.idx, LedgerNodeRow.hash).where(
                LedgerNodeRow.level == level, LedgerNodeRow.idx >= start, LedgerNodeRow.idx < end
            )
        )
        return {int(idx): bytes(digest) for idx, digest in rows}

    def iter_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored node, for verification."""
        rows = self.session.execute(
            select(LedgerNodeRow.level, LedgerNodeRow.idx, LedgerNodeRow.hash).order_by(
                LedgerNodeRow.level, LedgerNodeRow.idx
            )
        )
        for level, idx, digest in rows:
            yield int(level), int(idx), bytes(digest)

    def append_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        self.session.execute(
            insert(CheckpointRow),
            [
                {
                    "tree_size": checkpoint.tree_size,
                    "root_hash": checkpoint.root_hash,
                    "note": checkpoint.note,
                    "key_id": checkpoint.key_id,
                    "published_at": checkpoint.published_at,
                }
            ],
        )

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self.session.execute(
            select(CheckpointRow).order_by(CheckpointRow.tree_size.desc()).limit(1)
        ).scalar_one_or_none()
        return _checkpoint(row) if row is not None else None

    def checkpoint_at(self, tree_size: int) -> StoredCheckpoint:
        row = self.session.get(CheckpointRow, tree_size)
        if row is None:
            raise EntryNotFoundError(f"no checkpoint was published at tree size {tree_size}")
        return _checkpoint(row)

    def iter_checkpoints(self) -> Iterator[StoredCheckpoint]:
        for row in self.session.execute(select(CheckpointRow).order_by(CheckpointRow.tree_size)).scalars():
            yield _checkpoint(row)

    def add_key(self, key: StoredKey) -> None:
        if self.session.get(SigningKeyRow, key.key_id) is None:
            self.session.execute(
                insert(SigningKeyRow),
                [
                    {
                        "key_id": key.key_id,
                        "name": key.name,
                        "public_key": key.public_key,
                        "created_at": key.created_at,
                    }
                ],
            )

    def keys(self) -> list[StoredKey]:
        rows = self.session.execute(select(SigningKeyRow).order_by(SigningKeyRow.created_at)).scalars()
        return [StoredKey(r.key_id, r.name, bytes(r.public_key), r.created_at) for r in rows]


def _entry(row: LedgerEntryRow) -> StoredEntry:
    return StoredEntry(int(row.idx), row.entry_type, row.recorded_at, bytes(row.canonical), bytes(row.leaf_hash))


def _checkpoint(row: CheckpointRow) -> StoredCheckpoint:
    return StoredCheckpoint(int(row.tree_size), bytes(row.root_hash), row.note, row.key_id, row.published_at)
