"""API keys, the access index and export grants (PRODUCT.md §8 access control).

The keys table holds only a SHA-256 of each key. The access index maps a subject or decision to the ledger
entries that recorded a read of it: rows are an index, the access entries in the ledger are the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.bulk import insert_rows
from storage.tables import Base, UtcDateTime


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AccessIndexRow(Base):
    __tablename__ = "access_index"
    __table_args__ = (
        Index("ix_access_index_subject", "subject_ref"),
        Index("ix_access_index_decision", "decision_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    subject_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decision_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ExportOwnerRow(Base):
    __tablename__ = "export_owners"

    export_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_key_id: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ExportAudienceRow(Base):
    __tablename__ = "export_audience"
    __table_args__ = (Index("ix_export_audience_key", "key_id"),)

    export_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    owner: str
    role: str
    key_hash: bytes
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class ExportGrant:
    export_id: str
    owner_key_id: str
    owner: str
    created_at: datetime
    audience: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AccessIndexItem:
    subject_ref: str | None
    decision_id: str | None


class AccessRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # keys
    def add_key(self, record: ApiKeyRecord) -> None:
        self.session.add(
            ApiKeyRow(
                key_id=record.key_id,
                owner=record.owner,
                role=record.role,
                key_hash=record.key_hash,
                created_at=record.created_at,
                created_by=record.created_by,
                expires_at=record.expires_at,
                revoked_at=record.revoked_at,
            )
        )
        self.session.flush()

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self.session.get(ApiKeyRow, key_id)
        return _key(row) if row is not None else None

    def list_keys(self) -> list[ApiKeyRecord]:
        rows = self.session.execute(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id)).scalars()
        return [_key(r) for r in rows]

    def revoke_key(self, key_id: str, *, at: datetime) -> bool:
        """Mark a key revoked; False when it does not exist. Revoking twice keeps the first time."""
        result = self.session.execute(
            update(ApiKeyRow).where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None)).values(revoked_at=at)
        )
        return bool(getattr(result, "rowcount", 0)) or self.session.get(ApiKeyRow, key_id) is not None

    # access index
    def add_index(self, rows: Sequence[tuple[int, str | None, str | None]]) -> None:
        """(ledger_index, subject_ref, decision_id) rows for access entries appended in this transaction.

        One multi-row INSERT rather than storage.bulk's COPY: a read adds a handful of rows, which one INSERT
        sends in one round trip, where COPY's start/data/end exchange takes more."""
        if rows:
            self.session.execute(
                insert(AccessIndexRow),
                [{"ledger_index": i, "subject_ref": s, "decision_id": d} for i, s, d in rows],
            )

    def entries_for(self, *, subject_ref: str | None = None, decision_id: str | None = None, limit: int) -> list[int]:
        """Ledger indexes of access entries naming the subject or decision, newest first."""
        query = select(AccessIndexRow.ledger_index).distinct()
        if subject_ref is not None:
            query = query.where(AccessIndexRow.subject_ref == subject_ref)
        if decision_id is not None:
            query = query.where(AccessIndexRow.decision_id == decision_id)
        query = query.order_by(AccessIndexRow.ledger_index.desc()).limit(limit)
        return [int(i) for i in self.session.execute(query).scalars()]

    # export grants
    def add_grant(self, grant: ExportGrant) -> None:
        self.session.add(
            ExportOwnerRow(
                export_id=grant.export_id,
                owner_key_id=grant.owner_key_id,
                owner=grant.owner,
                created_at=grant.created_at,
            )
        )
        self.session.flush()
        insert_rows(
            self.session, ExportAudienceRow, [{"export_id": grant.export_id, "key_id": k} for k in grant.audience]
        )

    def get_grant(self, export_id: str) -> ExportGrant | None:
        row = self.session.get(ExportOwnerRow, export_id)
        if row is None:
            return None
        audience = self.session.execute(
            select(ExportAudienceRow.key_id)
            .where(ExportAudienceRow.export_id == export_id)
            .order_by(ExportAudienceRow.key_id)
        ).scalars()
        return ExportGrant(row.export_id, row.owner_key_id, row.owner, row.created_at, tuple(audience))

    def grants(self, *, audience: str | None = None, limit: int = 1000) -> list[ExportGrant]:
        """Exports newest first; with ``audience``, only those shared with that key."""
        query = select(ExportOwnerRow.export_id).order_by(ExportOwnerRow.created_at.desc()).limit(limit)
        if audience is not None:
            query = query.join(ExportAudienceRow, ExportAudienceRow.export_id == ExportOwnerRow.export_id).where(
                ExportAudienceRow.key_id == audience
            )
        found = [self.get_grant(export_id) for export_id in self.session.execute(query).scalars()]
        return [g for g in found if g is not None]


def _key(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        owner=row.owner,
        role=row.role,
        key_hash=bytes(row.key_hash),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
