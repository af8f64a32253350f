"""Secrets at rest: AES-256-GCM under the master key, bound to the row they belong to."""

from __future__ import annotations

import hashlib
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dojang.errors import ServiceError

__all__ = ["hash_token", "new_token", "open_secret", "seal_secret"]

TOKEN_PREFIX = "dj_"


def seal_secret(master: bytes, secret: bytes, *, context: str) -> bytes:
    """Encrypt ``secret``; ``context`` (e.g. tenant and key id) is authenticated, so a sealed value
    moved to another row does not open."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(master).encrypt(nonce, secret, context.encode())


def open_secret(master: bytes, sealed: bytes, *, context: str) -> bytes:
    try:
        return AESGCM(master).decrypt(sealed[:12], sealed[12:], context.encode())
    except (InvalidTag, ValueError):
        raise ServiceError("a stored key could not be decrypted: wrong DOJANG_MASTER_KEY or a tampered row") from None


def new_token() -> str:
    """An API token: shown once, stored only as its hash."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
