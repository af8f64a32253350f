"""Service test set-up shared by the API and browser tests: a real database (SQLite file, or a fresh
PostgreSQL database on 127.0.0.1:5432), tenants, keys and marked content."""

from __future__ import annotations

import io
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

PG_ADMIN_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"


def postgres_url() -> tuple[str, Any]:
    """A fresh PostgreSQL database and a function that drops it; skips when no server answers."""
    try:
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = "dojang_test_" + secrets.token_hex(4)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as err:
        pytest.skip(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 ({type(err).__name__}): the PostgreSQL runs of the "
            "service tests could not run"
        )

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return f"postgresql://root@127.0.0.1:5432/{name}", drop


@dataclass
class Env:
    client: Any
    app: Any
    admin: dict[str, str]
    acme: dict[str, str]  # provider tenant "acme-ai"
    other: dict[str, str]  # provider tenant "other-ai"
    checker: dict[str, str]  # verifier tenant
    acme_key: Any
    other_key: Any
    root: Path
    extras: dict[str, Any] = field(default_factory=dict)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def build_env(url: str, root: Path, *, keys: tuple[Any, Any] | None = None, **overrides: Any) -> Env:
    """``keys``: (acme's, other's) watermark keys; fixed test keys when not given, so that what the
    tiny model writes under them, and so every verdict, is the same on every run."""
    from fastapi.testclient import TestClient

    from dojang.service import Settings, create_app
    from tests.helpers import fixed_key

    settings = Settings(database_url=url, master_key=secrets.token_bytes(32), **overrides)
    app = create_app(settings)
    repo = app.state.services.repo
    _, admin_token = repo.create_tenant("admin", "admin")
    client = TestClient(app)
    admin = bearer(admin_token)

    def tenant(name: str, kind: str, **kw: Any) -> dict[str, str]:
        r = client.post("/v1/tenants", json={"name": name, "kind": kind, **kw}, headers=admin)
        assert r.status_code == 201, r.text
        return bearer(r.json()["token"])

    acme, other, checker = tenant("acme-ai", "provider"), tenant("other-ai", "provider"), tenant("newsroom", "verifier")
    acme_key, other_key = keys if keys is not None else (fixed_key(100), fixed_key(200))
    for headers, key in ((acme, acme_key), (other, other_key)):
        r = client.post("/v1/keys", json={"key": key.to_json()}, headers=headers)
        assert r.status_code == 201, r.text
    return Env(client, app, admin, acme, other, checker, acme_key, other_key, root)


@contextmanager
def live_server(app: Any, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn server on a free local port in a background thread;
    yields its base URL and stops it (finishing requests in flight) on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", backlog=512, timeout_keep_alive=60)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the uvicorn test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
