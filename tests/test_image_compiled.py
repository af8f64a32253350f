"""The image reader's compiled loops (``dojang.image._splat``) give what the numpy code gives."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from dojang.image import _sync

SPLAT = _sync._compiled()
if SPLAT is None:
    if shutil.which("cc") or shutil.which("gcc"):
        pytest.fail("dojang.image._splat was not built although a C compiler is here: reinstall (pip install -e .)")
    pytest.skip("no C compiler here: the compiled image loops were not built", allow_module_level=True)


@pytest.mark.parametrize(
    ("shape", "scale", "theta", "offset"),
    [((256, 256), 1.0, 0.0, (0.0, 0.0)), ((256, 341), 1.1106, 0.013, (13.1, 12.9)), ((300, 256), 0.83, -0.26, (63.7, 0.4))],
)
def test_compiled_loops_match_numpy(shape: tuple[int, int], scale: float, theta: float, offset: tuple[float, float]) -> None:
    res = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    al = _sync.Alignment(scale, theta, *offset)
    assert _sync._SPLAT is SPLAT  # the reader uses them
    np.testing.assert_allclose(_sync.read_cells(res, al), _sync.read_cells_numpy(res, al), rtol=1e-9, atol=1e-9)
    u, v = _sync.tile_coords(shape, scale, theta)
    np.testing.assert_allclose(_sync.fold(res, scale, theta), _sync.fold_units(res, u, v), rtol=1e-9, atol=1e-12)


def test_compiled_loops_take_only_float32_matrices() -> None:
    with pytest.raises(TypeError, match="float32 2-d"):
        SPLAT.cells(np.zeros((8, 8)), 1.0, 0.0, 0.0, 0.0)
    with pytest.raises(TypeError, match="float32 2-d"):
        SPLAT.fold(np.zeros(8, dtype=np.float32), 1.0, math.pi)


def test_compiled_search_loop_checks_its_buffers() -> None:
    """The coherent search's loop reads a spectrum by computed index: buffers of the wrong type or
    size are refused before it runs."""
    values = np.zeros(64 * 64, dtype=np.complex64)
    weight = np.zeros((48, 48), dtype=np.complex64)
    out = np.empty((1, 2, 32, 32), dtype=np.complex64)
    args = (
        values,
        64,
        weight,
        _sync._AXIS,
        np.ones(1),
        np.zeros(1),
        np.ones(1, dtype=np.float32),
        _sync._BINS,
        _sync._SHIFT_TABLE,
    )
    SPLAT.coherent(out, *args)  # consistent: runs
    with pytest.raises(TypeError, match="out"):
        SPLAT.coherent(np.empty((2, 2, 32, 32), dtype=np.complex64), *args)
    with pytest.raises(TypeError, match="weight"):
        SPLAT.coherent(out, values, 64, weight.astype(np.complex128), *args[3:])
    with pytest.raises(ValueError, match="inconsistent"):
        SPLAT.coherent(out, values, 63, *args[2:])  # not a whole number of rows
    with pytest.raises(ValueError, match="inconsistent"):
        SPLAT.coherent(out, *args[:7], _sync._BINS[::-1].copy(), _sync._SHIFT_TABLE)  # the first 32 must be the bins' own
    with pytest.raises(ValueError, match="beyond the spectrum"):
        SPLAT.coherent(
            out, values, 64, np.ones_like(weight), *args[3:6], np.full(1, 2.0, dtype=np.float32), *args[7:]
        )  # scale 0.5


@pytest.mark.parametrize("shape", [(300, 257), (512, 768), (700, 520)])
def test_compiled_edge_residual_matches_numpy_bit_for_bit(shape: tuple[int, int]) -> None:
    """The edge-aware residual: the compiled loop (threaded over rows where the image is big
    enough) and the numpy code do the same float32 arithmetic in the same order."""
    rng = np.random.default_rng(2)
    luma = (128 + 40 * rng.standard_normal(shape)).astype(np.float32)
    luma[: shape[0] // 3] = 250.0  # a flat, near-white band: pixels with no close neighbours beside it
    compiled = _sync.edge_residual(luma)
    splat, _sync._SPLAT = _sync._SPLAT, None
    try:
        plain = _sync.edge_residual(luma)
    finally:
        _sync._SPLAT = splat
    assert compiled.shape == plain.shape == tuple(round(s * min(1.0, 512 / min(shape))) for s in shape)
    np.testing.assert_array_equal(compiled, plain)


def test_every_compiled_edge_loop_gives_the_same_bits() -> None:
    """The plain, AVX2 and AVX-512 loops (those this processor runs; a row's last pixels take the
    plain loop in the wide ones) give the numpy code's bits, and a loop it lacks is refused."""
    rng = np.random.default_rng(3)
    offsets, spatial = _sync._edge_kernel(8, 6.0)
    paths = SPLAT.bilateral_paths()
    assert paths[0] == 1  # the plain loop runs everywhere
    for shape in [(40, 37), (64, 531)]:  # widths that leave 5 and 3 pixels past the last 16 and 8
        luma = np.clip(128 + 40 * rng.standard_normal(shape), 0, 255).astype(np.float32)
        luma[:, : shape[1] // 4] = 255.0
        padded = np.pad(luma, 8, mode="reflect")
        expected = _sync.edge_residual_numpy(padded, 8, offsets, spatial, np.float32(0.0007))
        for path in paths:
            out = np.full(shape, np.nan, dtype=np.float32)
            SPLAT.bilateral(padded, 8, offsets, spatial, 0.0007, out, 0, shape[0], path)
            np.testing.assert_array_equal(out, expected, err_msg=f"loop {path}")
    with pytest.raises(ValueError, match="not available"):
        SPLAT.bilateral(padded, 8, offsets, spatial, 0.0007, np.empty(shape, dtype=np.float32), 0, shape[0], 4)


def test_compiled_edge_residual_checks_its_buffers() -> None:
    padded = np.zeros((20, 20), dtype=np.float32)
    offsets = np.array([[0, 1], [1, 0]], dtype=np.int32)
    spatial = np.ones(2, dtype=np.float32)
    out = np.empty((16, 16), dtype=np.float32)
    SPLAT.bilateral(padded, 2, offsets, spatial, 0.01, out, 0, 16)  # consistent: runs
    with pytest.raises(ValueError, match="beyond the radius"):
        SPLAT.bilateral(padded, 2, np.array([[0, 3], [1, 0]], dtype=np.int32), spatial, 0.01, out, 0, 16)
    with pytest.raises(TypeError, match="out"):
        SPLAT.bilateral(padded, 2, offsets, spatial, 0.01, np.empty((15, 16), dtype=np.float32), 0, 16)
    with pytest.raises(ValueError, match="rows"):
        SPLAT.bilateral(padded, 2, offsets, spatial, 0.01, out, 0, 17)
    with pytest.raises(TypeError, match="offsets"):
        SPLAT.bilateral(padded, 2, np.zeros(3, dtype=np.int32), spatial, 0.01, out, 0, 16)
