from __future__ import annotations

import hashlib

from dojang.keys import Key
from dojang.keys._keys import _key_id_for


def fixed_key(i: int) -> Key:
    """A reproducible test key (never used outside tests)."""
    secret = hashlib.sha256(f"dojang-test-key-{i}".encode()).digest()
    return Key(key_id=_key_id_for(secret), _secret=secret)


BENCH_PAYLOAD = bytes.fromhex("a5c3f00f1e2d3c4b")  # benchmarks/image_bench.py's payload


def bench_key(i: int) -> Key:
    """benchmarks/image_bench.py's key ``i`` (``image_keys.py`` runs keys 1..4), for tests that
    pin a case the benchmark measured."""
    secret = bytes([0xB7, i]) * 16
    return Key(key_id=_key_id_for(secret), _secret=secret)


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    """The CLI failed with exactly one 'dojang: error:' line on stderr and no traceback."""
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def tiny_answer(key: Key, model, tokenizer, *, seed: int, tokens: int, prompt: str = "Begin:"):  # type: ignore[no-untyped-def]
    """One answer of the tiny test model, marked with the default preset at temperature 1."""
    from dojang.text import generate_batch

    return generate_batch(
        [prompt], key=key, scheme="default", model=model, tokenizer=tokenizer, max_new_tokens=tokens, temperature=1.0, seed=seed,
        chat=False,
    )[0]  # fmt: skip
