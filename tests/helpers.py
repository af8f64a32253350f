from __future__ import annotations

import hashlib

from dojang.keys import Key
from dojang.keys._keys import _key_id_for


def fixed_key(i: int) -> Key:
    """A reproducible test key (never used outside tests)."""
    secret = hashlib.sha256(f"dojang-test-key-{i}".encode()).digest()
    return Key(key_id=_key_id_for(secret), _secret=secret)


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    """The CLI failed with exactly one 'dojang: error:' line on stderr and no traceback."""
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]
