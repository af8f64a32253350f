"""Ordered-statistics decoding (Fossorier and Lin 1995) of a layout's payload codeword.

A bound layout's payload is read from soft values whose signs may be wrong in many places after
a harsh edit. Bounded-distance BCH decoding gives up past ``t`` errors; ordered-statistics
decoding uses the reliabilities: it takes the ``k`` most reliable independent positions (the
payload's dimension: the version field and zero pad are fixed, so the candidates form an affine
code of dimension 64), re-encodes them, and tries every flip of one or two of them (and of three of the least
reliable half), keeping the
codeword with the smallest reliability-weighted disagreement. It returns a codeword for any
input; what makes a reading evidence is the payload's MAC (read from other cells) and the
payload's distance bound (``Layout.log_false_payload``), neither of which depends on how the
codeword was found.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from dojang.image._pattern import PAYLOAD_BITS, VERSION_BITS, Layout

TRIPLE_REACH = 32  # flips of three basis positions are tried among this many least reliable ones
# A codeword this close to the hard decisions among the first 65 candidates ends the search (a
# clean mark; another codeword is at least 19 bits from it, so it is the unique nearest).
CLOSE = 3


@lru_cache(maxsize=8)
def _generator(layout: Layout) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """(the codeword of the version and zero pad with a zero payload, ``(n,)``; the rows the 64
    payload bits add, ``(64, n)``)."""
    code = layout.code
    fixed = code.encode(layout.pack(bytes(PAYLOAD_BITS // 8)))
    rows = np.empty((PAYLOAD_BITS, code.n), dtype=np.uint8)
    for j in range(PAYLOAD_BITS):
        info = np.zeros(code.k, dtype=np.uint8)
        info[VERSION_BITS + j] = 1
        rows[j] = code.encode(info)
    return fixed, rows


def _basis(rows: NDArray[np.uint8], order: NDArray[np.int64]) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Gaussian elimination of ``rows`` over GF(2), taking pivot columns in ``order``: returns the
    reduced rows (each with a 1 in its own pivot column and 0 in the others') and the pivots."""
    m = rows.astype(bool)[:, order]
    k = m.shape[0]
    pivots: list[int] = []
    r = 0
    for c in range(m.shape[1]):
        if r == k:
            break
        hits = np.flatnonzero(m[r:, c])
        if hits.size == 0:
            continue
        p = r + int(hits[0])
        if p != r:
            m[[r, p]] = m[[p, r]]
        others = np.flatnonzero(m[:, c])
        others = others[others != r]
        m[others] ^= m[r]
        pivots.append(c)
        r += 1
    out = np.empty_like(m)
    out[:, order] = m  # back to codeword positions
    return out, order[np.array(pivots, dtype=np.int64)]


def decode(layout: Layout, soft: NDArray[np.float64]) -> tuple[bytes, int]:
    """The payload whose codeword best explains ``soft`` (``(n,)``, positive reads as 0) among
    those the search reaches, and its distance from the hard decisions. The search re-encodes the
    most reliable basis, every flip of one or two of its positions, and every flip of three of
    its ``TRIPLE_REACH`` least reliable ones (about 7,000 candidates, 4 ms)."""
    fixed, rows = _generator(layout)
    hard = (soft < 0).astype(np.uint8)
    rel = np.abs(soft)
    target = (hard ^ fixed).astype(bool)  # what the payload's part of the codeword should be
    basis, pivots = _basis(rows, np.argsort(-rel, kind="stable"))
    base = np.bitwise_xor.reduce(basis[target[pivots]], axis=0) if target[pivots].any() else np.zeros(layout.code.n, bool)
    ones = base[None, :] ^ basis
    every = np.concatenate([base[None, :], ones])
    near = int((every ^ target[None, :]).sum(axis=1).min())
    if near > CLOSE:  # no codeword within CLOSE bits yet: the pairs and triples too
        i, j = _pairs(len(basis))
        a, b, c = _triples(len(basis))
        every = np.concatenate([every, ones[i] ^ basis[j], ones[a] ^ basis[b] ^ basis[c]])
    cost = (every ^ target[None, :]).astype(np.float64) @ rel
    codeword = every[int(np.argmin(cost))].astype(np.uint8) ^ fixed
    distance = int((codeword != hard).sum())
    info_start = layout.code.n - layout.code.k  # systematic: info bit j sits at position n - k + j
    bits = codeword[info_start + VERSION_BITS : info_start + VERSION_BITS + PAYLOAD_BITS]
    return np.packbits(bits).tobytes(), distance


@lru_cache(maxsize=4)
def _pairs(k: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    i, j = np.triu_indices(k, k=1)
    return i.astype(np.int64), j.astype(np.int64)


@lru_cache(maxsize=4)
def _triples(k: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Every three of the last ``TRIPLE_REACH`` basis rows (the least reliable pivots)."""
    idx = np.array(list(itertools.combinations(range(k - TRIPLE_REACH, k), 3)), dtype=np.int64)
    return idx[:, 0], idx[:, 1], idx[:, 2]
