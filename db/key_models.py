"""SQLAlchemy model of an HTTP API key: only its SHA-256 is stored, never the key itself.

Defined on ``db.models.Base`` so the table joins the same metadata once this module is imported; the table
itself is created by migration ``0005``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base, utcnow


class Role(StrEnum):
    """What a key may do; each role may do everything the roles before it may."""

    READ = "read"  # GET
    WRITE = "write"  # + POST and DELETE of videos and queries
    ADMIN = "admin"  # + managing keys

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


class ApiKey(Base):
    """One API key: a role, a name for people, the key's first characters (to recognise it) and its hash."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), doc="the key's first characters, shown by `copycat keys list`")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, doc="SHA-256 of the key, hex")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
