"""Named queries on API keys: create (the only time the key itself exists), look up by key, list, revoke.

A key is 32 random bytes (``secrets.token_urlsafe``), so a plain SHA-256 of it cannot be brute-forced and
a lookup is one indexed read; a slow password hash would only add latency to every request.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from db.key_models import ApiKey, Role
from db.models import utcnow

KEY_PREFIX = "cc_"
SHOWN_CHARS = 11  # "cc_" and 8 random characters: enough to tell keys apart in a list, useless to an attacker


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, role: Role, name: str = "") -> tuple[ApiKey, str]:
    """A new key with ``role``: the row and the key itself (shown once; only its hash is kept)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=str(uuid.uuid4()), name=name, role=Role(role).value, prefix=key[:SHOWN_CHARS],
                 key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return row, key


def key_json(row: ApiKey) -> dict[str, str | None]:
    """A key as ``copycat keys list --json`` and the API show it (never the key itself)."""
    return {"id": row.id, "name": row.name, "role": row.role, "prefix": row.prefix,
            "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}


def find_active(session: Session, key: str) -> ApiKey | None:
    """The unrevoked key row for a presented key, or None."""
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
    return row if row is not None and row.revoked_at is None else None


def list_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()


def revoke_key(session: Session, id_or_prefix: str) -> ApiKey | None:
    """Revoke the key with this id or shown prefix (must match one key); returns it, or None if none matched.

    Raises ``LookupError`` when a prefix matches several keys.
    """
    rows = session.scalars(select(ApiKey).where(or_(ApiKey.id == id_or_prefix, ApiKey.prefix == id_or_prefix))).all()
    if len(rows) > 1:
        raise LookupError(f"{id_or_prefix!r} matches {len(rows)} keys; give the key's id")
    if not rows:
        return None
    if rows[0].revoked_at is None:
        rows[0].revoked_at = utcnow()
    return rows[0]
