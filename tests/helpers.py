from __future__ import annotations

import hashlib

from dojang.keys import Key
from dojang.keys._keys import _key_id_for


def fixed_key(i: int) -> Key:
    """A reproducible test key (never used outside tests)."""
    secret = hashlib.sha256(f"dojang-test-key-{i}".encode()).digest()
    return Key(key_id=_key_id_for(secret), _secret=secret)
