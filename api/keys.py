"""``/v1/keys``: API keys, for admin keys only (the same operations as ``copycat keys``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.auth import ADMIN
from api.deps import Res
from api.errors import ApiError
from api.models import RESOURCE_ERRORS, KeyCreate, KeyCreated, KeyInfo
from db import keys
from db.key_models import Role

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=RESOURCE_ERRORS, dependencies=[ADMIN])


@router.get("", response_model=list[KeyInfo], summary="Every key (revoked ones too), oldest first")
def list_keys(res: Res) -> list[dict[str, str | None]]:
    with res.session() as s:
        return [keys.key_json(row) for row in keys.list_keys(s)]


@router.post("", status_code=201, response_model=KeyCreated, summary="A new key; the key is in this answer only")
def create_key(body: KeyCreate, res: Res) -> dict[str, str | None]:
    with res.session() as s:
        row, key = keys.create_key(s, Role(body.role), body.name)
        return {**keys.key_json(row), "key": key}


@router.delete("/{key_id}", response_model=KeyInfo, summary="Revoke a key (it stops working at once)")
def revoke_key(key_id: uuid.UUID, res: Res) -> dict[str, str | None]:
    with res.session() as s:
        row = keys.revoke_key(s, str(key_id))
        if row is None:
            raise ApiError(404, f"no key {key_id}")
        return keys.key_json(row)
