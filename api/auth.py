"""API keys on every route but the probes: ``Authorization: Bearer KEY``; 401 without a valid key, 403 when
the key's role may not do what is asked (read: GET; write: also POST and DELETE; admin: also keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import Res
from api.errors import ApiError
from db import keys
from db.key_models import Role

bearer = HTTPBearer(auto_error=False, description="an API key from `copycat keys create --role read|write|admin`")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require(role: Role) -> Callable[..., Role]:
    """A dependency that admits a request whose key has ``role`` or a higher one; returns the key's role."""

    def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)], res: Res) -> Role:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise ApiError(401, "send an API key: Authorization: Bearer KEY", headers=CHALLENGE)
        presented = credentials.credentials
        if not presented.startswith(keys.KEY_PREFIX) or not presented.isascii():
            raise ApiError(401, "the API key is not valid", headers=CHALLENGE)
        with res.session() as s:
            row = keys.find_active(s, presented)
            have = Role(row.role) if row is not None else None
        if have is None:
            raise ApiError(401, "the API key is not valid (unknown or revoked)", headers=CHALLENGE)
        if not have.allows(role):
            raise ApiError(403, f"this key's role is {have.value}; this needs {role.value}")
        return have

    return check


READ, WRITE, ADMIN = Depends(require(Role.READ)), Depends(require(Role.WRITE)), Depends(require(Role.ADMIN))
