"""Perceptual fingerprints: a 64-bit DCT hash of an image, and word-shingle MinHash for text.

The watermark's content id finds a manifest in the store; the fingerprint makes sure the manifest
belongs to *this* picture. A mark lifted onto another image carries the right id, but its
fingerprint lies far from the stored one and the manifest is not recovered.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image
from scipy.fft import dctn

__all__ = ["IMAGE_MATCH_BITS", "hamming", "image_fingerprint", "text_fingerprint", "text_similarity"]

# Two unrelated images differ in ~32 of 64 bits (sd ~4); a re-encoded or resized copy in 0-6.
# At <= 12 bits a random image matches with probability sum_{k<=12} C(64,k)/2^64 ~ 2e-7.
IMAGE_MATCH_BITS = 12
TEXT_PERMUTATIONS = 64
SHINGLE = 4
_PRIME = (1 << 61) - 1


def image_fingerprint(image: Image.Image) -> str:
    """64-bit pHash (hex): luma at 32x32, 2-D DCT, the 8x8 lowest frequencies without DC, median split."""
    grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    coeffs = dctn(np.asarray(grey, dtype=np.float64), norm="ortho")[:8, :8].ravel()[1:]
    bits = np.concatenate([[0], (coeffs > np.median(coeffs)).astype(np.uint8)])
    return int("".join(map(str, bits)), 2).to_bytes(8, "big").hex()


def hamming(a: str, b: str) -> int:
    """Differing bits of two hex fingerprints of equal length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def text_fingerprint(text: str) -> str:
    """MinHash (64 x 61-bit, hex) of the text's 4-word shingles: survives light edits, unlike a hash."""
    words = _words(text)
    shingles = {" ".join(words[i : i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}
    values = np.array(
        [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big") % _PRIME for s in shingles],
        dtype=object,
    )
    rng = np.random.default_rng(20241)  # fixed: fingerprints must compare across runs and machines
    a = [int(x) for x in rng.integers(1, _PRIME, TEXT_PERMUTATIONS)]
    b = [int(x) for x in rng.integers(0, _PRIME, TEXT_PERMUTATIONS)]
    mins = [min((ai * v + bi) % _PRIME for v in values) for ai, bi in zip(a, b, strict=True)]
    return "".join(f"{m:016x}" for m in mins)


def text_similarity(a: str, b: str) -> float:
    """Estimated Jaccard similarity of two texts' shingle sets from their MinHash fingerprints."""
    xs = [a[i : i + 16] for i in range(0, len(a), 16)]
    ys = [b[i : i + 16] for i in range(0, len(b), 16)]
    if len(xs) != len(ys) or not xs:
        return 0.0
    return sum(x == y for x, y in zip(xs, ys, strict=True)) / len(xs)
