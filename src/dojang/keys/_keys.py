from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dojang.errors import DojangKeyError

_FORMAT = "dojang-key"
_VERSION = 1
_SECRET_BYTES = 32  # 256-bit secrets
_HKDF_SALT = b"dojang/v1"


def _hkdf_sha256(secret: bytes, info: bytes, length: int) -> bytes:
    """HKDF (RFC 5869) with SHA-256: extract with a fixed salt, expand with ``info``."""
    prk = hmac.new(_HKDF_SALT, secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _key_id_for(secret: bytes) -> str:
    """A public fingerprint of the secret: 'dk-' and 16 hex digits of an HKDF output."""
    return "dk-" + _hkdf_sha256(secret, b"dojang/key-id", 8).hex()


@dataclass(frozen=True, slots=True)
class Key:
    """One watermark key: a public ``key_id`` and a 256-bit secret that never prints.

    Build it with :func:`generate_key` or :func:`load_key`. Sub-keys for each scheme (and
    tenant) come from :meth:`derive`, so one key never feeds two schemes the same bits.
    """

    key_id: str
    _secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self._secret) != _SECRET_BYTES:
            raise DojangKeyError(f"key {self.key_id}: the secret must be {_SECRET_BYTES} bytes")

    def __repr__(self) -> str:
        return f"Key(key_id={self.key_id!r}, secret=<redacted>)"

    __str__ = __repr__

    def derive(self, purpose: str, *, tenant: str | None = None, length: int = 32) -> bytes:
        """Derive a sub-key for ``purpose`` (for example ``"text/kgw"``) with HKDF-SHA256.

        ``tenant`` separates the sub-keys that different tenants of a service derive from one key.
        """
        info = b"dojang/" + purpose.encode()
        if tenant is not None:
            info += b"/tenant/" + tenant.encode()
        return _hkdf_sha256(self._secret, info, length)

    def same_secret(self, other: Key) -> bool:
        """Constant-time comparison of two keys' secrets."""
        return hmac.compare_digest(self._secret, other._secret)

    def to_json(self) -> str:
        """The key file's content. This, and only this, contains the secret."""
        return json.dumps(
            {
                "format": _FORMAT,
                "version": _VERSION,
                "key_id": self.key_id,
                "secret": self._secret.hex(),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            indent=2,
        )


def generate_key() -> Key:
    """A fresh key from the operating system's CSPRNG (:mod:`secrets`)."""
    secret = secrets.token_bytes(_SECRET_BYTES)
    return Key(key_id=_key_id_for(secret), _secret=secret)


def save_key(key: Key, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``key`` to ``path`` with file mode 0600; refuse to replace a file unless asked."""
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise DojangKeyError(f"{target}: file exists; refusing to overwrite a key") from None
    except OSError as err:
        raise DojangKeyError(f"{target}: cannot write the key file ({err.strerror})") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(key.to_json() + "\n")
    return target


def load_key(path: str | os.PathLike[str]) -> Key:
    """Read a key file written by :func:`save_key` (``dojang keygen``)."""
    source = Path(path)
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        raise DojangKeyError(f"{source}: key file not found") from None
    except IsADirectoryError:
        raise DojangKeyError(f"{source}: is a directory, not a key file") from None
    except OSError as err:
        raise DojangKeyError(f"{source}: cannot read the key file ({err.strerror})") from None
    return parse_key(raw, source=str(source))


def parse_key(raw: bytes | str, *, source: str = "key") -> Key:
    """A key from the content of a key file (as :meth:`Key.to_json` writes it); ``source`` names it in errors."""
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise DojangKeyError(f"{source}: not a dojang key file (not valid Unicode text)") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DojangKeyError(f"{source}: not a dojang key file (expected JSON from 'dojang keygen')") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise DojangKeyError(f"{source}: not a dojang key file (missing format '{_FORMAT}')")
    if data.get("version") != _VERSION:
        raise DojangKeyError(f"{source}: unsupported key file version {data.get('version')!r}")
    secret_hex = data.get("secret")
    try:
        secret = bytes.fromhex(secret_hex) if isinstance(secret_hex, str) else b""
    except ValueError:
        secret = b""
    if len(secret) != _SECRET_BYTES:
        raise DojangKeyError(f"{source}: malformed key file (the secret must be {_SECRET_BYTES * 2} hex digits)")
    key_id = _key_id_for(secret)
    if data.get("key_id") != key_id:
        raise DojangKeyError(f"{source}: malformed key file (key_id does not match the secret)")
    return Key(key_id=key_id, _secret=secret)


class KeyRing(Sequence[Key]):
    """An ordered set of keys a detector tries in turn; its p-values are corrected for their number.

    ``weights`` (key id -> positive number, normalised to sum 1) splits the false-positive budget
    unevenly: a reading under key ``k`` is multiplied by ``1 / w_k`` instead of the number of keys
    (a weighted Bonferroni correction, valid for any weights fixed before the content is seen).
    A service gives each provider an equal share and splits it among that provider's keys, so one
    provider's keys never change another's p-values. Without weights every key gets ``1 / n``."""

    __slots__ = ("_keys", "_weights")

    def __init__(self, keys: Iterable[Key], weights: Mapping[str, float] | None = None) -> None:
        unique: dict[str, Key] = {}
        for key in keys:
            if not isinstance(key, Key):
                raise DojangKeyError(f"a key ring holds Key objects, not {type(key).__name__}")
            unique.setdefault(key.key_id, key)
        if not unique:
            raise DojangKeyError("a key ring needs at least one key")
        self._keys = tuple(unique.values())
        self._weights: dict[str, float] | None = None
        if weights is not None:
            missing = [k for k in unique if k not in weights]
            if missing or any(not (weights[k] > 0 and math.isfinite(weights[k])) for k in unique):
                raise DojangKeyError("key ring weights must give every key of the ring a positive, finite weight")
            total = math.fsum(weights[k] for k in unique)
            self._weights = {k: weights[k] / total for k in unique}

    def log_correction(self, key_id: str) -> float:
        """log of the factor a p-value read under ``key_id`` is multiplied by (log n without weights)."""
        if self._weights is None:
            return math.log(len(self._keys))
        return -math.log(self._weights[key_id])

    @classmethod
    def coerce(cls, keys: Key | KeyRing | Iterable[Key]) -> KeyRing:
        """Accept one key, a ring, or any iterable of keys."""
        if isinstance(keys, KeyRing):
            return keys
        if isinstance(keys, Key):
            return cls([keys])
        return cls(keys)

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> KeyRing:
        return cls(load_key(p) for p in paths)

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        return self._keys[index]

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(k.key_id for k in self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={list(self.key_ids)!r})"
