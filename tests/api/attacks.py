"""What an insider with write access to the database (but not to the signing-key files) can do to the ledger.

Shared by the trust-anchor, checkpoint-history and totality tests. Every function runs raw SQL with the
append-only triggers out of the way, as such an attacker would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from audit.entry import EntryDraft, StoredEntry, parse_timestamp
from audit.memory_store import MemoryLedgerStore
from audit.merkle import root_from_leaves
from audit.note import checkpoint_text, key_id, sign_note
from audit.tree import nodes_completed

LEDGER_TABLES = ("ledger_entries", "ledger_nodes", "ledger_checkpoints", "signing_keys")


def drop_guards(conn: Any, dialect: str) -> None:
    """Switch off every trigger guarding the ledger tables (the attacker owns the database)."""
    if dialect == "postgresql":
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        return
    names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
    for name in names:
        conn.execute(text(f'DROP TRIGGER IF EXISTS "{name}"'))


def behind_the_back(services: Any, statements: Callable[[Any], None]) -> None:
    with services.db.engine.begin() as conn:
        drop_guards(conn, services.db.dialect)
        statements(conn)


def read_entries(conn: Any) -> list[StoredEntry]:
    rows = conn.execute(
        text("SELECT idx, entry_type, recorded_at, canonical, leaf_hash FROM ledger_entries ORDER BY idx")
    ).all()
    return [StoredEntry(int(i), t, r, bytes(c), bytes(h)) for i, t, r, c, h in rows]


def rebuilt(entry: StoredEntry, edit: Callable[[dict[str, Any]], None]) -> StoredEntry:
    """``entry`` with its payload edited, re-encoded with a matching leaf hash, as a careful forger would."""
    doc = json.loads(entry.canonical)
    edit(doc["payload"])
    return StoredEntry.build(
        index=entry.index,
        draft=EntryDraft(doc["type"], doc["payload"]),
        recorded_at=parse_timestamp(doc["recorded_at"]),
    )


def rewrite_history(
    conn: Any,
    *,
    index: int,
    edit: Callable[[dict[str, Any]], None],
    origin: str,
    signer: Ed25519PrivateKey,
    published_at: str = "2026-03-03T12:00:00.000000Z",
    insert_key: bool = True,
) -> None:
    """Rewrite entry ``index`` and everything that commits to it: the leaf, the tree nodes, every checkpoint
    (re-signed by ``signer``), and put ``signer``'s public key into the keys table."""
    entries = read_entries(conn)
    entries[index] = rebuilt(entries[index], edit)
    conn.execute(
        text("UPDATE ledger_entries SET canonical = :c, leaf_hash = :h WHERE idx = :i"),
        {"c": entries[index].canonical, "h": entries[index].leaf_hash, "i": index},
    )
    leaves = [e.leaf_hash for e in entries]
    conn.execute(text("DELETE FROM ledger_nodes"))
    nodes = nodes_completed(0, leaves, MemoryLedgerStore())
    conn.execute(
        text("INSERT INTO ledger_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
        [{"l": lvl, "i": i, "h": h} for lvl, i, h in nodes],
    )
    sizes = conn.execute(text("SELECT tree_size FROM ledger_checkpoints ORDER BY tree_size")).scalars().all()
    conn.execute(text("DELETE FROM ledger_checkpoints"))
    public = signer.public_key().public_bytes_raw()
    for size in sizes:
        root = root_from_leaves(leaves[: int(size)])
        note = sign_note(checkpoint_text(origin, int(size), root), name=origin, private_key=signer)
        conn.execute(
            text(
                "INSERT INTO ledger_checkpoints (tree_size, root_hash, note, key_id, published_at) "
                "VALUES (:s, :r, :n, :k, :p)"
            ),
            {"s": int(size), "r": root, "n": note, "k": key_id(origin, public), "p": published_at},
        )
    if insert_key:
        conn.execute(
            text("INSERT INTO signing_keys (key_id, name, public_key, created_at) VALUES (:k, :n, :p, :c)"),
            {"k": key_id(origin, public), "n": origin, "p": public, "c": published_at},
        )


def now_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
