"""The content field that binds a format-v3 mark to its image (spec section 7).

A bound layout multiplies every data chip, pixel by pixel, by a keyed function of the image's
own low-frequency content: ``f(p) = sum_k w_k B(p + s R(theta) o_k)``, the blurred luma ``B``
sampled at eight keyed offsets ``o_k`` (tile units) around the pixel, with keyed signs ``w_k``
(four +1, four -1, so flat brightness and contrast changes keep its sign). The weight
``clip(f / BIND_SOFT, -1, 1)`` multiplies the data pattern when embedding and the residual when
reading. So:

* marks of two images under one key share no data pattern: an average of many marked images
  keeps the sync layer (which alone never makes a verdict) and loses the data;
* a mark lifted from one image and added to another is read through the other image's field,
  which does not match the one it was written with: the payload and its MAC do not read;
* the reader needs no side information: the field is computed from the image it reads, at the
  alignment it reads, and it depends on content at scales an everyday edit keeps.

The field is computed in the layout's canonical frame, where an alignment maps canonical pixel
``p`` to tile units ``R(-theta) p / s + o``: an offset of ``o_k`` tile units is ``s R(theta) o_k``
canonical pixels, and the blur's width scales with ``s`` too, so the field follows the content
through crops, rescaling and turns.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from dojang.image._pattern import Layout
from dojang.keys import Key

BIND_POINTS = 8  # keyed sample points of the field (half weighted +1, half -1)
BIND_REACH = (3, 8)  # tile units: the points lie at distances in this range from the pixel
BIND_BLUR = 3.0  # tile units: Gaussian sigma of the blurred luma the points sample
BIND_SOFT = 2.0  # luma levels: |f| at which a pixel's weight reaches 1


@lru_cache(maxsize=32)
def bind_kernel(key: Key, layout: Layout) -> tuple[tuple[tuple[int, int], ...], tuple[float, ...]]:
    """The keyed sample points ``((du, dv), ...)`` (integer tile units, columns then rows) and
    their weights, from the key's ``image/v{version}/bind/points`` and ``.../signs`` sub-keys
    (spec section 7)."""
    lo, hi = BIND_REACH
    candidates = [(du, dv) for dv in range(-hi, hi + 1) for du in range(-hi, hi + 1) if lo * lo <= du * du + dv * dv <= hi * hi]
    # Rank every candidate by a keyed 32-bit number and take the first BIND_POINTS in that order.
    stream = key.derive(f"image/v{layout.version}/bind/points", length=4 * len(candidates))
    ranks = np.frombuffer(stream, dtype=">u4").astype(np.int64)
    order = np.lexsort((np.arange(len(candidates)), ranks))[:BIND_POINTS]
    points = tuple(candidates[int(i)] for i in order)
    sign_bits = np.frombuffer(key.derive(f"image/v{layout.version}/bind/signs", length=4 * BIND_POINTS), dtype=">u4")
    half = np.lexsort((np.arange(BIND_POINTS), sign_bits.astype(np.int64)))[: BIND_POINTS // 2]
    weights = np.ones(BIND_POINTS)
    weights[half] = -1.0
    return points, tuple(float(w) for w in weights)


def content_field(
    luma: NDArray[np.float32],
    kernel: tuple[tuple[tuple[int, int], ...], tuple[float, ...]],
    scale: float = 1.0,
    theta: float = 0.0,
) -> NDArray[np.float32]:
    """``f`` at every pixel of ``luma`` (a canonical frame), for an alignment of ``scale`` and
    ``theta`` (radians): each sample point is a constant shift of the blurred luma, bilinear
    between whole pixels; the border is extended with its nearest pixel."""
    points, weights = kernel
    blurred = ndimage.gaussian_filter(luma.astype(np.float32, copy=False), BIND_BLUR * scale, mode="nearest", truncate=3.0)
    c, s = math.cos(theta) * scale, math.sin(theta) * scale
    shifts = [(c * du - s * dv, s * du + c * dv) for du, dv in points]  # (dx, dy) canonical pixels
    h, w = luma.shape
    reach = math.ceil(max(max(abs(dx), abs(dy)) for dx, dy in shifts)) + 1
    padded = np.pad(blurred, reach, mode="edge")
    out = np.zeros((h, w), dtype=np.float32)
    for (dx, dy), wk in zip(shifts, weights, strict=True):
        # A constant shift: bilinear between the four whole-pixel shifts around it (exact at whole pixels).
        x0, y0 = math.floor(dx), math.floor(dy)
        fx, fy = dx - x0, dy - y0
        for oy, wy in ((0, 1.0 - fy), (1, fy)):
            for ox, wx in ((0, 1.0 - fx), (1, fx)):
                weight = wk * wy * wx
                if weight == 0.0:
                    continue
                top, left = reach + y0 + oy, reach + x0 + ox
                out += np.float32(weight) * padded[top : top + h, left : left + w]
    return out


def weights_of(field: NDArray[np.float32]) -> NDArray[np.float32]:
    """The per-pixel factor on the data pattern: ``clip(f / BIND_SOFT, -1, 1)``."""
    return np.clip(field / np.float32(BIND_SOFT), -1.0, 1.0).astype(np.float32)
