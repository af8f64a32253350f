"""Binary BCH codes: systematic encoding and bounded-distance decoding (Berlekamp-Massey + Chien).

A :class:`BCH` of length ``n = 2**m - 1`` corrects up to ``t`` bit errors. Decoding either returns
the message and the number of corrected errors or says it failed; it never returns a codeword
farther than ``t`` from what it read. That property is what makes the payload's false-positive
probability exact: a random word decodes with at most ``e`` errors with probability
``2**k * V(n, e) / 2**n`` (the Hamming balls around codewords do not overlap), see
:meth:`BCH.log_false_decode`.

Polynomials over GF(2) are Python ints (bit ``i`` is the coefficient of ``x**i``); bit arrays are
uint8 numpy arrays, index ``i`` = bit ``i``.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

# Primitive polynomials for GF(2^m), low-weight choices from the standard tables.
_PRIMITIVE = {5: 0b100101, 6: 0b1000011, 7: 0b10001001, 8: 0b100011101}


def _gf2_mod(a: int, b: int) -> int:
    db = b.bit_length()
    while a.bit_length() >= db:
        a ^= b << (a.bit_length() - db)
    return a


def _gf2_mul(a: int, b: int) -> int:
    out = 0
    while b:
        if b & 1:
            out ^= a
        a <<= 1
        b >>= 1
    return out


class BCH:
    """The narrow-sense binary BCH code with ``n = 2**m - 1`` and designed distance ``2t + 1``."""

    def __init__(self, m: int, t: int) -> None:
        if m not in _PRIMITIVE:
            raise ValueError(f"no primitive polynomial stored for m={m}")
        self.m, self.t, self.n = m, t, (1 << m) - 1
        prim = _PRIMITIVE[m]
        exp = [0] * (2 * self.n)
        log = [0] * (self.n + 1)
        x = 1
        for i in range(self.n):
            exp[i] = x
            log[x] = i
            x <<= 1
            if x >> m:
                x ^= prim
        for i in range(self.n, 2 * self.n):
            exp[i] = exp[i - self.n]
        self._exp, self._log = exp, log
        self._exp_np = np.array(exp[: self.n], dtype=np.int64)
        # Generator: product of the distinct minimal polynomials of alpha^1 .. alpha^2t.
        gen, seen = 1, set()
        for i in range(1, 2 * t + 1):
            coset = self._coset(i)
            if min(coset) in seen:
                continue
            seen.add(min(coset))
            gen = _gf2_mul(gen, self._minimal_poly(coset))
        self.generator = gen
        self.k = self.n - (gen.bit_length() - 1)
        if self.k <= 0:
            raise ValueError(f"BCH(m={m}, t={t}) has no room for a message")

    def __repr__(self) -> str:
        return f"BCH(n={self.n}, k={self.k}, t={self.t})"

    # -- field helpers -------------------------------------------------------------------------
    def _coset(self, i: int) -> list[int]:
        out, j = [], i % self.n
        while j not in out:
            out.append(j)
            j = (2 * j) % self.n
        return out

    def _mul(self, a: int, b: int) -> int:
        if a == 0 or b == 0:
            return 0
        return self._exp[self._log[a] + self._log[b]]

    def _inv(self, a: int) -> int:
        return self._exp[(self.n - self._log[a]) % self.n]

    def _minimal_poly(self, coset: list[int]) -> int:
        # prod (x - alpha^j) over the coset; coefficients land in GF(2).
        poly = [1]  # coefficients in GF(2^m), lowest first
        for j in coset:
            root = self._exp[j]
            nxt = [0] * (len(poly) + 1)
            for d, c in enumerate(poly):
                nxt[d + 1] ^= c
                nxt[d] ^= self._mul(c, root)
            poly = nxt
        if any(c not in (0, 1) for c in poly):
            raise AssertionError("minimal polynomial left GF(2)")  # cannot happen for a true coset
        return sum(c << d for d, c in enumerate(poly))

    # -- coding --------------------------------------------------------------------------------
    def encode(self, message: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``message`` (k bits) -> codeword (n bits): parity in bits ``[0, n-k)``, message after."""
        msg = np.asarray(message, dtype=np.uint8)
        if msg.shape != (self.k,):
            raise ValueError(f"message must have {self.k} bits, got shape {msg.shape}")
        m = _bits_to_int(msg) << (self.n - self.k)
        word = m | _gf2_mod(m, self.generator)
        return _int_to_bits(word, self.n)

    def decode(self, received: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], int] | None:
        """Bounded-distance decoding: ``(message, errors_corrected)`` or None when more than ``t``
        bits are wrong (or the word is not within ``t`` of any codeword)."""
        word = np.asarray(received, dtype=np.uint8).copy()
        if word.shape != (self.n,):
            raise ValueError(f"received word must have {self.n} bits, got shape {word.shape}")
        positions = np.flatnonzero(word)
        exp = self._exp_np
        powers = (np.arange(1, 2 * self.t + 1)[:, None] * positions[None, :]) % self.n
        syndromes = [int(v) for v in np.bitwise_xor.reduce(exp[powers], axis=1)] if len(positions) else [0] * (2 * self.t)
        if not any(syndromes):
            return word[self.n - self.k :].copy(), 0
        locator = self._berlekamp_massey(syndromes)
        degree = len(locator) - 1
        if degree > self.t:
            return None
        # Chien search, all positions at once: locator(alpha^-i) == 0 marks an error at bit i.
        i = np.arange(self.n)
        acc = np.zeros(self.n, dtype=np.int64)
        for d, c in enumerate(locator):
            if c:
                acc ^= exp[(self._log[c] + d * (self.n - i)) % self.n]
        errors = np.flatnonzero(acc == 0)
        if len(errors) != degree:
            return None
        word[errors] ^= 1
        return word[self.n - self.k :].copy(), degree

    def _berlekamp_massey(self, syn: list[int]) -> list[int]:
        c, b = [1], [1]
        length, shift, last = 0, 1, 1
        for i, s in enumerate(syn):
            d = s
            for j in range(1, length + 1):
                if j < len(c) and c[j] and syn[i - j]:
                    d ^= self._mul(c[j], syn[i - j])
            if d == 0:
                shift += 1
                continue
            coef = self._mul(d, self._inv(last))
            new = c + [0] * max(0, len(b) + shift - len(c))
            for j, bj in enumerate(b):
                new[j + shift] ^= self._mul(coef, bj)
            if 2 * length <= i:
                b, length, last, shift = c, i + 1 - length, d, 1
            else:
                shift += 1
            c = new
        while len(c) > 1 and c[-1] == 0:
            c.pop()
        return c

    # -- statistics ----------------------------------------------------------------------------
    @cached_property
    def _log_ball(self) -> list[float]:
        out, total = [], 0
        for e in range(self.t + 1):
            total += math.comb(self.n, e)
            out.append(math.log(total))
        return out

    def log_false_decode(self, errors: int) -> float:
        """Natural log of the chance that ``n`` fair coin flips decode with at most ``errors``
        corrections: ``2**k * V(n, errors) / 2**n``, exact because the balls are disjoint."""
        if not 0 <= errors <= self.t:
            raise ValueError(f"errors must be in [0, {self.t}]")
        return (self.k - self.n) * math.log(2.0) + self._log_ball[errors]


def _bits_to_int(bits: NDArray[np.uint8]) -> int:
    return int.from_bytes(np.packbits(bits[::-1]).tobytes(), "big") >> ((-len(bits)) % 8)


def _int_to_bits(value: int, n: int) -> NDArray[np.uint8]:
    return np.array([(value >> i) & 1 for i in range(n)], dtype=np.uint8)
