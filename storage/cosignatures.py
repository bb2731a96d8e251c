"""The log's record of witness cosignatures: one append-only row per (checkpoint size, witness key).

Rows are data to check, never trusted: a verifier checks each line against the witness keys it was given
out of band (audit.cosignature), so an insider who inserts a row without the witness's key gains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.tables import Base


class CosignatureRow(Base):
    __tablename__ = "witness_cosignatures"
    __table_args__ = (UniqueConstraint("tree_size", "witness_key", name="uq_witness_cosignatures_size_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    witness_key: Mapped[str] = mapped_column(String(300))  # the witness's C2SP verifier key
    cosigned_at: Mapped[int] = mapped_column(BigInteger)  # the cosignature's own timestamp (POSIX seconds)
    line: Mapped[str] = mapped_column(Text)  # the signature line exactly as the witness returned it
    received_at: Mapped[str] = mapped_column(String(40))


@dataclass(frozen=True, slots=True)
class StoredCosignature:
    tree_size: int
    witness_key: str
    cosigned_at: int
    line: str
    received_at: str


class CosignatureRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, cosignature: StoredCosignature) -> bool:
        """Record a cosignature; False (and nothing written) when that witness's line for that size exists."""
        exists = self.session.scalar(
            select(CosignatureRow.id).where(
                CosignatureRow.tree_size == cosignature.tree_size,
                CosignatureRow.witness_key == cosignature.witness_key,
            )
        )
        if exists is not None:
            return False
        self.session.add(
            CosignatureRow(
                tree_size=cosignature.tree_size,
                witness_key=cosignature.witness_key,
                cosigned_at=cosignature.cosigned_at,
                line=cosignature.line,
                received_at=cosignature.received_at,
            )
        )
        self.session.flush()
        return True

    def for_size(self, tree_size: int) -> list[StoredCosignature]:
        rows = self.session.scalars(
            select(CosignatureRow).where(CosignatureRow.tree_size == tree_size).order_by(CosignatureRow.id)
        )
        return [_stored(r) for r in rows]

    def sizes_with_at_least(self, count: int, *, limit: int = 20) -> list[int]:
        """Checkpoint sizes with ``count`` or more stored cosignature rows, largest first (unverified rows:
        the caller checks them)."""
        rows = self.session.execute(
            select(CosignatureRow.tree_size)
            .group_by(CosignatureRow.tree_size)
            .having(func.count() >= count)
            .order_by(CosignatureRow.tree_size.desc())
            .limit(limit)
        )
        return [int(size) for (size,) in rows]

    def last_sizes(self) -> dict[str, int]:
        """The largest checkpoint size each witness key cosigned."""
        rows = self.session.execute(
            select(CosignatureRow.witness_key, func.max(CosignatureRow.tree_size)).group_by(CosignatureRow.witness_key)
        )
        return {key: int(size) for key, size in rows}


def _stored(row: CosignatureRow) -> StoredCosignature:
    return StoredCosignature(row.tree_size, row.witness_key, row.cosigned_at, row.line, row.received_at)
