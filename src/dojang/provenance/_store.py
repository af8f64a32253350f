"""The manifest store: content id -> signed manifest (images), and text provenance entries.

:class:`ManifestStore` is the interface; :class:`SQLiteStore` is the embedded default (one file in
the user's data directory). The verification service backs the same interface with PostgreSQL.
Writes are transactions: a failed write leaves what was stored before untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from platformdirs import user_data_dir

from dojang.errors import ProvenanceError

__all__ = ["ManifestRecord", "ManifestStore", "SQLiteStore", "TextRecord", "default_store_path", "open_store"]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """A signed manifest filed under the content id that the image watermark carries."""

    content_id: str  # hex payload of the watermark
    manifest: bytes  # the C2PA manifest store (JUMBF), exactly as signed
    mime: str
    fingerprint: str  # image_fingerprint of the stamped image
    key_id: str
    signer: str
    generator: str
    created_at: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class TextRecord:
    """A provenance entry for a watermarked text (the text itself is not stored, only its hashes)."""

    entry_id: str
    key_id: str
    scheme: str
    model: str
    created_at: str
    text_sha256: str
    fingerprint: str  # text_fingerprint (MinHash), to find lightly edited copies
    chars: int


class ManifestStore(Protocol):
    """What stamping and verification need from a store."""

    location: str

    def put_manifest(self, record: ManifestRecord) -> None: ...

    def get_manifest(self, content_id: str) -> ManifestRecord | None: ...

    def put_text(self, record: TextRecord) -> None: ...

    def text_by_hash(self, text_sha256: str) -> TextRecord | None: ...

    def texts_for_key(self, key_id: str, limit: int = 10_000) -> list[TextRecord]: ...


def default_store_path() -> Path:
    """``$DOJANG_STORE`` or ``manifests.sqlite3`` in the user's data directory."""
    env = os.environ.get("DOJANG_STORE")
    return Path(env) if env else Path(user_data_dir("dojang", appauthor=False)) / "manifests.sqlite3"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS manifests (
    content_id TEXT PRIMARY KEY,
    manifest BLOB NOT NULL,
    mime TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signer TEXT NOT NULL,
    generator TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS texts (
    entry_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    scheme TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    chars INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS texts_by_hash ON texts (text_sha256);
CREATE INDEX IF NOT EXISTS texts_by_key ON texts (key_id);
"""


class SQLiteStore:
    """The embedded store: one SQLite file. Safe to share between processes (WAL journal)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.location = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ProvenanceError(f"store {self.path} was written by a newer dojang (schema {version}); upgrade dojang")
            self._db.execute("PRAGMA journal_mode=WAL")
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            raise ProvenanceError(f"cannot open the manifest store {self.path}: {err}") from None
        except OSError as err:
            raise ProvenanceError(f"cannot create the manifest store {self.path}: {err.strerror}") from None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.location!r})"

    def close(self) -> None:
        self._db.close()

    def put_manifest(self, record: ManifestRecord) -> None:
        try:
            with self._db:
                self._db.execute(
                    "INSERT INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.content_id,
                        record.manifest,
                        record.mime,
                        record.fingerprint,
                        record.key_id,
                        record.signer,
                        record.generator,
                        record.created_at,
                    ),
                )
        except sqlite3.IntegrityError:
            raise ProvenanceError(f"content id {record.content_id} is already in the store; ids are never reused") from None
        except sqlite3.DatabaseError as err:
            raise ProvenanceError(f"could not write to the manifest store {self.path}: {err}") from None

    def get_manifest(self, content_id: str) -> ManifestRecord | None:
        row = self._db.execute("SELECT * FROM manifests WHERE content_id = ?", (content_id.lower(),)).fetchone()
        return ManifestRecord(*row) if row else None

    def put_text(self, record: TextRecord) -> None:
        try:
            with self._db:
                self._db.execute(
                    "INSERT INTO texts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.entry_id,
                        record.key_id,
                        record.scheme,
                        record.model,
                        record.created_at,
                        record.text_sha256,
                        record.fingerprint,
                        record.chars,
                    ),
                )
        except sqlite3.DatabaseError as err:
            raise ProvenanceError(f"could not write to the manifest store {self.path}: {err}") from None

    def text_by_hash(self, text_sha256: str) -> TextRecord | None:
        row = self._db.execute("SELECT * FROM texts WHERE text_sha256 = ? ORDER BY created_at LIMIT 1", (text_sha256,)).fetchone()
        return TextRecord(*row) if row else None

    def texts_for_key(self, key_id: str, limit: int = 10_000) -> list[TextRecord]:
        rows = self._db.execute(
            "SELECT * FROM texts WHERE key_id = ? ORDER BY created_at DESC LIMIT ?", (key_id, limit)
        ).fetchall()
        return [TextRecord(*r) for r in rows]


def open_store(location: str | os.PathLike[str] | None = None) -> ManifestStore:
    """A store from a path (SQLite); ``None`` opens the default one."""
    loc = str(location) if location is not None else None
    if loc and loc.startswith(("postgresql://", "postgres://")):
        raise ProvenanceError("PostgreSQL stores are provided by the verification service (dojang serve)")
    return SQLiteStore(loc)
