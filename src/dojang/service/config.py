"""Service settings, read from the environment (12-factor) with safe defaults for `dojang serve`."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

from dojang.errors import ServiceError

__all__ = ["Settings"]

log = logging.getLogger(__name__)


def data_dir() -> Path:
    """Where the embedded database, the dev master key and the admin token file live."""
    return _data_dir()


def _data_dir() -> Path:
    return Path(os.environ.get("DOJANG_DATA_DIR") or user_data_dir("dojang", appauthor=False))


def parse_master_key(value: str) -> bytes:
    """32 bytes from DOJANG_MASTER_KEY: base64 or hex of 32 bytes, or a passphrase of >= 32 characters."""
    value = value.strip()
    for decode in (bytes.fromhex, lambda v: base64.b64decode(v, validate=True)):
        try:
            raw = decode(value)
        except ValueError:
            continue
        if len(raw) == 32:
            return raw
    if len(value) >= 32:
        return hashlib.sha256(b"dojang master key\0" + value.encode()).digest()
    raise ServiceError("DOJANG_MASTER_KEY must be 32 bytes as hex or base64, or a passphrase of at least 32 characters")


@dataclass(frozen=True)
class Settings:
    """Everything the service needs. Build with :meth:`from_env`; tests pass values directly."""

    database_url: str
    master_key: bytes
    dev: bool = False
    max_upload_bytes: int = 20 * 1024 * 1024
    max_text_chars: int = 100_000
    max_prompt_chars: int = 10_000  # a detection's context prompt and a generation's prompt
    max_stamp_pixels: int = 25_000_000  # stamping holds several float copies of the image: ~70 bytes a pixel
    rate_per_minute: int = 120  # per token
    anonymous_rate_per_minute: int = 20  # per client address, for the public tier
    public_tier: bool = True  # anonymous verdict-only checks (the public page); off = every API call needs a token
    trust_anchors_pem: str | None = None
    request_timeout_s: float = 60.0
    detect_workers: int = 0  # detections that run at once, in arrival order (0: one per CPU core)
    max_keys_per_tenant: int = 20  # watermark keys, active and retired: every detection tries them all
    max_tokens_per_tenant: int = 10  # live (unrevoked) API tokens
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For is believed (none: it is ignored)
    redis_url: str | None = None  # rate limits shared by every worker and replica (without it: per process)
    remote_manifest_allow: tuple[str, ...] = ()  # URL prefixes a file's remote manifest may be fetched from (none)
    generation_model: str | None = None  # /v1/text/generate's model: a local transformers folder (None: the default)
    job_queue: str = "local"  # heavy jobs: "local" (this process's workers) or "redis" (`dojang worker` processes)
    job_workers: int = 0  # worker processes for heavy jobs (0: one per CPU core)
    job_memory_mb: int = 2048  # a job whose worker passes this resident memory is stopped (413)
    job_timeout_s: float = 30.0  # a job running longer is stopped (504)
    max_queued_jobs: int = 32  # jobs waiting beyond this are turned away (429 with Retry-After)
    max_jobs_per_caller: int = 8  # jobs one tenant (or one anonymous address) may have running or waiting

    def __repr__(self) -> str:  # never the master key
        return f"Settings(database_url={_redact_url(self.database_url)!r}, dev={self.dev}, public_tier={self.public_tier})"

    @classmethod
    def from_env(cls, *, dev: bool = False) -> Settings:
        env = os.environ
        url = env.get("DOJANG_DATABASE_URL") or f"sqlite:///{_data_dir() / 'service.sqlite3'}"
        raw = env.get("DOJANG_MASTER_KEY")
        if raw:
            master = parse_master_key(raw)
        elif dev:
            master = _dev_master_key()
        else:
            raise ServiceError(
                "DOJANG_MASTER_KEY is not set: the service encrypts watermark and signing keys with it and will not start "
                "without it (generate one with: python -c 'import secrets; print(secrets.token_hex(32))'), or start with --dev"
            )
        trust = None
        if env.get("DOJANG_TRUST_ANCHORS"):
            path = Path(env["DOJANG_TRUST_ANCHORS"])
            try:
                trust = path.read_text()
            except OSError as err:
                raise ServiceError(f"cannot read DOJANG_TRUST_ANCHORS {path}: {err.strerror}") from None

        def number(name: str, default: int) -> int:
            try:
                return int(env.get(name, default))
            except ValueError:
                raise ServiceError(f"{name} must be an integer") from None

        return cls(
            database_url=url,
            master_key=master,
            dev=dev,
            max_upload_bytes=number("DOJANG_MAX_UPLOAD_BYTES", 20 * 1024 * 1024),
            max_text_chars=number("DOJANG_MAX_TEXT_CHARS", 100_000),
            max_prompt_chars=number("DOJANG_MAX_PROMPT_CHARS", 10_000),
            max_stamp_pixels=number("DOJANG_MAX_STAMP_PIXELS", 25_000_000),
            rate_per_minute=number("DOJANG_RATE_PER_MINUTE", 120),
            anonymous_rate_per_minute=number("DOJANG_ANONYMOUS_RATE_PER_MINUTE", 20),
            detect_workers=number("DOJANG_DETECT_WORKERS", 0),
            public_tier=env.get("DOJANG_PUBLIC_TIER", "on").lower() not in ("0", "off", "false", "no"),
            trust_anchors_pem=trust,
            remote_manifest_allow=_url_prefixes(env.get("DOJANG_REMOTE_MANIFEST_ALLOW", "")),
            max_keys_per_tenant=number("DOJANG_MAX_KEYS_PER_TENANT", 20),
            max_tokens_per_tenant=number("DOJANG_MAX_TOKENS_PER_TENANT", 10),
            redis_url=env.get("DOJANG_REDIS_URL") or None,
            generation_model=env.get("DOJANG_MODEL") or None,
            job_queue=_job_queue(env.get("DOJANG_JOB_QUEUE", "local"), env.get("DOJANG_REDIS_URL")),
            job_workers=number("DOJANG_JOB_WORKERS", 0),
            job_memory_mb=number("DOJANG_JOB_MEMORY_MB", 2048),
            job_timeout_s=float(number("DOJANG_JOB_TIMEOUT_S", 30)),
            max_queued_jobs=number("DOJANG_MAX_QUEUED_JOBS", 32),
            max_jobs_per_caller=number("DOJANG_MAX_JOBS_PER_CALLER", 8),
            trusted_proxies=tuple(p.strip() for p in env.get("DOJANG_TRUSTED_PROXIES", "").split(",") if p.strip()),
        )


def _job_queue(value: str, redis_url: str | None) -> str:
    value = value.strip().lower()
    if value not in ("local", "redis"):
        raise ServiceError(f"DOJANG_JOB_QUEUE must be local or redis, not {value!r}")
    if value == "redis" and not redis_url:
        raise ServiceError("DOJANG_JOB_QUEUE=redis needs DOJANG_REDIS_URL (where the queue and its workers meet)")
    return value


def _url_prefixes(raw: str) -> tuple[str, ...]:
    """Comma-separated ``https://`` (or ``http://``) URL prefixes; anything else is refused."""
    prefixes = tuple(p.strip() for p in raw.split(",") if p.strip())
    for prefix in prefixes:
        if not prefix.startswith(("https://", "http://")) or prefix.count("/") < 2 or len(prefix) <= len("https://"):
            raise ServiceError(f"DOJANG_REMOTE_MANIFEST_ALLOW: {prefix!r} is not an http(s) URL prefix")
    return prefixes


def _dev_master_key() -> bytes:
    """Dev mode only: a master key kept in the data directory (mode 0600), made on first start."""
    path = _data_dir() / "dev-master.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    log.warning("dev mode: created a master key at %s; set DOJANG_MASTER_KEY in production", path)
    return key


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url
