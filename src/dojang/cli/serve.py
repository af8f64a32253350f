"""``dojang serve``: the verification service (HTTP API + web page)."""

from __future__ import annotations

import os

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
@click.option("--new-admin-token", is_flag=True, help="Print a new admin token (the first one is printed at first start).")
@friendly_errors
def serve(host: str, port: int, dev: bool | None, new_admin_token: bool) -> None:
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
        click.echo(f"first admin token (shown once, keep it): {token}")
    elif new_admin_token:
        admin = [tid for tid, name in repo.tenant_names().items() if name == "admin"]
        if not admin:
            raise ServiceError("no admin tenant in this database")
        click.echo(f"new admin token (shown once, keep it): {repo.create_token(admin[0], 'cli')}")
    if dev:
        click.secho(
            "dev mode: keys are encrypted with a master key kept in the data directory; set DOJANG_MASTER_KEY "
            "and use --no-dev in production",
            fg="yellow",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"dojang verification service on http://{shown}:{port}/ (API docs: http://{shown}:{port}/docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
