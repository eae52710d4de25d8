"""The ``kadr`` command.

User commands (``enhance``, ``batch``) speak HTTP only and work from any machine.
Admin commands (``keys``, ``models``) run on the server host and import
``services.common`` lazily, inside the command, so the user commands stay light.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import redis  # the admin commands' (server host); a client-only install has none


@click.group()
def main() -> None:
    """kadr: self-hosted photo, video and camera processing."""


def _server_packages(command: str) -> None:
    """The admin commands need the server's packages, which a client-only install
    (``pip install kadr[client]``) leaves out: say so instead of a traceback."""
    try:
        import services.contracts.settings  # noqa: F401
        import services.store.jobs  # noqa: F401
    except ModuleNotFoundError as e:
        raise click.ClickException(
            f"'kadr {command}' runs on the server host and needs the server's packages "
            f"({e.name} is not installed): pip install 'kadr[server]'"
        )


@main.group()
def keys() -> None:
    """API keys (server host: talks to Redis directly)."""
    _server_packages("keys")


def _redis() -> redis.Redis:
    import os

    from services.contracts.settings import Settings
    from services.store.connection import connect

    # On a `make up` host the password is in var/secrets (the processes get the path from
    # up.sh; an operator's shell does not): found there when nothing else names it.
    local = Path("var/secrets/redis_password")
    if "KADR_REDIS_PASSWORD_FILE" not in os.environ and local.is_file():
        return connect(Settings(redis_password_file=local).redis_url)
    return connect(Settings().redis_url)


@keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="What the key may do (repeat): photos, video, cameras:read, cameras:manage, ops. Default: all of them.",
)
def keys_create(name: str, scopes: tuple[str, ...]) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    from services.store.apikeys import create_key

    try:
        key, record = create_key(_redis(), name, list(scopes) or None)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--scope")
    click.echo(key)
    click.echo(f"created key {record['id']} ({name}); store it now, it cannot be shown again", err=True)


@keys.command("list")
def keys_list() -> None:
    """List keys (ids and names, never the keys)."""
    from services.store.apikeys import list_keys, scopes_of

    for rec in list_keys(_redis()):
        click.echo(f"{rec['id']}\t{rec['name']}\t{rec['created_at']}\t{','.join(sorted(scopes_of(rec)))}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id."""
    from services.store.apikeys import revoke_key

    if not revoke_key(_redis(), key_id):
        raise click.ClickException(f"no key with id {key_id}")
    click.echo(f"revoked {key_id}")


@main.group()
def models() -> None:
    """Model weight files (server host)."""
    _server_packages("models")


def _models_dir(path: str | None) -> Path:
    from services.runtime.settings import WorkerSettings

    return Path(path).resolve() if path else WorkerSettings().models_dir


@models.command("download")
@click.option("--models-dir", type=click.Path(file_okay=False), help="default: KADR_MODELS_DIR")
@click.option("--only", multiple=True, help="catalog name(s) to fetch")
def models_download(models_dir: str | None, only: tuple[str, ...]) -> None:
    """Fetch the official weight files (pinned URL + sha256) into the models directory."""
    from services.runtime import weights

    target = _models_dir(models_dir)
    target.mkdir(parents=True, exist_ok=True)
    try:
        results = weights.download(target, list(only) or None, on_progress=lambda name, done, total: None)
    except weights.WeightsDownloadError as e:
        raise click.ClickException(str(e))
    for r in results:
        click.echo(f"{r.name}\t{r.action}\t{r.path}")


@models.command("verify")
@click.option("--models-dir", type=click.Path(file_okay=False), help="default: KADR_MODELS_DIR")
def models_verify(models_dir: str | None) -> None:
    """Check every weight file against its pinned sha256; exit 1 if any is missing or wrong."""
    from services.runtime import weights

    results = weights.verify(_models_dir(models_dir))
    bad = 0
    for r in results:
        click.echo(f"{r.name}\t{r.status}\t{r.path}")
        bad += r.status != "ok"
    sys.exit(1 if bad else 0)


# The user commands speak HTTP only (requests, click, tqdm): no server package is imported.
from client.batches import batch  # noqa: E402
from client.photos import enhance  # noqa: E402
from client.usage import usage  # noqa: E402

main.add_command(enhance)
main.add_command(batch)
main.add_command(usage)


if __name__ == "__main__":
    main()
