"""The SQL implementation of audit's LedgerStore port. Inserts only: there is no update or delete here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from audit.entry import StoredEntry
from audit.errors import CorruptRowError, EntryNotFoundError, LedgerGapError
from audit.port import EntryRow, StoredCheckpoint, StoredKey
from storage.bulk import insert_rows
from storage.driver import driver_rows
from storage.tables import CheckpointRow, LedgerEntryRow, LedgerNodeRow, SigningKeyRow

# pg_advisory_xact_lock key: "RATL" — serializes appends across processes, released at commit.
APPEND_LOCK_KEY = 0x5241544C
RANGE_BATCH = 10_000
_RANGE_SQL = (
    "SELECT idx, entry_type, recorded_at, canonical, leaf_hash FROM ledger_entries WHERE idx >= ? AND idx < ? "
    "ORDER BY idx"
)
_LEAF_HASHES_SQL = "SELECT idx, leaf_hash FROM ledger_entries WHERE idx >= ? AND idx < ? ORDER BY idx"
_NODE_RANGE_SQL = "SELECT idx, hash FROM ledger_nodes WHERE level = ? AND idx >= ? AND idx < ?"


class SqlLedgerStore:
    def __init__(self, session: Session) -> None:
        self.session = session
        # the size read under the append lock, advanced by each append of this transaction: the lock is held
        # until commit, so nobody else can append meanwhile, and reading it again would only cost round trips
        self._locked_size: int | None = None

    def lock_and_size(self) -> int:
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
        # SQLite: the BEGIN IMMEDIATE write transaction already holds the database's write lock.
        self._locked_size = self.size()
        return self._locked_size

    def size(self) -> int:
        [(top,)] = driver_rows(self.session, "SELECT max(idx) FROM ledger_entries")
        return 0 if top is None else _integer(top, "ledger_entries", -1, "the largest idx") + 1

    def append(self, entries: Sequence[StoredEntry]) -> None:
        if not entries:
            return
        start = self._locked_size if self._locked_size is not None else self.size()
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
        if self._locked_size is not None:
            self._locked_size = start + len(entries)

    def read(self, index: int) -> StoredEntry:
        row = self.session.get(LedgerEntryRow, index)
        if row is None:
            raise EntryNotFoundError(f"no ledger entry at index {index}")
        return _entry(row)

    def iter_range(self, start: int, end: int) -> Iterator[StoredEntry]:
        cursor = start
        while cursor < end:
            upper = min(end, cursor + RANGE_BATCH)
            rows = driver_rows(self.session, _RANGE_SQL, (cursor, upper))
            for idx, entry_type, recorded_at, canonical, leaf in rows:
                plain = type(idx) is int and type(canonical) is bytes and type(leaf) is bytes
                if plain and type(entry_type) is str and type(recorded_at) is str:
                    yield StoredEntry(idx, entry_type, recorded_at, canonical, leaf)
                else:
                    yield _checked_entry(idx, entry_type, recorded_at, canonical, leaf)
            cursor = upper

    def iter_rows(self, start: int, end: int) -> Iterator[EntryRow]:
        cursor = start
        while cursor < end:
            upper = min(end, cursor + RANGE_BATCH)
            for row in driver_rows(self.session, _RANGE_SQL, (cursor, upper)):
                idx, entry_type, recorded_at, canonical, leaf = row
                plain = type(idx) is int and type(canonical) is bytes and type(leaf) is bytes
                if plain and type(entry_type) is str and type(recorded_at) is str:
                    yield cast(EntryRow, row)
                else:
                    e = _checked_entry(idx, entry_type, recorded_at, canonical, leaf)
                    yield e.index, e.type, e.recorded_at, e.canonical, e.leaf_hash
            cursor = upper

    def rotation_entries(self) -> list[StoredEntry]:
        """The ``key.rotated`` entries in index order, by the partial index of migration 0002_trust."""
        rows = self.session.execute(
            select(
                LedgerEntryRow.idx,
                LedgerEntryRow.entry_type,
                LedgerEntryRow.recorded_at,
                LedgerEntryRow.canonical,
                LedgerEntryRow.leaf_hash,
            )
            .where(LedgerEntryRow.entry_type == "key.rotated")
            .order_by(LedgerEntryRow.idx)
        ).all()
        return [_checked_entry(*row) for row in rows]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        # straight from the driver: every append reads a sibling or two, and SQLAlchemy's statement and
        # result handling cost more than the query
        rows = driver_rows(self.session, _LEAF_HASHES_SQL, (start, end))
        return [_blob(h, "ledger_entries", _integer(i, "ledger_entries", -1, "idx"), "leaf_hash") for i, h in rows]

    def put_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if nodes:
            rows = [{"level": lvl, "idx": i, "hash": h} for lvl, i, h in nodes]
            insert_rows(self.session, LedgerNodeRow, rows)

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        by_level: dict[int, list[int]] = {}
        for level, idx in dict.fromkeys(keys):
            by_level.setdefault(level, []).append(idx)
        # One indexed (level, idx IN ...) clause per level, OR-ed: both databases use the primary key. Sent
        # straight to the driver, as leaf_hashes: appends read a node or two each.
        levels = list(by_level.items())
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(levels), 40):
            part = levels[start : start + 40]
            where = " OR ".join(f"(level = ? AND idx IN ({', '.join('?' * len(indexes))}))" for _, indexes in part)
            params = [value for level, indexes in part for value in (level, *indexes)]
            rows = driver_rows(self.session, f"SELECT level, idx, hash FROM ledger_nodes WHERE {where}", params)
            for level, idx, digest in rows:
                found[_node_key(level, idx)] = _node_hash(level, idx, digest)
        return found

    def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        found: dict[int, bytes] = dict(driver_rows(self.session, _NODE_RANGE_SQL, (level, start, end)))  # type: ignore[arg-type]
        if set(map(type, found)) <= {int} and set(map(type, found.values())) <= {bytes}:
            return found  # the usual case, checked at C speed
        return {_node_key(level, idx)[1]: _node_hash(level, idx, digest) for idx, digest in found.items()}

    def iter_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored node, for verification."""
        rows = self.session.execute(
            select(LedgerNodeRow.level, LedgerNodeRow.idx, LedgerNodeRow.hash).order_by(
                LedgerNodeRow.level, LedgerNodeRow.idx
            )
        )
        for level, idx, digest in rows:
            key = _node_key(level, idx)
            yield key[0], key[1], _node_hash(level, idx, digest)

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
        row = self.session.execute(_CHECKPOINT_COLUMNS.order_by(CheckpointRow.tree_size.desc()).limit(1)).first()
        return _checkpoint(row) if row is not None else None

    def checkpoint_at(self, tree_size: int) -> StoredCheckpoint:
        row = self.session.execute(_CHECKPOINT_COLUMNS.where(CheckpointRow.tree_size == tree_size)).first()
        if row is None:
            raise EntryNotFoundError(f"no checkpoint was published at tree size {tree_size}")
        return _checkpoint(row)

    def iter_checkpoints(self) -> Iterator[StoredCheckpoint]:
        rows = self.session.execute(_CHECKPOINT_COLUMNS.order_by(CheckpointRow.tree_size))
        for position, row in enumerate(rows):
            yield _checkpoint(row, position)

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
        rows = self.session.execute(
            select(
                SigningKeyRow.key_id, SigningKeyRow.name, SigningKeyRow.public_key, SigningKeyRow.created_at
            ).order_by(SigningKeyRow.created_at, SigningKeyRow.key_id)
        )
        return [_key(row, position) for position, row in enumerate(rows)]

    def row_counts(self) -> tuple[int, int]:
        """How many rows the entries and nodes tables hold (verification compares with the ledger size)."""
        entries = self.session.execute(select(func.count()).select_from(LedgerEntryRow)).scalar_one()
        nodes = self.session.execute(select(func.count()).select_from(LedgerNodeRow)).scalar_one()
        return int(entries), int(nodes)


# Stored values are checked for their kind before they are used: SQLite keeps whatever a writer puts in a
# column (text in a BLOB column, a float in an index), and a verifier must name such a row, not crash on it.


def _describe(value: object) -> str:
    if value is None:
        return "NULL"
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 40 else shown[:37] + '...'}"


def _blob(value: object, table: str, position: int, column: str, *, length: int | None = None) -> bytes:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if type(value) is not bytes:
        raise CorruptRowError(table, position, f"{table} {position}: {column} holds {_describe(value)}, not bytes")
    if length is not None and len(value) != length:
        raise CorruptRowError(table, position, f"{table} {position}: {column} is {len(value)} bytes long, not {length}")
    return value


def _text(value: object, table: str, position: int, column: str) -> str:
    if type(value) is not str:
        raise CorruptRowError(table, position, f"{table} {position}: {column} holds {_describe(value)}, not text")
    return value


def _integer(value: object, table: str, position: int, column: str) -> int:
    if type(value) is not int:
        where = f"{table} row {position}" if position >= 0 else table
        raise CorruptRowError(table, position, f"{where}: {column} holds {_describe(value)}, not an integer")
    return value


def _checked_entry(
    idx: object, entry_type: object, recorded_at: object, canonical: object, leaf: object
) -> StoredEntry:
    table = "ledger_entries"
    index = _integer(idx, table, -1, "idx")
    return StoredEntry(
        index,
        _text(entry_type, table, index, "entry_type"),
        _text(recorded_at, table, index, "recorded_at"),
        _blob(canonical, table, index, "canonical"),
        _blob(leaf, table, index, "leaf_hash", length=32),
    )


def _node_key(level: object, idx: object) -> tuple[int, int]:
    if type(level) is int and type(idx) is int:
        return level, idx
    raise CorruptRowError(
        "ledger_nodes", -1, f"ledger_nodes: a node is keyed by level {_describe(level)}, index {_describe(idx)}"
    )


def _node_hash(level: object, idx: object, digest: object) -> bytes:
    if type(digest) is bytes:
        return digest
    lvl, i = _node_key(level, idx)
    return _blob(digest, "ledger_nodes", i << lvl, f"the hash of node ({lvl}, {i}) over entries from")


def _entry(row: LedgerEntryRow) -> StoredEntry:
    return _checked_entry(row.idx, row.entry_type, row.recorded_at, row.canonical, row.leaf_hash)


_CHECKPOINT_COLUMNS = select(
    CheckpointRow.tree_size,
    CheckpointRow.root_hash,
    CheckpointRow.note,
    CheckpointRow.key_id,
    CheckpointRow.published_at,
)


def _checkpoint(row: Any, position: int = 0) -> StoredCheckpoint:
    table = "ledger_checkpoints"
    size = _integer(row.tree_size, table, position, "tree_size")
    return StoredCheckpoint(
        size,
        _blob(row.root_hash, table, size, "root_hash"),
        _text(row.note, table, size, "note"),
        _text(row.key_id, table, size, "key_id"),
        _text(row.published_at, table, size, "published_at"),
    )


def _key(row: Any, position: int) -> StoredKey:
    table = "signing_keys"
    return StoredKey(
        _text(row.key_id, table, position, "key_id"),
        _text(row.name, table, position, "name"),
        _blob(row.public_key, table, position, "public_key"),
        _text(row.created_at, table, position, "created_at"),
    )
