"""Finding the tile again: canonical frame, whitened residual, lattice search, fold and shift.

Geometry is recovered in three steps, all in a layout's canonical frame (short side 256 units
for layout 1, 128 for layout 2; each frame has its own residual and search grid):

1. The autocorrelation of the whitened residual of a marked image has peaks on the tile's
   lattice; a grid search over scale and angle (then a local refinement) gives a few candidate
   lattices. The identity is always a candidate.
2. For each candidate the residual is folded modulo the tile (every pixel added into the tile
   cell it would fall on), which adds up all repetitions of the mark; a circular cross-correlation
   with the keyed sync template then finds the tile's offset (any crop) and its quarter turn.
3. The best alignments are read cell by cell (the adjoint of the bilinear rendering).

None of this looks at the check bits, so the check bits stay fair coins under the null hypothesis
whatever the search picked (see ``_codec``).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from dojang.image._pattern import CANONICAL_SHORT, CELL_UNITS, TILE_CELLS, TILE_UNITS


@dataclass(frozen=True)
class Alignment:
    """Canonical pixel ``(x, y)`` -> tile units ``R(-theta) (x, y) / scale + offset``."""

    scale: float
    theta: float  # radians
    offset_u: float = 0.0
    offset_v: float = 0.0
    score: float = 0.0  # sync correlation peak in standard deviations

    def describe(self) -> str:
        angle = math.degrees(self.theta)
        return f"scale {self.scale:.4f}, rotation {angle:.2f} deg, offset ({self.offset_u:.1f}, {self.offset_v:.1f})"


def canonical_scale(height: int, width: int, short: int = CANONICAL_SHORT) -> float:
    """Canonical units per pixel of an image whose frame puts ``short`` units on its short side."""
    return short / min(height, width)


def to_canonical(
    luma: NDArray[np.float32], short: int = CANONICAL_SHORT, *, shape: tuple[int, int] | None = None
) -> NDArray[np.float32]:
    """Area-filtered resize of full-resolution luma to the canonical frame of ``short`` units;
    ``shape``: the size of the full image when ``luma`` is a resized copy of it (the frame's size
    is rounded from the full image's, so that a copy lands on exactly the same size)."""
    from PIL import Image

    h, w = luma.shape if shape is None else shape
    f = canonical_scale(h, w, short)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if size == (luma.shape[1], luma.shape[0]):
        return luma.astype(np.float32, copy=False)
    img = Image.fromarray(np.ascontiguousarray(luma, dtype=np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


# -- step 0: the edge-aware residual ------------------------------------------------------------------------------------
# Before the band-pass, every pixel loses the weighted mean of those neighbours whose value is
# close to its own (a bilateral filter's residual). Edges and texture are mostly content of
# another value than the pixel's, so they leave little; the mark, a few levels either way, stays.
# A Gaussian band-pass alone keeps every edge, and on text on white brightened 20 % (the white
# clipped, the mark left only in the strokes) the strokes' edges drowned it (origin 1e-0.4 there;
# 1e-12 with this residual first). Worked at twice the 256-unit frame: the strokes of small text
# are a pixel or two wide, and the 256-unit frame already mixes them with the white.
EDGE_SHORT = 2 * CANONICAL_SHORT  # px on the short side the residual is computed at (an image no bigger keeps its own)
EDGE_RADIUS = 8  # px at EDGE_SHORT: the neighbourhood's half-width
EDGE_SPATIAL = 6.0  # px at EDGE_SHORT: Gaussian spatial weight
EDGE_RANGE = (6.0, 30.0)  # luma levels: the range weight's sigma, 1.5 x the noise estimate clipped to this
EDGE_RANGE_PER_NOISE = 1.5
EDGE_CUTOFF = 8.0  # the range weight (1 - (d / sigma)^2 / 8)^4, about exp(-(d / sigma)^2 / 2), is 0 past d = 2.8 sigma
EDGE_THREADS = 4  # at most: the rows are shared out over this many threads (the loop runs without the GIL)
EDGE_THREAD_PIXELS = 65536  # pixels per thread at least: smaller images take one


def noise_sigma(luma: NDArray[np.float32]) -> float:
    """Immerkaer's fast estimate of white noise's sigma (1996): the mean absolute response to the
    difference of two Laplacians, scaled. Texture reads as noise too, which is what the range
    weight should allow for."""
    if min(luma.shape) < 3:
        return 0.0
    x = np.asarray(luma, dtype=np.float32)
    top, mid, bottom = x[:-2:2], x[1:-1:2], x[2::2]  # every second row is plenty for a mean
    c = (
        top[:, :-2] + top[:, 2:] + bottom[:, :-2] + bottom[:, 2:]
        - 2.0 * (top[:, 1:-1] + bottom[:, 1:-1] + mid[:, :-2] + mid[:, 2:])
        + 4.0 * mid[:, 1:-1]
    )  # fmt: skip
    return float(math.sqrt(math.pi / 2.0) * np.abs(c).mean(dtype=np.float64) / 6.0)


@lru_cache(maxsize=8)
def _edge_kernel(radius: int, spatial: float) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Neighbour offsets (row, column) and their spatial weights: every second pixel out to
    ``radius`` (an 8-px radius in full costs 288 neighbours; this sparse one 88, and reads the
    same) and the eight nearest."""
    offsets = [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if (dy, dx) != (0, 0) and ((dy % 2 == 0 and dx % 2 == 0) or max(abs(dy), abs(dx)) == 1)
    ]
    off = np.array(offsets, dtype=np.int32)
    weights = np.exp(-(off[:, 0] ** 2 + off[:, 1] ** 2) / (2.0 * spatial * spatial)).astype(np.float32)
    return off, weights


def _edge_threads(pixels: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(EDGE_THREADS, cpus, pixels // EDGE_THREAD_PIXELS))


POOL_PREFIX = "dojang-edge"


@lru_cache(maxsize=1)
def edge_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The image code's threads: the edge residual's rows, the coherent search's scale rows, the
    search candidates' refinements and the embedder's re-encodings. No job on it waits on another
    (code that would submit from one of these threads runs inline instead), so it cannot deadlock."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=EDGE_THREADS, thread_name_prefix=POOL_PREFIX)


if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads: it makes its own pool
    os.register_at_fork(after_in_child=edge_pool.cache_clear)


def edge_residual(luma: NDArray[np.float32]) -> NDArray[np.float32]:
    """The edge-aware residual of full-resolution luma, at ``EDGE_SHORT`` px on the short side
    (or the image's own size, if smaller; the neighbourhood shrinks with it, so that it spans the
    same share of the canonical frame)."""
    from PIL import Image

    h, w = luma.shape
    f = min(1.0, EDGE_SHORT / min(h, w))
    x = np.ascontiguousarray(luma, dtype=np.float32)
    if f < 1.0:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        x = np.asarray(Image.fromarray(x, mode="F").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    at = min(x.shape) / EDGE_SHORT  # the working size against EDGE_SHORT (1 for images at least that big)
    radius = max(2, round(EDGE_RADIUS * at))
    offsets, spatial = _edge_kernel(radius, round(EDGE_SPATIAL * at, 3))
    sigma = float(np.clip(EDGE_RANGE_PER_NOISE * noise_sigma(x), *EDGE_RANGE))
    inv = np.float32(1.0 / (EDGE_CUTOFF * sigma * sigma))
    if min(x.shape) <= radius:  # too small to have neighbours on every side: reflect needs more pixels
        return (x - x.mean()).astype(np.float32)
    padded = np.pad(x, radius, mode="reflect")
    if _SPLAT is None:
        return edge_residual_numpy(padded, radius, offsets, spatial, inv)
    out = np.empty(x.shape, np.float32)
    h = x.shape[0]
    parts = _edge_threads(x.size)
    if parts == 1:
        _SPLAT.bilateral(padded, radius, offsets, spatial, float(inv), out, 0, h)
        return out
    bounds = [h * i // parts for i in range(parts + 1)]
    pool = edge_pool()
    jobs = [
        pool.submit(_SPLAT.bilateral, padded, radius, offsets, spatial, float(inv), out, a, b)
        for a, b in itertools.pairwise(bounds)
    ]
    for job in jobs:
        job.result()
    return out


def edge_residual_numpy(
    padded: NDArray[np.float32], radius: int, offsets: NDArray[np.int32], spatial: NDArray[np.float32], inv: np.float32
) -> NDArray[np.float32]:
    """:func:`edge_residual`'s loop without the compiled code: the same float32 arithmetic in the
    same order, so both give the same residual."""
    h, w = padded.shape[0] - 2 * radius, padded.shape[1] - 2 * radius
    centre = padded[radius : radius + h, radius : radius + w]
    num = np.zeros((h, w), np.float32)
    den = np.zeros((h, w), np.float32)
    one, zero, half = np.float32(1.0), np.float32(0.0), np.float32(0.5)
    for (dy, dx), sp in zip(offsets.tolist(), spatial, strict=True):
        v = padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
        d = v - centre
        u = one - d * d * inv
        u = half * (u + np.abs(u))  # max(u, 0), as the compiled loop takes it
        u = u * u
        wt = sp * (u * u)
        num += wt * v
        den += wt
    return np.where(den > zero, centre - num / np.where(den > zero, den, one), zero).astype(np.float32)


def whiten(canonical: NDArray[np.float32]) -> NDArray[np.float32]:
    """Band-pass residual divided by its local envelope, clipped: image content becomes roughly
    unit-variance noise and the mark's band stays."""
    band = canonical - ndimage.gaussian_filter(canonical, 1.2)
    envelope = np.sqrt(ndimage.gaussian_filter(band * band, 2.5)) + 0.1
    return np.clip(band / envelope, -3.0, 3.0).astype(np.float32)


# -- step 1: coherent search over scale and angle -----------------------------------------------------------------------
# Folding the residual for a candidate (scale, angle) and taking the tile's DFT is the same as
# sampling the residual's spectrum at the candidate's harmonics R(theta) (a, b) / (s P). So one
# zero-padded FFT of the image serves every candidate: gather 32 x 32 harmonics, multiply by the
# sync template's conjugate spectrum and inverse-transform to get the correlation at every
# offset. This keeps the phase (a linear, coherent statistic), which is what finds the tile on
# busy textures where the power spectrum alone does not.
@dataclass(frozen=True)
class SearchGrid:
    """The scale/angle grid of the coherent search and the steps that refine its best points.
    Its spacing follows the window: a lattice half a step off loses much of its peak when the
    drift across the window reaches a fraction of the finest harmonic's period."""

    scales: NDArray[np.float64]
    angles: NDArray[np.float64]  # radians
    refine: tuple[tuple[float, float], ...]  # (relative scale, radians): half, then quarter steps


def _grid_of(scale_step: float, degrees: float) -> SearchGrid:
    return SearchGrid(
        np.exp(np.arange(math.log(0.8), math.log(2.06), scale_step)),
        np.radians(np.arange(-15.0, 15.01, degrees)),
        ((scale_step / 2, math.radians(degrees / 2)), (scale_step / 4, math.radians(degrees / 4))),
    )


FINE_GRID = _grid_of(0.007, 0.4)  # the 256-unit frame: a 0.7 % by 0.4 degree grid
COARSE_GRID = _grid_of(0.014, 0.8)  # the 128-unit frame spans half as many tiles: twice the steps, a quarter of the points


def grid_for(frame: int) -> SearchGrid:
    """The search grid of a frame of ``frame`` units on the short side."""
    return FINE_GRID if frame >= CANONICAL_SHORT else COARSE_GRID


# A window of the image (the reader's look for a picture placed in a larger canvas) is read at
# the scales such a placement gives, 0.78..1.36 (a window of w of the canvas holds a picture of
# 0.8 w..1.33 w, so windows of 0.6 and 0.36 cover pictures of 29 % to 80 % of the canvas), and
# barely turned: a fifth of the full grid's points.
WINDOW_SCALES = (0.78, 1.36)
WINDOW_DEGREES = 2.0


def _window_grid_of(scale_step: float, degrees: float) -> SearchGrid:
    turn = math.ceil(WINDOW_DEGREES / degrees) * degrees
    return SearchGrid(
        np.exp(np.arange(math.log(WINDOW_SCALES[0]), math.log(WINDOW_SCALES[1]), scale_step)),
        np.radians(np.arange(-turn, turn + 0.01, degrees)),
        ((scale_step / 2, math.radians(degrees / 2)), (scale_step / 4, math.radians(degrees / 4))),
    )


FINE_WINDOW_GRID = _window_grid_of(0.007, 0.4)
COARSE_WINDOW_GRID = _window_grid_of(0.014, 0.8)


def window_grid_for(frame: int) -> SearchGrid:
    """The search grid of a window of the image in a frame of ``frame`` units on the short side."""
    return FINE_WINDOW_GRID if frame >= CANONICAL_SHORT else COARSE_WINDOW_GRID


_BAND = 32  # bins per axis of the correlation's transform: offsets of whole cells (2 units)
_REACH = 24  # harmonics scored: all within this radius (tile harmonics)
_PAD = 4  # zero padding of the spectrum: nearest-bin lookups stay within 1/8 of a bin
_SEARCH_SIDE = 512  # the coherent search looks at most at a central 512 x 512 window


@dataclass
class Spectrum:
    """The zero-padded full spectrum of (a central window of) the residual, ``(rows, width)``."""

    values: NDArray[np.complex64]  # fft2 of the window padded to (rows, width), shifted: bin 0 at the centre, raveled
    rows: int
    width: int


def spectrum(res: NDArray[np.float32]) -> Spectrum:
    h, w = res.shape
    top, left = max(0, (h - _SEARCH_SIDE) // 2), max(0, (w - _SEARCH_SIDE) // 2)
    win = res[top : top + _SEARCH_SIDE, left : left + _SEARCH_SIDE]
    rows, width = _PAD * win.shape[0], _PAD * win.shape[1]
    return Spectrum(np.fft.fftshift(np.fft.fft2(win, s=(rows, width))).astype(np.complex64).ravel(), rows, width)


# The correlation sampled at whole cells is the transform of the spectrum summed over harmonics 32
# apart (their aliases), so harmonics beyond -16..15 cost gathers but no larger transform. The
# rendered pattern is bilinear: its harmonics fall off as sinc^2(h / 32) per axis, and -16..15
# alone lose about 15 % of the sync peak's z on textures, enough to drop a crop's true lattice
# behind chance peaks. Within radius 24 nearly all of it is kept, and every harmonic stays under
# the canonical image's Nyquist frequency down to scale 0.8. Per axis the gathered block holds
# the 32 bins' own harmonics -16..15 (DFT order), then the aliases of bins 8..23: harmonics
# -24..-17 (bins 8..15) and 16..23 (bins 16..23).
_HARM = np.fft.ifftshift(np.arange(-_BAND // 2, _BAND // 2))  # DFT order
_ALIASED = slice(8, 24)  # the bins that gain an alias
_AXIS = np.concatenate([_HARM, np.arange(8, 16) - _BAND, np.arange(16, 24)]).astype(np.float64)  # (48,)
_IN_REACH = np.hypot(_AXIS[:, None], _AXIS[None, :]) <= _REACH  # (48, 48): [b (rows), a (cols)]
_NEG = (-np.arange(_BAND)) % _BAND  # DFT index of the negated harmonic
_BINS = (_AXIS.astype(np.int64) % _BAND).astype(np.int32)  # the bin of each _AXIS harmonic (32 apart share one)


def band_template(unit_template: NDArray[np.float32]) -> NDArray[np.complex128]:
    """The 64 x 64 template's DFT at the scored harmonics, ``(48, 48)`` laid out as ``_AXIS`` on
    both axes, zero beyond ``_REACH``."""
    full = np.fft.fft2(unit_template)
    idx = _AXIS.astype(np.int64) % TILE_UNITS
    return np.asarray(full[np.ix_(idx, idx)] * _IN_REACH)


# The band's inverse DFT gives the correlation at offsets of whole cells (2 units). A lattice
# whose offset falls half a cell between them loses most of its high harmonics' peak (a 90 %
# crop of a 512 px image lands there), so the correlation is taken on four grids: shifted by
# nothing, half a cell in both axes, and half a cell in one axis. A half-cell shift turns
# harmonic h by exp(i pi h / 32): an alias (h +- 32) turns opposite to its bin's own harmonic,
# so a shifted grid takes their difference where the unshifted one takes their sum.
_HALF = np.exp(1j * np.pi * _HARM / _BAND)
_GRIDS = ((0, 0), (1, 1), (1, 0), (0, 1))  # half-cell shifts (rows, columns)
_SHIFTS = [(_HALF[:, None] ** i * _HALF[None, :] ** j).astype(np.complex64) for i, j in _GRIDS]
_SHIFT_TABLE = np.stack(_SHIFTS)  # (4, 32, 32), for the compiled loop


_REFINED = 48  # best grid points that are refined before the candidates are picked
_LINE = 4  # best points of the unturned line (angle 0) refined beside them


def _rotated_harmonics(angles: NDArray[np.float64]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The scored harmonics turned by each angle: ``(x, y)`` of shape ``(len(angles), 48, 48)``;
    harmonics beyond the reach sit at 0 (their weight is 0, and bin 0 is always in range)."""
    bb, aa = np.meshgrid(_AXIS, _AXIS, indexing="ij")  # [b (rows), a (cols)]
    c, s = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    return ((c * aa - s * bb) * _IN_REACH).astype(np.float32), ((s * aa + c * bb) * _IN_REACH).astype(np.float32)


def _fold_aliases(block: NDArray[np.complex64], axis: int) -> tuple[NDArray[np.complex64], NDArray[np.complex64]]:
    """(sum, difference) of each bin's own harmonic and its alias along ``axis`` (1 or 2)."""
    own = block[:, :_BAND] if axis == 1 else block[:, :, :_BAND]
    alias = block[:, _BAND:] if axis == 1 else block[:, :, _BAND:]
    plus, minus = own.copy(), own.copy()
    if axis == 1:
        plus[:, _ALIASED] += alias
        minus[:, _ALIASED] -= alias
    else:
        plus[:, :, _ALIASED] += alias
        minus[:, :, _ALIASED] -= alias
    return plus, minus


def _sync_scores(
    spec: Spectrum,
    weight: NDArray[np.complex64],
    scales: NDArray[np.float64],
    angles: NDArray[np.float64],
    rotated: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None,
) -> NDArray[np.float64]:
    """Sync correlation peak (in standard deviations) of each (scale, angle) pair, ``(len(scales),)``,
    over the offsets of all four grids. ``weight`` is the conjugate band template, ``(48, 48)``. The
    numpy code (used where the compiled loop was not built) takes ``rotated`` =
    ``_rotated_harmonics(angles)`` when given."""
    import scipy.fft

    inv = (1.0 / scales[:, None, None]).astype(np.float32)
    if _SPLAT is not None:
        out = np.empty((len(scales), 2, _BAND, _BAND), dtype=np.complex64)
        _SPLAT.coherent(
            out, spec.values, spec.width, np.ascontiguousarray(weight, dtype=np.complex64), _AXIS,
            np.cos(angles), np.sin(angles), inv.ravel(), _BINS, _SHIFT_TABLE,
        )  # fmt: skip
        return _peak_z(scipy.fft.ifft2(out, axes=(2, 3), overwrite_x=True), len(scales))
    x, y = _rotated_harmonics(angles) if rotated is None else rotated
    return _scores_numpy(spec, weight, x, y, inv, inv)


def _scores_numpy(
    spec: Spectrum,
    weight: NDArray[np.complex64],
    x: NDArray[np.float32],
    y: NDArray[np.float32],
    inv_x: NDArray[np.float32],
    inv_y: NDArray[np.float32],
) -> NDArray[np.float64]:
    """:func:`_sync_scores` for candidates given by their (turned) harmonics ``x`` and ``y``,
    ``(n or 1, 48, 48)``, and the inverse scale of each axis, ``(n, 1, 1)``."""
    import scipy.fft

    n = inv_x.shape[0]
    # Nearest bins of the centred spectrum (|bin| < half the padded size, so the sums stay positive
    # and truncation rounds); one flat take is several times faster than 2-d fancy indexing.
    kx = (x * (inv_x * np.float32(spec.width / TILE_UNITS)) + np.float32(spec.width // 2 + 0.5)).astype(np.int32)
    ky = (y * (inv_y * np.float32(spec.rows / TILE_UNITS)) + np.float32(spec.rows // 2 + 0.5)).astype(np.int32)
    prod = np.take(spec.values, ky * np.int32(spec.width) + kx) * weight  # (n, 48, 48): F conj(T), the correlation's spectrum
    rows_plus, rows_minus = _fold_aliases(prod, 1)
    pp, pm = _fold_aliases(rows_plus, 2)
    mp, mm = _fold_aliases(rows_minus, 2)
    grids = [g * shift for g, shift in zip((pp, mm, mp, pm), _SHIFTS, strict=True)]  # (n, 32, 32) each, as _GRIDS
    # Only the real part of each correlation is wanted: Re ifft(Q) = ifft((Q_k + conj Q_-k) / 2), and
    # ifft(H0 + i H1) = ifft(H0) + i ifft(H1): so a pair of grids takes one transform.
    paired = np.empty((n, 2, _BAND, _BAND), dtype=np.complex64)
    for p, (q0, q1) in enumerate(((grids[0], grids[1]), (grids[2], grids[3]))):
        direct = q0 + 1j * q1
        paired[:, p] = direct + np.conj(q0 - 1j * q1)[:, _NEG][:, :, _NEG]
    return _peak_z(scipy.fft.ifft2(paired, axes=(2, 3), overwrite_x=True), n)


# -- aspect-ratio changes ---------------------------------------------------------------------------
# Resizing one side of an image (a thumbnailer's careless resize, a stretch to fit) changes its
# aspect ratio. The canonical frame follows the short side, so the short axis keeps its scale and
# the long axis is off by the ratio r, 0.8..1.25. The search scores the unturned lattice with the
# long axis at scale r: the spectrum's harmonics along it divided by r.
STRETCH_STEP = 0.005  # log steps of r on the grid, then a half and a quarter step around the best
STRETCH_RANGE = (0.8, 1.25)
STRETCH_MIN = 0.02  # |log r| below this is left to the reading at scale 1


def stretch_candidates(
    spec: Spectrum, template_band: NDArray[np.complex128], *, long_axis: int, count: int = 1
) -> list[tuple[float, float]]:
    """The ``count`` best ratios ``r`` of the long axis (1 = columns, 0 = rows) and their sync
    peaks (z), refined to a quarter step."""
    weight = np.conj(template_band).astype(np.complex64)
    bb, aa = np.meshgrid(_AXIS, _AXIS, indexing="ij")
    ax, ay = (aa * _IN_REACH).astype(np.float32), (bb * _IN_REACH).astype(np.float32)

    def score(ratios: NDArray[np.float64]) -> NDArray[np.float64]:
        inv = (1.0 / ratios)[:, None, None].astype(np.float32)
        one = np.ones_like(inv)
        return _scores_numpy(spec, weight, ax[None], ay[None], inv if long_axis == 1 else one, inv if long_axis == 0 else one)

    lo, hi = (math.log(v) for v in STRETCH_RANGE)
    logs = np.arange(lo, hi + 1e-9, STRETCH_STEP)
    logs = logs[np.abs(logs) >= STRETCH_MIN]
    z = score(np.exp(logs))
    best = logs[np.argsort(z)[::-1][: 3 * count]]
    found: list[tuple[float, float]] = []
    for centre in best:
        for step in (STRETCH_STEP / 2, STRETCH_STEP / 4):
            trial = centre + step * np.array([-1.0, 0.0, 1.0])
            tz = score(np.exp(trial))
            centre = trial[int(np.argmax(tz))]
        r, peak = float(np.exp(centre)), float(tz.max())
        if all(abs(math.log(r / r0)) > 2 * STRETCH_STEP for r0, _ in found):
            found.append((r, peak))
    found.sort(key=lambda rz: -rz[1])
    return found[:count]


def _peak_z(transformed: NDArray[np.complex64], n: int) -> NDArray[np.float64]:
    """z of the peak over every grid's offsets, per candidate: ``transformed`` holds pairs of
    grids as the real and imaginary parts."""
    corr = transformed.view(np.float32).reshape(n, -1)
    count = corr.shape[1]
    mean = corr.sum(axis=1, dtype=np.float64) / count
    var = np.einsum("ij,ij->i", corr, corr, dtype=np.float64) / count - mean * mean
    return np.asarray((corr.max(axis=1) - mean) / (np.sqrt(np.maximum(var, 0.0)) + 1e-12), dtype=np.float64)


def coherent_candidates(
    spec: Spectrum, template_band: NDArray[np.complex128], count: int = 4, grid: SearchGrid = FINE_GRID, refined: int = _REFINED
) -> list[tuple[float, float, float]]:
    """The ``count`` best (scale, angle, z) by the sync correlation peak, NMS-separated.

    The grid (0.7 % by 0.4 degrees in the 256-unit frame) is coarse for the highest harmonics:
    half a step off costs a true lattice much of its peak, so a crop's odd scale can rank below
    chance peaks. The best
    ``refined`` grid points (``_REFINED`` by default) are therefore refined (the best of their
    3 x 3 neighbours at half, then quarter steps) before the candidates are ranked and separated."""
    weight = np.conj(template_band).astype(np.complex64)  # F conj(T): the correlation mirrored, same peak height
    scores = np.empty((len(grid.scales), len(grid.angles)))
    rotated = _rotated_harmonics(grid.angles) if _SPLAT is None else None  # numpy's, reused over the scales

    def score_rows(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            scores[i] = _sync_scores(spec, weight, np.full(len(grid.angles), grid.scales[i]), grid.angles, rotated)

    # The compiled loop, the inverse FFTs and the peaks release the GIL: the scales are shared out
    # over the image threads (inline where this already runs on one of them).
    threads = _edge_threads(len(grid.scales) * EDGE_THREAD_PIXELS // 8)
    if threads > 1 and not threading.current_thread().name.startswith(POOL_PREFIX):
        bounds = np.linspace(0, len(grid.scales), threads + 1).astype(int)
        jobs = [edge_pool().submit(score_rows, int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]
        for job in jobs:
            job.result()
    else:
        score_rows(0, len(grid.scales))
    grid_best = np.argsort(scores, axis=None)[::-1][:refined]
    rows, cols = np.unravel_index(grid_best, scores.shape)
    points = np.stack([grid.scales[rows], grid.angles[cols]], axis=1)
    z = scores.flat[grid_best]
    # Crops and resizes, the commonest geometric edits, do not turn the image, and the grid's angles
    # straddle 0 (+-0.2 degrees in the fine grid). The unturned line of scales is scored as well
    # and its best points join the refinement: a 75 % crop of the synthetic texture (key 4) had
    # chance peaks elsewhere on the grid above its own, which is the clear peak of this line.
    line = _sync_scores(spec, weight, grid.scales, np.zeros(len(grid.scales)))
    line_best = np.argsort(line)[::-1][:_LINE]
    points = np.concatenate([points, np.stack([grid.scales[line_best], np.zeros(len(line_best))], axis=1)])
    z = np.concatenate([z, line[line_best]])
    steps = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=np.float64)  # (9, 2)
    for ds, da in grid.refine:
        trial_s = (points[:, None, 0] * (1.0 + steps[None, :, 0] * ds)).ravel()
        trial_a = (points[:, None, 1] + steps[None, :, 1] * da).ravel()
        trial_z = _sync_scores(spec, weight, trial_s, trial_a).reshape(len(points), len(steps))
        pick = trial_z.argmax(axis=1)
        rows = np.arange(len(points))
        points = np.stack([trial_s.reshape(len(points), -1)[rows, pick], trial_a.reshape(len(points), -1)[rows, pick]], axis=1)
        z = trial_z[rows, pick]
    found: list[tuple[float, float, float]] = []
    for k in np.argsort(z)[::-1]:
        sc, an = float(points[k, 0]), float(points[k, 1])
        if any(abs(math.log(sc / s0)) < 0.03 and abs(an - a0) < math.radians(2.0) for s0, a0, _ in found):
            continue
        found.append((sc, an, float(z[k])))
        if len(found) >= count:
            break
    return found


# -- step 2: fold and find the offset -------------------------------------------------------------
@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return xs, ys


def tile_coords(shape: tuple[int, int], scale: float, theta: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    xs, ys = _grid(*shape)
    c, s = math.cos(theta), math.sin(theta)
    return (c * xs + s * ys) / scale, (-s * xs + c * ys) / scale


def _compiled() -> Any:
    """The compiled per-pixel loops (``dojang.image._splat``), or None where they were not built."""
    import importlib

    try:
        return importlib.import_module("dojang.image._splat")
    except ImportError:
        return None


_SPLAT = _compiled()


def fold(res: NDArray[np.float32], scale: float, theta: float) -> NDArray[np.float64]:
    """Mean residual per tile unit at this scale and angle: ``(TILE_UNITS, TILE_UNITS)`` indexed
    ``[v, u]``, each pixel in its nearest unit."""
    if _SPLAT is not None:
        out = _SPLAT.fold(np.ascontiguousarray(res, dtype=np.float32), scale, theta)
        return np.frombuffer(out, dtype=np.float64).reshape(TILE_UNITS, TILE_UNITS)
    u, v = tile_coords(res.shape, scale, theta)
    return fold_units(res, u, v)


def fold_units(res: NDArray[np.float32], u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean residual per tile unit: ``(TILE_UNITS, TILE_UNITS)`` indexed ``[v, u]`` (numpy)."""
    bins = (np.floor(v + 0.5).astype(np.int64) % TILE_UNITS) * TILE_UNITS + (np.floor(u + 0.5).astype(np.int64) % TILE_UNITS)
    size = TILE_UNITS * TILE_UNITS
    sums = np.bincount(bins.ravel(), weights=res.ravel(), minlength=size)
    counts = np.bincount(bins.ravel(), minlength=size)
    return (sums / np.maximum(counts, 1)).reshape(TILE_UNITS, TILE_UNITS)


def find_offset(folded: NDArray[np.float64], template_fft: NDArray[np.complex128]) -> tuple[float, float, float]:
    """(offset_u, offset_v, peak z-score) of the circular cross-correlation with the template."""
    corr = np.fft.irfft2(np.conj(np.fft.rfft2(folded)) * template_fft, s=folded.shape)
    peak = int(np.argmax(corr))
    pv, pu = divmod(peak, TILE_UNITS)
    spread = float(corr.std()) or 1.0
    z = float((corr.flat[peak] - corr.mean()) / spread)

    def vertex(a: float, b: float, c: float) -> float:
        denom = a - 2 * b + c
        return 0.0 if denom >= 0 else 0.5 * (a - c) / denom

    du = vertex(corr[pv, (pu - 1) % TILE_UNITS], corr[pv, pu], corr[pv, (pu + 1) % TILE_UNITS])
    dv = vertex(corr[(pv - 1) % TILE_UNITS, pu], corr[pv, pu], corr[(pv + 1) % TILE_UNITS, pu])
    return pu + du, pv + dv, z


def align(res: NDArray[np.float32], scale: float, theta: float, template_fft: NDArray[np.complex128]) -> Alignment:
    ou, ov, z = find_offset(fold(res, scale, theta), template_fft)
    return Alignment(scale, theta, ou, ov, z)


def align_quarters(res: NDArray[np.float32], scale: float, theta: float, template_fft: NDArray[np.complex128]) -> list[Alignment]:
    """The four quarter turns of one lattice from a single fold: turning the tile coordinates by
    90 degrees turns the folded tile by 90 degrees (and moves it by one unit)."""
    folded = fold(res, scale, theta)
    out = []
    for quarter in range(4):
        ou, ov, z = find_offset(folded, template_fft)
        out.append(Alignment(scale, theta + quarter * math.pi / 2, ou, ov, z))
        folded = np.roll(np.rot90(folded, 1), 1, axis=0)
    return out


# -- step 3: read the cells -----------------------------------------------------------------------
def read_cells(res: NDArray[np.float32], al: Alignment) -> NDArray[np.float64]:
    """Matched-filter value of every cell, ``(TILE_CELLS, TILE_CELLS)``: the adjoint of bilinear
    rendering, summed over every repetition of the tile."""
    if _SPLAT is not None:
        out = _SPLAT.cells(np.ascontiguousarray(res, dtype=np.float32), al.scale, al.theta, al.offset_u, al.offset_v)
        return np.frombuffer(out, dtype=np.float64).reshape(TILE_CELLS, TILE_CELLS)
    return read_cells_numpy(res, al)


def read_cells_numpy(res: NDArray[np.float32], al: Alignment) -> NDArray[np.float64]:
    """:func:`read_cells` without the compiled loop."""
    u, v = tile_coords(res.shape, al.scale, al.theta)
    cu = (u + al.offset_u) / CELL_UNITS
    cv = (v + al.offset_v) / CELL_UNITS
    iu, iv = np.floor(cu), np.floor(cv)
    fu, fv = (cu - iu).ravel(), (cv - iv).ravel()
    iu = iu.astype(np.int64).ravel() % TILE_CELLS
    iv = iv.astype(np.int64).ravel() % TILE_CELLS
    r = res.ravel().astype(np.float64)
    size = TILE_CELLS * TILE_CELLS
    out = np.zeros(size)
    for dv_, wv in ((0, 1.0 - fv), (1, fv)):
        for du_, wu in ((0, 1.0 - fu), (1, fu)):
            idx = ((iv + dv_) % TILE_CELLS) * TILE_CELLS + (iu + du_) % TILE_CELLS
            out += np.bincount(idx, weights=r * wv * wu, minlength=size)
    return out.reshape(TILE_CELLS, TILE_CELLS)
