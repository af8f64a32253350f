"""Data access for the service: tenants, tokens, watermark keys, the manifest store, the audit log.

Every query that returns tenant data takes the tenant id: one tenant never reads another's keys,
manifests or audit entries through these functions.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from dojang.errors import ProvenanceError, ServiceError
from dojang.keys import Key, KeyRing
from dojang.provenance import ManifestRecord, TextRecord
from dojang.service import db
from dojang.service.crypto import hash_token, new_token, open_secret, seal_secret
from dojang.service.inputs import clean_stored_text

__all__ = ["BufferedStore", "DBManifestStore", "KeyInfo", "Principal", "Repo", "StoredJob", "audit_row"]

TENANT_KINDS = ("admin", "provider", "verifier")


@dataclass(frozen=True)
class StoredJob:
    """The answer of a finished job that wrote records: what a retry with its id gets back."""

    job_id: str
    tenant_id: str | None
    kind: str
    request_sha256: str
    media_type: str
    body: bytes
    meta: dict[str, Any]


def audit_row(
    principal: Principal | None,
    kind: str,
    verdict: str,
    key_id: str | None,
    content_sha256: str,
    content: str | None,
    client: str | None,
) -> dict[str, Any]:
    """One audit entry's columns; the content only where the tenant opted in to keeping it."""
    keep = clean_stored_text(content) if content is not None and principal is not None and principal.store_content else None
    return {
        "tenant_id": principal.tenant_id if principal else None,
        "token_id": principal.token_id if principal else None,
        "at": _now(),
        "kind": kind,
        "verdict": verdict,
        "key_id": key_id,
        "content_sha256": content_sha256,
        "content": keep,
        "client": client,
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a tenant through one of its tokens (or nobody, on the public tier)."""

    tenant_id: str
    tenant_name: str
    kind: str
    token_id: str
    store_content: bool


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    tenant_id: str
    status: str
    created_at: str
    retired_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "status": self.status, "created_at": self.created_at, "retired_at": self.retired_at}


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


class Repo:
    def __init__(self, engine: Engine, master_key: bytes) -> None:
        self.engine = engine
        self._master = master_key

    def __repr__(self) -> str:
        return f"Repo({self.engine.dialect.name})"

    # -- tenants and tokens ---------------------------------------------------------------------
    def create_tenant(self, name: str, kind: str, *, store_content: bool = False) -> tuple[str, str]:
        """Create a tenant and its first token; returns (tenant id, token). The token is shown once."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ServiceError("a tenant name must be 1-200 characters")
        if kind not in TENANT_KINDS:
            raise ServiceError(f"tenant kind must be one of {', '.join(TENANT_KINDS)}")
        tenant_id = "tn-" + secrets.token_hex(8)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(db.tenants).values(id=tenant_id, name=name, kind=kind, store_content=store_content, created_at=_now())
                )
                token = self._new_token(conn, tenant_id, "first token")
        except IntegrityError:
            raise ServiceError(f"a tenant named {name!r} already exists") from None
        return tenant_id, token

    def _new_token(self, conn: Any, tenant_id: str, label: str) -> str:
        token = new_token()
        conn.execute(
            insert(db.tokens).values(
                id="tk-" + secrets.token_hex(8), tenant_id=tenant_id, token_hash=hash_token(token), label=label, created_at=_now()
            )
        )
        return token

    def create_token(self, tenant_id: str, label: str = "") -> str:
        with self.engine.begin() as conn:
            return self._new_token(conn, tenant_id, label)

    def live_tokens(self, tenant_id: str) -> int:
        with self.engine.connect() as conn:
            live = (db.tokens.c.tenant_id == tenant_id) & db.tokens.c.revoked_at.is_(None)
            return int(conn.execute(select(func.count()).select_from(db.tokens).where(live)).scalar_one())

    def list_tokens(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Tokens' ids, labels and dates (never their hashes): one tenant's, or every tenant's."""
        q = select(db.tokens.c.id, db.tokens.c.tenant_id, db.tokens.c.label, db.tokens.c.created_at, db.tokens.c.revoked_at)
        if tenant_id is not None:
            q = q.where(db.tokens.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(db.tokens.c.created_at)).fetchall()
        return [
            {"token_id": r[0], "tenant_id": r[1], "label": r[2], "created_at": _iso(r[3]), "revoked_at": _iso(r[4])} for r in rows
        ]

    def revoke_token(self, tenant_id: str, token_id: str) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(
                update(db.tokens)
                .where(db.tokens.c.id == token_id, db.tokens.c.tenant_id == tenant_id, db.tokens.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        return res.rowcount == 1

    def authenticate(self, token: str) -> Principal | None:
        q = (
            select(db.tokens.c.id, db.tenants.c.id, db.tenants.c.name, db.tenants.c.kind, db.tenants.c.store_content)
            .join(db.tenants, db.tenants.c.id == db.tokens.c.tenant_id)
            .where(db.tokens.c.token_hash == hash_token(token), db.tokens.c.revoked_at.is_(None))
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        return Principal(tenant_id=row[1], tenant_name=row[2], kind=row[3], token_id=row[0], store_content=bool(row[4]))

    def has_tenants(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(db.tenants.c.id).limit(1)).first() is not None

    def tenant_names(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(select(db.tenants.c.id, db.tenants.c.name))}

    # -- watermark keys -------------------------------------------------------------------------
    def add_key(self, tenant_id: str, key: Key) -> KeyInfo:
        sealed = seal_secret(self._master, key._secret, context=f"{tenant_id}/{key.key_id}")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(db.wm_keys).values(
                        key_id=key.key_id, tenant_id=tenant_id, status="active", secret_sealed=sealed, created_at=_now()
                    )
                )
        except IntegrityError:
            raise ServiceError(f"key {key.key_id} is already registered") from None
        return self.key_info(tenant_id, key.key_id)  # type: ignore[return-value]

    def key_info(self, tenant_id: str, key_id: str) -> KeyInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(db.wm_keys).where(db.wm_keys.c.key_id == key_id, db.wm_keys.c.tenant_id == tenant_id)
            ).first()
        if row is None:
            return None
        return KeyInfo(row.key_id, row.tenant_id, row.status, _iso(row.created_at) or "", _iso(row.retired_at))

    def list_keys(self, tenant_id: str) -> list[KeyInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.wm_keys).where(db.wm_keys.c.tenant_id == tenant_id).order_by(db.wm_keys.c.created_at))
            return [KeyInfo(r.key_id, r.tenant_id, r.status, _iso(r.created_at) or "", _iso(r.retired_at)) for r in rows]

    def count_keys(self, tenant_id: str) -> int:
        with self.engine.connect() as conn:
            q = select(func.count()).select_from(db.wm_keys).where(db.wm_keys.c.tenant_id == tenant_id)
            return int(conn.execute(q).scalar_one())

    def delete_key(self, tenant_id: str, key_id: str) -> bool:
        """Delete a retired key (its sealed secret goes with it); an active key is kept."""
        with self.engine.begin() as conn:
            res = conn.execute(
                delete(db.wm_keys).where(
                    db.wm_keys.c.key_id == key_id, db.wm_keys.c.tenant_id == tenant_id, db.wm_keys.c.status == "retired"
                )
            )
        return res.rowcount == 1

    def retire_key(self, tenant_id: str, key_id: str) -> KeyInfo | None:
        with self.engine.begin() as conn:
            conn.execute(
                update(db.wm_keys)
                .where(db.wm_keys.c.key_id == key_id, db.wm_keys.c.tenant_id == tenant_id, db.wm_keys.c.status == "active")
                .values(status="retired", retired_at=_now())
            )
        return self.key_info(tenant_id, key_id)

    def keys(
        self, *, tenant_id: str | None = None, key_id: str | None = None, active_only: bool = False
    ) -> list[tuple[Key, str]]:
        """Decrypted keys with their owner tenant id: every provider's (or one tenant's, or one key)."""
        q = select(db.wm_keys)
        if tenant_id is not None:
            q = q.where(db.wm_keys.c.tenant_id == tenant_id)
        if key_id is not None:
            q = q.where(db.wm_keys.c.key_id == key_id)
        if active_only:
            q = q.where(db.wm_keys.c.status == "active")
        q = q.order_by(db.wm_keys.c.created_at)
        with self.engine.connect() as conn:
            rows = conn.execute(q).fetchall()
        out = []
        for r in rows:
            secret = open_secret(self._master, r.secret_sealed, context=f"{r.tenant_id}/{r.key_id}")
            out.append((Key(key_id=r.key_id, _secret=secret), r.tenant_id))
        return out

    def key_ring(self, **filters: Any) -> tuple[KeyRing | None, dict[str, str]]:
        """The keys to try, with their owners. Every provider gets an equal share of the
        false-positive budget, split among its own keys (a weighted Bonferroni correction): a
        provider that registers many keys dilutes only its own p-values, never another's."""
        pairs = self.keys(**filters)
        if not pairs:
            return None, {}
        per_tenant: dict[str, int] = {}
        for _, tenant in pairs:
            per_tenant[tenant] = per_tenant.get(tenant, 0) + 1
        weights = {k.key_id: 1.0 / (len(per_tenant) * per_tenant[t]) for k, t in pairs}
        return KeyRing([k for k, _ in pairs], weights=weights), {k.key_id: t for k, t in pairs}

    # -- signing keys (C2PA) ------------------------------------------------------------------------
    def set_signing_key(self, tenant_id: str, chain_pem: str, key_pem: bytes) -> None:
        """Store the tenant's C2PA signing chain and key (the key sealed under the master key)."""
        sealed = seal_secret(self._master, key_pem, context=f"{tenant_id}/signing")
        with self.engine.begin() as conn:
            conn.execute(db.signing_keys.delete().where(db.signing_keys.c.tenant_id == tenant_id))
            conn.execute(
                insert(db.signing_keys).values(tenant_id=tenant_id, chain_pem=chain_pem, key_sealed=sealed, created_at=_now())
            )

    def signing_key(self, tenant_id: str) -> tuple[str, bytes] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.signing_keys).where(db.signing_keys.c.tenant_id == tenant_id)).first()
        if row is None:
            return None
        return row.chain_pem, open_secret(self._master, row.key_sealed, context=f"{tenant_id}/signing")

    # -- audit ----------------------------------------------------------------------------------
    def audit(
        self,
        *,
        principal: Principal | None,
        kind: str,
        verdict: str,
        key_id: str | None,
        content_sha256: str,
        content: str | None,
        client: str | None,
    ) -> None:
        row = audit_row(principal, kind, verdict, key_id, content_sha256, content, client)
        with self.engine.begin() as conn:
            conn.execute(insert(db.audit).values(**row))

    # -- jobs that write records ----------------------------------------------------------------
    def stored_job(self, job_id: str) -> StoredJob | None:
        """A finished writing job's answer, kept for retries (None: it never finished)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(db.jobs).where(db.jobs.c.id == job_id)).first()
        if row is None:
            return None
        return StoredJob(
            row.id, row.tenant_id, row.kind, row.request_sha256, row.media_type, bytes(row.body), json.loads(row.meta)
        )

    def commit_job(
        self,
        job: StoredJob,
        *,
        manifests: list[ManifestRecord] = (),  # type: ignore[assignment]
        texts: list[TextRecord] = (),  # type: ignore[assignment]
        audit: dict[str, Any] | None = None,
        keep_s: float = 86_400.0,
    ) -> StoredJob:
        """Write a job's records, its audit entry and its answer in one transaction, once: when the
        same job id already finished (a retry, or the queue running a job again after its worker
        died), nothing is written and the first answer is returned. Answers older than ``keep_s``
        are dropped here as well."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(db.jobs).values(
                        id=job.job_id,
                        tenant_id=job.tenant_id,
                        kind=job.kind,
                        request_sha256=job.request_sha256,
                        media_type=job.media_type,
                        body=job.body,
                        meta=json.dumps(job.meta),
                        created_at=_now(),
                    )
                )
                for record in manifests:
                    conn.execute(insert(db.manifests).values(tenant_id=job.tenant_id, **asdict(record)))
                for text_record in texts:
                    conn.execute(insert(db.texts).values(tenant_id=job.tenant_id, **asdict(text_record)))
                if audit is not None:
                    conn.execute(insert(db.audit).values(**audit))
                conn.execute(delete(db.jobs).where(db.jobs.c.created_at < _now() - dt.timedelta(seconds=keep_s)))
        except IntegrityError:
            first = self.stored_job(job.job_id)
            if first is None:  # not the job id: a manifest's content id or a text's entry id collided
                raise ProvenanceError("a record id is already in the store; nothing was written") from None
            return first
        return job

    def audit_entries(self, tenant_id: str, limit: int = 100) -> list[dict[str, Any]]:
        q = select(db.audit).where(db.audit.c.tenant_id == tenant_id).order_by(db.audit.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).fetchall()
        return [
            {
                "id": r.id,
                "at": _iso(r.at),
                "kind": r.kind,
                "verdict": r.verdict,
                "key_id": r.key_id,
                "content_sha256": r.content_sha256,
                "content": r.content,
                "token_id": r.token_id,
            }
            for r in rows
        ]


class DBManifestStore:
    """The :class:`~dojang.provenance.ManifestStore` interface over the service database (SQLite or
    PostgreSQL). Writes carry the tenant that made them."""

    def __init__(self, engine: Engine, tenant_id: str | None = None) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self.location = f"service database ({engine.dialect.name})"

    def put_manifest(self, record: ManifestRecord) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(db.manifests).values(tenant_id=self.tenant_id, **asdict(record)))
        except IntegrityError:
            raise ProvenanceError(f"content id {record.content_id} is already in the store; ids are never reused") from None

    def get_manifest(self, content_id: str) -> ManifestRecord | None:
        cols = [db.manifests.c[f] for f in ManifestRecord.__dataclass_fields__]
        with self.engine.connect() as conn:
            row = conn.execute(select(*cols).where(db.manifests.c.content_id == content_id.lower())).first()
        return ManifestRecord(*row) if row else None

    def put_text(self, record: TextRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(db.texts).values(tenant_id=self.tenant_id, **asdict(record)))

    def _texts(self, where: Any, limit: int) -> list[TextRecord]:
        cols = [db.texts.c[f] for f in TextRecord.__dataclass_fields__]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).where(where).order_by(db.texts.c.created_at.desc()).limit(limit)).fetchall()
        return [TextRecord(*r) for r in rows]

    def text_by_hash(self, text_sha256: str) -> TextRecord | None:
        rows = self._texts(db.texts.c.text_sha256 == text_sha256, 1)
        return rows[0] if rows else None

    def texts_for_key(self, key_id: str, limit: int = 10_000) -> list[TextRecord]:
        return self._texts(db.texts.c.key_id == key_id, limit)


class BufferedStore:
    """A store for a job that writes: reads go to the database, writes wait for
    :meth:`Repo.commit_job`, which lands them with the job's answer in one transaction."""

    def __init__(self, engine: Engine, tenant_id: str | None) -> None:
        self._db = DBManifestStore(engine, tenant_id)
        self.location = self._db.location
        self.manifests: list[ManifestRecord] = []
        self.texts: list[TextRecord] = []

    def put_manifest(self, record: ManifestRecord) -> None:
        self.manifests.append(record)

    def get_manifest(self, content_id: str) -> ManifestRecord | None:
        return self._db.get_manifest(content_id)

    def put_text(self, record: TextRecord) -> None:
        self.texts.append(record)

    def text_by_hash(self, text_sha256: str) -> TextRecord | None:
        return self._db.text_by_hash(text_sha256)

    def texts_for_key(self, key_id: str, limit: int = 10_000) -> list[TextRecord]:
        return self._db.texts_for_key(key_id, limit)
