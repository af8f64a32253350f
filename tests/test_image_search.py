"""The geometric search's pieces against their definitions, and the cases that made them:
half-cell offsets, the noisy refinement surface, and the Chase decoding gate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from dojang.image import _codec, _sync
from dojang.image._api import embed_pixels
from dojang.image._io import from_pil
from dojang.image._pattern import LAYOUTS, coded_bits, keyed_tile, sync_chips, unit_template
from tests.helpers import fixed_key

skdata = pytest.importorskip("skimage.data")
PAYLOAD = bytes.fromhex("d0e1a4f00dcafe01")


GRIDS = ((0, 0), (1, 1), (1, 0), (0, 1))  # half-cell shifts (u, v) of the offsets scored


def _direct_scores(
    spec: _sync.Spectrum, weight: np.ndarray, scales: np.ndarray, angles: np.ndarray, grids: tuple[tuple[int, int], ...] = GRIDS
) -> list[float]:
    """The definition, one candidate at a time: the real correlation on the whole-cell grid and
    the three half-cell shifted grids, z of the peak over all 4096 values."""
    full = np.fft.ifftshift(spec.values.reshape(spec.rows, spec.width))
    bb, aa = np.meshgrid(_sync._HARM, _sync._HARM, indexing="ij")
    ramp = np.exp(1j * np.pi * _sync._HARM / 32)
    out = []
    for s, a in zip(scales, angles, strict=True):
        kx = np.rint((math.cos(a) * aa - math.sin(a) * bb) * (spec.width / 64) / s).astype(int) % spec.width
        ky = np.rint((math.sin(a) * aa + math.cos(a) * bb) * (spec.rows / 64) / s).astype(int) % spec.rows
        prod = full[ky, kx].astype(np.complex128) * weight
        values = np.concatenate([np.fft.ifft2(prod * np.outer(ramp**i, ramp**j)).real.ravel() for i, j in grids])
        out.append(float((values.max() - values.mean()) / values.std()))
    return out


def test_sync_scores_follow_their_definition() -> None:
    """Two grids share one complex transform, the spectrum is read by flat index from its centred
    copy and the spread comes from one pass: the scores must still be the definition's."""
    rng = np.random.default_rng(3)
    spec = _sync.spectrum(rng.standard_normal((256, 300)).astype(np.float32))
    band = _sync.band_template(rng.standard_normal((64, 64)).astype(np.float32))
    weight = np.conj(band).astype(np.complex64)
    scales = np.array([0.83, 1.13, 1.57, 2.02])  # off the bin ties that either rounding may break its own way
    angles = np.radians([0.3, 3.1, -7.2, 14.6])
    got = _sync._sync_scores(spec, weight, scales, angles)
    assert got == pytest.approx(_direct_scores(spec, weight, scales, angles), rel=1e-4)


def test_quadratic_vertex() -> None:
    steps = _codec._NEIGHBOURS
    peak = np.array([5.0 - (i - 0.3) ** 2 - 2 * (j + 0.4) ** 2 + 0.5 * (i - 0.3) * (j + 0.4) for i, j in steps])
    assert _codec._quadratic_vertex(peak) == pytest.approx((0.3, -0.4))
    saddle = np.array([float(i * i - j * j) for i, j in steps])
    assert _codec._quadratic_vertex(saddle) is None
    far = np.array([-((i - 4.0) ** 2) - j * j for i, j in steps])
    assert _codec._quadratic_vertex(far) == pytest.approx((1.5, 0.0))  # held within the fitted steps


@pytest.fixture(scope="module")
def gravel_marked() -> Image.Image:
    gravel = Image.fromarray(skdata.gravel()).convert("RGB")
    out, _, _ = embed_pixels(from_pil(gravel), fixed_key(2), PAYLOAD, check_existing=False)
    return out.to_pil()


def test_search_finds_a_lattice_half_a_cell_off_the_grid(gravel_marked: Image.Image) -> None:
    """A 90% crop of a 512 px image 26 px in from the corner moves the tile by 13 units: 6.5
    cells, half a cell off the whole-cell offsets the coherent search used to score (the
    benchmark's centre crop lands there). On gravel that cost the true lattice so much of its
    peak that it fell behind chance peaks; the shifted grids give it back."""
    side, top = round(0.9 * gravel_marked.width), 26
    cropped = gravel_marked.crop((top, top, top + side, top + side))
    res = _codec.prepare(from_pil(cropped).luma()).residual
    template = unit_template(sync_chips(fixed_key(2)))  # a key whose lattice the whole-cell grid missed
    band = _sync.band_template(template)
    spec = _sync.spectrum(res)
    truth = gravel_marked.width / side
    # The case this test is about: at the true lattice, whole cells alone see a much weaker peak.
    weight = np.conj(band).astype(np.complex64)
    shifted = _direct_scores(spec, weight, np.array([truth]), np.array([0.0]))[0]
    whole = _direct_scores(spec, weight, np.array([truth]), np.array([0.0]), grids=((0, 0),))[0]
    assert shifted > whole + 1.0
    found = _sync.coherent_candidates(spec, band, count=_codec.SEARCHED)
    assert any(abs(scale / truth - 1) < 0.01 and abs(math.degrees(theta)) < 0.3 for scale, theta, _ in found)


def test_refinement_reads_a_texture_crop() -> None:
    """A 90% crop of grass: the coherent search, the refinement and the fold must land within
    0.3 % and 0.1 degrees of the true lattice, and the crop must read. The fold's own sync peak
    wandered 0.4 % off on textures (it rounds pixels to whole units); the finest steps now score
    cells read exactly and take a fitted vertex."""
    grass = Image.fromarray(skdata.grass()).convert("RGB")
    out, _, _ = embed_pixels(from_pil(grass), fixed_key(1), PAYLOAD, check_existing=False)
    side = round(0.9 * grass.width)
    top = (grass.width - side) // 2
    cropped = from_pil(out.to_pil().crop((top, top, top + side, top + side)))
    reading = _codec.read_key(_codec.prepare(cropped.luma()), fixed_key(1))
    assert abs(reading.alignment.scale * side / grass.width - 1) < 0.003
    assert abs(math.degrees(reading.alignment.theta)) < 0.1
    assert reading.log_p_value <= math.log(1e-6)


def _payload_cells(check_signs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cells whose payload word has 10 errors, the 6 weakest among them, so that only Chase's
    flips decode it, and whose check bits carry ``check_signs``."""
    layout = LAYOUTS[1]
    tile = keyed_tile(fixed_key(1), layout)
    n = layout.code.n
    soft = 1.0 - 2.0 * coded_bits(layout, PAYLOAD).astype(np.float64)
    soft[:n] *= rng.uniform(2.0, 3.0, n)
    wrong = rng.choice(n, 10, replace=False)
    soft[wrong[:6]] *= -0.05  # the least reliable bits, wrong
    soft[wrong[6:]] *= -1.0  # four confidently wrong
    soft[n:] = check_signs
    per_cell = soft[tile.assign] / np.bincount(tile.assign.ravel(), minlength=layout.data_bits)[tile.assign]
    return (per_cell * tile.chips).astype(np.float64)


def test_chase_flips_only_where_the_check_bits_see_a_mark() -> None:
    """Chase's 63 extra decodings are spent only when the check bits alone reach p <= 1e-2: a
    word that needs them could not make an unmarked-looking reading detected anyway, and they
    were most of the time the detector spent on unmarked images."""
    tile = keyed_tile(fixed_key(1), LAYOUTS[1])
    checks = LAYOUTS[1].check_bits
    rng = np.random.default_rng(5)
    marked = _codec.read_alignment(_payload_cells(np.full(checks, 2.0), rng), tile)
    assert marked[1] == PAYLOAD and marked[2] == 10
    noise = np.where(np.arange(checks) % 2 == 0, 1.0, -1.0) * rng.uniform(0.5, 1.5, checks)
    unmarked = _codec.read_alignment(_payload_cells(noise, rng), tile)
    assert unmarked[1] is None
    assert _codec.chase_decode(LAYOUTS[1], _codec.bit_soft(_payload_cells(noise, rng), tile)[: LAYOUTS[1].code.n]) is not None
