"""The edge-aware residual the reader starts from (``_sync.edge_residual``, spec section 5.1):
its definition, its noise estimate, and the cases it was built for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dojang.bench._image import synthetic_images
from dojang.image import _codec, _sync, attacks
from dojang.image._api import embed_pixels
from dojang.image._io import from_pil
from dojang.image._pattern import LAYOUTS, keyed_tile
from tests.helpers import BENCH_PAYLOAD, bench_key


def _reference(luma: np.ndarray) -> np.ndarray:
    """The definition with explicit loops, in float64: every pixel less the mean of its
    neighbours (every second pixel out to the radius, and the eight nearest; the image reflected
    at its border), each weighing exp(-r^2 / 2 s^2) (1 - d^2 / 8 sigma^2)_+^4 for distance r and
    value difference d, sigma 1.5 x the noise estimate within [6, 30]."""
    h, w = luma.shape
    at = min(h, w) / _sync.EDGE_SHORT
    radius = max(2, round(_sync.EDGE_RADIUS * at))
    spatial = round(_sync.EDGE_SPATIAL * at, 3)
    sigma = min(30.0, max(6.0, 1.5 * _sync.noise_sigma(luma)))
    x = np.pad(luma.astype(np.float64), radius, mode="reflect")
    out = np.zeros((h, w))
    for y in range(h):
        for col in range(w):
            c = x[y + radius, col + radius]
            num = den = 0.0
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if (dy, dx) == (0, 0) or not ((dy % 2 == 0 and dx % 2 == 0) or max(abs(dy), abs(dx)) == 1):
                        continue
                    v = x[y + radius + dy, col + radius + dx]
                    weight = (
                        math.exp(-(dy * dy + dx * dx) / (2 * spatial * spatial))
                        * max(0.0, 1 - (v - c) ** 2 / (8 * sigma**2)) ** 4
                    )
                    num += weight * v
                    den += weight
            out[y, col] = c - num / den if den > 0 else 0.0
    return out


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_edge_residual_follows_its_definition(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    luma = np.where(np.arange(70)[None, :] < 30, 40.0, 220.0) + 6 * rng.standard_normal((48, 70))  # an edge and noise
    luma = luma.astype(np.float32)
    if not compiled:
        monkeypatch.setattr(_sync, "_SPLAT", None)
    np.testing.assert_allclose(_sync.edge_residual(luma), _reference(luma), atol=2e-3)


def test_noise_estimate_reads_white_noise() -> None:
    rng = np.random.default_rng(4)
    ramp = np.linspace(0, 200, 400, dtype=np.float32)[None, :] + np.zeros((300, 1), np.float32)
    assert _sync.noise_sigma(ramp) < 0.01  # a ramp has no second differences
    for sigma in (2.0, 10.0, 25.0):
        estimate = _sync.noise_sigma(ramp + sigma * rng.standard_normal(ramp.shape).astype(np.float32))
        assert abs(estimate / sigma - 1) < 0.03, (sigma, estimate)


def test_an_edge_leaves_the_mark_and_little_else() -> None:
    """Beside a 180-level step a 2-level mark is what the edge-aware residual keeps; the band-pass
    the reader applies next would keep the step a hundred times over."""
    rng = np.random.default_rng(5)
    mark = 2.0 * np.sign(rng.standard_normal((64, 512))).astype(np.float32)
    step = np.where(np.arange(512)[None, :] < 256, 30.0, 210.0).astype(np.float32) + np.zeros((64, 1), np.float32)
    near = slice(250, 262)  # within 6 px of the edge
    residual = _sync.edge_residual(step + mark)
    clean = residual - _sync.edge_residual(step)  # the step alone leaves nothing
    assert float(np.abs(_sync.edge_residual(step)).max()) < 1e-3
    assert np.corrcoef(clean[:, near].ravel(), mark[:, near].ravel())[0, 1] > 0.8
    from scipy import ndimage

    band = step - ndimage.gaussian_filter(step, 1.2)
    assert float(np.sqrt(np.mean(band[:, near] ** 2))) > 10 * float(np.sqrt(np.mean(residual[:, near] ** 2)))


@pytest.mark.parametrize("shape", [(3001, 4003), (1080, 1920), (257, 300)])
def test_the_frame_keeps_its_size_whatever_the_working_size(shape: tuple[int, int]) -> None:
    """The residual is taken at 512 px on the short side and then put in the 256-unit frame: the
    frame's size is rounded from the full image's (a 1-px difference on the long side would drift
    the tile by a unit across it)."""
    luma = np.zeros(shape, dtype=np.float32)
    assert _codec.prepare(luma).canonical.shape == _sync.to_canonical(luma).shape


def _origin_log10_p(luma: np.ndarray, *, edge: bool, monkeypatch: pytest.MonkeyPatch) -> float:
    with monkeypatch.context() as m:
        if not edge:
            m.setattr(_sync, "edge_residual", lambda x: x)  # the reader before the edge-aware residual
        prep = _codec.prepare(luma)
    layout = LAYOUTS[2]  # text on white is a smooth image: the coarse layout
    cells = _sync.read_cells(prep.residual_for(layout.frame), _sync.Alignment(1.0, 0.0))
    return _codec.read_alignment(cells, keyed_tile(bench_key(1), layout), at_origin=True)[0] / math.log(10)


def test_text_on_white_brightened_reads_in_its_strokes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Brightness +20% clips the white (and the mark in it) away: what is left of the mark is in the
    strokes, beside their edges. The Gaussian band-pass alone read 1e-0.4 there (the benchmark's
    miss); the edge-aware residual reads it."""
    text = synthetic_images()["text"]
    # the residual's case, in layout 2 (the reader's residual is the same for every layout)
    marked = embed_pixels(from_pil(text), bench_key(1), BENCH_PAYLOAD, check_existing=False, version=2)
    bright = from_pil(attacks.brightness(1.2)(marked.pixels.to_pil())).luma()
    assert float(np.mean(bright < 250)) < 0.08  # nearly all of it is clipped white
    assert _origin_log10_p(bright, edge=False, monkeypatch=monkeypatch) > -3
    assert _origin_log10_p(bright, edge=True, monkeypatch=monkeypatch) < -8
    # The whole reader sees the keyed pattern; a layout 2 mark whose payload does not decode is
    # no longer a detection (it proves no payload), only a keyed pattern seen.
    detection = _codec.read_key(_codec.prepare(bright), bench_key(1))
    assert detection.log_p_pattern < math.log(1e-6)


def _residual_sum(seed: int) -> float:
    return float(_sync.edge_residual(np.random.default_rng(seed).normal(128, 20, (512, 512)).astype(np.float32)).sum())


def test_a_forked_process_makes_its_own_threads() -> None:
    """The rows are shared out over a thread pool; a process forked after the pool started (a
    process pool of scan workers, say) has none of its threads and must not wait on them."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    here = _residual_sum(0)  # the parent's pool is up
    if _sync._SPLAT is not None and _sync._edge_threads(512 * 512) > 1:
        assert _sync.edge_pool.cache_info().currsize == 1
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map_async(_residual_sum, [0]).get(timeout=60) == [here]
