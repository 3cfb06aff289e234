"""``copycat api`` (the HTTP API under uvicorn) and ``copycat keys`` (its API keys)."""

from __future__ import annotations

import json
import sys

import click

from cli.output import table


def api_command_line() -> list[str]:
    """How to start the API as a process (``copycat up`` runs this); it reads the usual settings."""
    return [sys.executable, "-m", "cli.main", "api"]


@click.command()
def api() -> None:
    """Serve the HTTP API on COPYCAT_API__ADDRESS:COPYCAT_API__PORT (docs at /docs)."""
    import uvicorn

    from api import create_api
    from service import resources

    cfg = resources.current().settings
    app = create_api(cfg)
    click.echo(f"HTTP API on http://{cfg.api.address}:{cfg.api.port} (docs /docs, "
               f"{'embedded mode: tasks run in this process' if cfg.embedded else 'queue mode'})", err=True)
    uvicorn.run(app, host=cfg.api.address, port=cfg.api.port, log_level=cfg.log_level.lower(),
                proxy_headers=False, server_header=False)


@click.group()
def keys() -> None:
    """API keys of the HTTP API (stored hashed; a key is shown once, when it is created)."""


@keys.command("create")
@click.option("--role", type=click.Choice(["read", "write", "admin"]), required=True,
              help="read: GET; write: also POST and DELETE; admin: also keys.")
@click.option("--name", default="", help="Who or what the key is for.")
def create_key(role: str, name: str) -> None:
    """Make a key; it is printed as the last line, and never again."""
    from db import keys as stored
    from db.key_models import Role
    from service import resources

    with resources.current().session() as s:
        row, key = stored.create_key(s, Role(role), name)
        key_id = row.id
    click.echo(f"created {role} key {key_id}{f' ({name})' if name else ''}; keep it now, it is not shown again:")
    click.echo(key)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(as_json: bool) -> None:
    """Every key: id, first characters, role, name, when created and revoked."""
    from db import keys as stored
    from service import resources

    with resources.current().session() as s:
        rows = [stored.key_json(row) for row in stored.list_keys(s)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(table([(r["id"], f"{r['prefix']}...", r["role"], r["name"], r["created_at"][:19],
                       (r["revoked_at"] or "")[:19]) for r in rows],
                     ["id", "key", "role", "name", "created", "revoked"]) if rows else "no API keys")


@keys.command("revoke")
@click.argument("key")
def revoke_key(key: str) -> None:
    """Revoke KEY (its id, or the first characters `keys list` shows); it stops working at once."""
    from db import keys as stored
    from service import resources

    try:
        with resources.current().session() as s:
            row = stored.revoke_key(s, key.removesuffix("..."))
            found = (row.id, row.role) if row is not None else None
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    if found is None:
        raise click.ClickException(f"no API key {key}")
    click.echo(f"revoked {found[1]} key {found[0]}")
