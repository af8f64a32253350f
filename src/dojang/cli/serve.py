"""``dojang serve``: the verification service (HTTP API + web page)."""

from __future__ import annotations

import os
from typing import Any

import click

from dojang.cli._common import friendly_errors
from dojang.errors import ServiceError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--dev/--no-dev",
    default=None,
    help="Dev mode (a master key kept in the data directory). Default: on for the embedded SQLite database on "
    "localhost, off otherwise.",
)
@click.option(
    "--new-admin-token", is_flag=True, help="Write a new admin token to the token file (the first one is written at first start)."
)
@click.option(
    "--token-file",
    default=None,
    help="Where an admin token is written, mode 0600 (default: admin-token in the data directory). Tokens never go to stdout.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes on this port (one per core serves the most text detections; each has its own job workers "
    "unless DOJANG_JOB_QUEUE=redis). Share rate limits between them with DOJANG_REDIS_URL.",
)
@friendly_errors
def serve(host: str, port: int, dev: bool | None, new_admin_token: bool, token_file: str | None, workers: int) -> None:
    """Start the verification service. DOJANG_DATABASE_URL=postgresql://... runs it on PostgreSQL;
    DOJANG_MASTER_KEY encrypts keys at rest (required outside dev mode)."""
    try:
        import uvicorn

        from dojang.service.app import create_app
        from dojang.service.config import Settings
    except ImportError as err:
        raise ServiceError(
            f"the service needs the service extra: pip install 'dojang[service]' ({err.name} is missing)"
        ) from None

    if dev is None:
        dev = not os.environ.get("DOJANG_DATABASE_URL") and host in ("127.0.0.1", "localhost", "::1")
    settings = Settings.from_env(dev=dev)
    app = create_app(settings)
    repo = app.state.services.repo
    if not repo.has_tenants():
        _, token = repo.create_tenant("admin", "admin")
        path = write_token(token, token_file)
        click.echo(f"first admin token written to {path} (mode 0600): read it, keep it somewhere safe, delete the file")
    elif new_admin_token:
        admin = [tid for tid, name in repo.tenant_names().items() if name == "admin"]
        if not admin:
            raise ServiceError("no admin tenant in this database")
        path = write_token(repo.create_token(admin[0], "cli"), token_file)
        click.echo(f"new admin token written to {path} (mode 0600)")
    if dev:
        click.secho(
            "dev mode: keys are encrypted with a master key kept in the data directory; set DOJANG_MASTER_KEY "
            "and use --no-dev in production",
            fg="yellow",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"dojang verification service on http://{shown}:{port}/ (API docs: http://{shown}:{port}/docs)")
    import logging
    import sys

    access = logging.getLogger("dojang.service.access")  # one JSON line per request on stderr
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    # X-Forwarded-For is believed only from the proxies named in DOJANG_TRUSTED_PROXIES (uvicorn
    # would otherwise trust it from 127.0.0.1, so any local caller could pick its own address).
    proxies = settings.trusted_proxies
    target: Any = app
    if workers > 1:  # each process builds its own app from the same environment
        os.environ["DOJANG_DEV"] = "1" if dev else "0"
        # text detections hold the GIL: the cores are split between the processes (job workers are
        # processes of their own, and a process's share of requests varies, so each keeps one per core)
        os.environ.setdefault("DOJANG_DETECT_WORKERS", str(max(1, (os.cpu_count() or 1) // workers)))
        target = "dojang.service.app:app_from_env"
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) if proxies else None,
    )


@click.command()
@click.option("--burst", is_flag=True, help="Stop once the queue is empty instead of waiting for more jobs.")
@friendly_errors
def worker(burst: bool) -> None:
    """Run heavy jobs (image verification, stamping, generation) from the Redis queue that
    `dojang serve` replicas fill when DOJANG_JOB_QUEUE=redis. Takes DOJANG_REDIS_URL,
    DOJANG_DATABASE_URL and DOJANG_MASTER_KEY, the same as the replicas, and runs one child
    process per core (DOJANG_JOB_WORKERS), each under DOJANG_JOB_MEMORY_MB and DOJANG_JOB_TIMEOUT_S."""
    import logging

    try:
        from dojang.service.config import Settings
        from dojang.service.queue import run_worker
    except ImportError as err:
        raise ServiceError(f"the worker needs the service extra: pip install 'dojang[service]' ({err.name} is missing)") from None
    logging.getLogger("arq").setLevel(logging.WARNING)  # arq's own lines would show each job's arguments
    settings = Settings.from_env(dev=not os.environ.get("DOJANG_DATABASE_URL"))
    click.echo(f"dojang worker: jobs from {_redacted(settings.redis_url)} (queue dojang:jobs)", err=True)
    run_worker(settings, burst=burst)


def _redacted(url: str | None) -> str:
    from dojang.service.config import _redact_url

    return _redact_url(url or "")


def write_token(token: str, path: str | None) -> str:
    """Write ``token`` to ``path`` (default: ``admin-token`` in the data directory), readable by
    the owner only; a token never goes to stdout, where server logs would keep it."""
    from pathlib import Path

    from dojang.service.config import data_dir

    target = Path(path) if path is not None else data_dir() / "admin-token"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.unlink(missing_ok=True)  # a new file, so that the mode below holds whatever was there
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise ServiceError(f"cannot write the admin token to {target}: {err.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return str(target)


@click.group()
def tokens() -> None:
    """List and revoke the service's API tokens (the database of DOJANG_DATABASE_URL, or the embedded one)."""


def _repo() -> Any:
    try:
        from dojang.service.app import create_app
        from dojang.service.config import Settings
    except ImportError as err:
        missing = err.name
        raise ServiceError(f"the service needs the service extra: pip install 'dojang[service]' ({missing} is missing)") from None
    settings = Settings.from_env(dev=not os.environ.get("DOJANG_DATABASE_URL"))
    return create_app(settings).state.services.repo


@tokens.command("list")
@click.option("--tenant", "tenant_name", default=None, help="Only this tenant's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly_errors
def list_tokens(tenant_name: str | None, as_json: bool) -> None:
    """Every token's id, tenant, label and dates (never the token itself)."""
    import json

    repo = _repo()
    names = repo.tenant_names()
    tenant_id = None
    if tenant_name is not None:
        tenant_id = next((tid for tid, name in names.items() if name == tenant_name), None)
        if tenant_id is None:
            raise ServiceError(f"no tenant named {tenant_name!r}")
    rows = repo.list_tokens(tenant_id)
    for row in rows:
        row["tenant"] = names.get(row["tenant_id"], "?")
    if as_json:
        click.echo(json.dumps({"tokens": rows}))
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "live"
        click.echo(f"{row['token_id']}  {row['tenant']:20s} {row['label']:14s} created {row['created_at']}  {state}")


@tokens.command("revoke")
@click.argument("token_id")
@friendly_errors
def revoke_token(token_id: str) -> None:
    """Revoke a token by its id (from `dojang tokens list`): it stops working at once."""
    repo = _repo()
    owner = next((row["tenant_id"] for row in repo.list_tokens() if row["token_id"] == token_id and not row["revoked_at"]), None)
    if owner is None or not repo.revoke_token(owner, token_id):
        raise ServiceError(f"no live token {token_id}")
    click.echo(f"revoked {token_id}")
