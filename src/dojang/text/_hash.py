"""The keyed hash behind every text scheme (spec: docs/spec/text.md, sections 2-3).

Plain integer arithmetic on int64 arrays that works unchanged on numpy arrays and torch tensors,
on CPU and GPU alike: every value stays in [0, 2**32) and every multiplier is below 2**31, so no
product ever leaves the int64 range and every device computes the same bits.
"""

from __future__ import annotations

from typing import Any

from dojang.keys import Key

MASK32 = 0xFFFFFFFF
N32 = 1 << 32
TAIL_TOKEN = MASK32  # stands for "every token outside the candidate set" (synthid, gumbel)

# Multipliers of a 3-round xorshift-multiply finaliser; each odd and below 2**31.
_M1, _M2, _M3 = 0x7FEB352D, 0x2C1B3C6D, 0x297A2D39

A = Any  # a numpy.ndarray or torch.Tensor of int64 (the same code serves both)


def mix32(x: A) -> A:
    """A bijective 32-bit mixer. ``x``: int64 values in [0, 2**32), any shape."""
    x = x ^ (x >> 16)
    x = (x * _M1) & MASK32
    x = x ^ (x >> 15)
    x = (x * _M2) & MASK32
    x = x ^ (x >> 12)
    x = (x * _M3) & MASK32
    return x ^ (x >> 15)


def key_words(key: Key, scheme: str) -> tuple[int, ...]:
    """Eight 32-bit words of the scheme's sub-key: HKDF-SHA256(secret, "dojang/text/v1/<scheme>"),
    read as little-endian uint32. Word 0 keys context hashes, word 1 the ordered fold, word 2
    candidate hashes; the rest are reserved."""
    raw = key.derive(f"text/v1/{scheme}")
    return tuple(int.from_bytes(raw[4 * i : 4 * i + 4], "little") for i in range(8))


def context_hash(token_ids: A, words: tuple[int, ...]) -> A:
    """c(t) = mix32(t XOR k0): the hash of a token seen as context."""
    return mix32(token_ids ^ words[0])


def candidate_hash(token_ids: A, words: tuple[int, ...]) -> A:
    """v(x) = mix32(x XOR k2): the hash of a token seen as the candidate being scored."""
    return mix32(token_ids ^ words[2])


def fold_seed(ctx_hashes: A, words: tuple[int, ...]) -> A:
    """lefthash seed of an ordered context. ``ctx_hashes``: (..., h), oldest token first.

    s = k1; for each context hash c (oldest first): s = mix32(s XOR c).
    """
    h = ctx_hashes.shape[-1]
    seed = ctx_hashes[..., 0] ^ words[1]
    seed = mix32(seed)
    for j in range(1, h):
        seed = mix32(seed ^ ctx_hashes[..., j])
    return seed


def score_value(seed: A, cand_hashes: A) -> A:
    """u(s, x) = mix32(s XOR v(x)): the 32-bit value every scheme reads (broadcasting)."""
    return mix32(seed ^ cand_hashes)
