"""The service's tables (SQLAlchemy Core), for SQLite and PostgreSQL alike. Alembic migrations in
``migrations/`` create them; :func:`upgrade` runs them."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

__all__ = [
    "audit", "jobs", "make_engine", "manifests",
    "metadata", "open_database", "signing_keys", "tenants", "texts", "tokens", "upgrade",
    "wm_keys",
]  # fmt: skip

metadata = MetaData()

tenants = Table(
    "tenants", metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # admin | provider | verifier
    Column("store_content", Boolean, nullable=False, default=False),  # opt-in: keep checked content in the audit log
    Column("created_at", DateTime(timezone=True), nullable=False),
)  # fmt: skip

tokens = Table(
    "tokens", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)  # fmt: skip

wm_keys = Table(
    "wm_keys", metadata,
    Column("key_id", String(64), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=False),
    Column("status", String(16), nullable=False),  # active | retired
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)  # fmt: skip

manifests = Table(
    "manifests", metadata,
    Column("content_id", String(32), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=True),
    Column("manifest", LargeBinary, nullable=False),
    Column("mime", String(64), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signer", String(400), nullable=False),
    Column("generator", String(400), nullable=False),
    Column("created_at", String(40), nullable=False),
)  # fmt: skip

texts = Table(
    "texts", metadata,
    Column("entry_id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=True),
    Column("key_id", String(64), nullable=False),
    Column("scheme", String(64), nullable=False),
    Column("model", String(400), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("text_sha256", String(64), nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("chars", Integer, nullable=False),
    Index("texts_by_hash", "text_sha256"),
    Index("texts_by_key", "key_id"),
)  # fmt: skip

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), nullable=True),  # null: the anonymous public tier
    Column("token_id", String(40), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),  # text | image | verify | generate
    Column("verdict", String(32), nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("content_sha256", String(64), nullable=False),
    Column("content", Text, nullable=True),  # only when the tenant opted in
    Column("client", String(64), nullable=True),
    Index("audit_by_tenant", "tenant_id", "at"),
)  # fmt: skip


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds tokens' hashes, sealed keys and
    the audit log); SQLite gives its -wal and -shm files the same mode."""
    if str(path) in ("", ":memory:"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # an unwritable place: the engine's own error names it


def make_engine(url: str) -> Engine:
    """An engine for ``url``: ``sqlite:///path`` or ``postgresql://...`` (driven by psycopg 3)."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        _private_file(Path(url.removeprefix("sqlite:///")))
    # a server's connections can drop (restarts, idle timeouts): ping before use; a SQLite file cannot
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            # WAL with synchronous=NORMAL: a commit survives the process being killed (only a power
            # cut can take the last ones back), without an fsync per commit
            conn.execute("PRAGMA synchronous=NORMAL")

    return engine


def open_database(url: str) -> Engine:
    """An engine for ``url`` with the schema at the newest migration. A database that cannot be
    reached or a URL that cannot be used is one :class:`ServiceError` naming the URL without its
    password, never a driver traceback."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    from dojang.errors import ServiceError
    from dojang.service.config import _redact_url

    try:
        engine = make_engine(url)
        upgrade(engine)
    except (ArgumentError, NoSuchModuleError, OperationalError, OSError) as err:
        cause = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        password = _password(url)
        if password:
            cause = cause.replace(password, "***")
        raise ServiceError(
            f"cannot open the database {_redact_url(url)}: {cause} "
            "(check DOJANG_DATABASE_URL: sqlite:///path or postgresql://user@host/db)"
        ) from None
    return engine


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password
    except Exception:  # an unparseable URL: nothing to hide beyond what _redact_url hides
        return None


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic, run in-process)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


signing_keys = Table(
    "signing_keys", metadata,
    Column("tenant_id", String(40), ForeignKey("tenants.id"), primary_key=True),
    Column("chain_pem", Text, nullable=False),
    Column("key_sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)  # fmt: skip

jobs = Table(
    "jobs", metadata,
    Column("id", String(64), primary_key=True),  # the job id: from the Idempotency-Key, or the queue's own
    Column("tenant_id", String(40), ForeignKey("tenants.id"), nullable=True),
    Column("kind", String(32), nullable=False),  # stamp | generate
    Column("request_sha256", String(64), nullable=False),  # a retry must repeat the request it names
    Column("media_type", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),  # the answer a retry gets back
    Column("meta", Text, nullable=False),  # JSON: headers and fields of the answer
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("jobs_by_time", "created_at"),
)  # fmt: skip
