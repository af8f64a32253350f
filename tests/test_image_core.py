"""The image mark's building blocks against theory: the BCH code, the exact statistics, the
payload layouts and the keyed material."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from dojang.image import _codec
from dojang.image._bch import BCH
from dojang.image._pattern import LAYOUTS, TILE_CELLS, Layout, coded_bits, keyed_tile, sync_chips
from tests.helpers import fixed_key


@pytest.mark.parametrize(("m", "t", "k"), [(5, 2, 21), (6, 2, 51), (7, 9, 71)])
def test_bch_dimensions_match_the_tables(m: int, t: int, k: int) -> None:
    code = BCH(m, t)
    assert (code.n, code.k) == ((1 << m) - 1, k)


def test_bch_corrects_up_to_t_errors_and_never_more() -> None:
    code = BCH(7, 9)
    rng = np.random.default_rng(0)
    for errors in range(0, 14):
        for _ in range(6):
            msg = rng.integers(0, 2, code.k).astype(np.uint8)
            word = code.encode(msg)
            noisy = word.copy()
            noisy[rng.choice(code.n, errors, replace=False)] ^= 1
            out = code.decode(noisy)
            if errors <= code.t:
                assert out is not None and np.array_equal(out[0], msg) and out[1] == errors
            elif out is not None:  # decoded to some codeword: it must be within t of what was read
                assert out[1] <= code.t and not np.array_equal(out[0], msg)


def test_bch_false_decode_rate_matches_theory() -> None:
    """Random words decode with probability 2^k V(n, t) / 2^n (the balls are disjoint)."""
    code = BCH(6, 2)
    rng = np.random.default_rng(1)
    trials = 4000
    hits = sum(code.decode(rng.integers(0, 2, code.n).astype(np.uint8)) is not None for _ in range(trials))
    expected = math.exp(code.log_false_decode(code.t))
    assert stats.binomtest(hits, trials, expected).pvalue > 1e-3, (hits / trials, expected)


def test_signed_rank_tail_is_exact() -> None:
    """Against brute-force enumeration of all sign patterns for 10 bits."""
    count = 10
    tail = _codec._signed_rank_tail(count)
    sums = [
        sum(r for r, sign in zip(range(1, count + 1), signs, strict=True) if sign)
        for signs in itertools.product([0, 1], repeat=count)
    ]
    for w in range(0, count * (count + 1) // 2 + 1):
        assert tail[w] == pytest.approx(sum(s >= w for s in sums) / 2**count, rel=1e-12)


def test_check_statistic_is_uniform_under_random_chips() -> None:
    """Soft values of any fixed magnitude with fair random signs give super-uniform p-values."""
    rng = np.random.default_rng(2)
    magnitudes = rng.exponential(size=64)
    p = np.array([math.exp(_codec.log_signed_rank_sf(magnitudes * rng.choice([-1.0, 1.0], 64))) for _ in range(4000)])
    for x in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(p <= x) <= x + 3 * math.sqrt(x * (1 - x) / len(p))
    assert np.mean(p <= 0.5) > 0.45  # and not uselessly conservative


@pytest.mark.parametrize("count", [1, 2, 3])
def test_fisher_combination(count: int) -> None:
    # P(U1 ... Uk <= x) = x sum_{j<k} (-ln x)^j / j!: for two, x (1 - ln x)
    rng = np.random.default_rng(3)
    u = rng.uniform(size=(400_000, count)).prod(axis=1)
    for x in (1e-3, 1e-2, 0.1):
        assert np.mean(u <= x) == pytest.approx(math.exp(_codec._log_fisher(math.log(x), count)), rel=0.1)
    assert _codec._log_fisher(math.log(0.01)) == pytest.approx(math.log(0.01 * (1 + math.log(100))))
    assert _codec._log_fisher(0.0, count) == 0.0


def test_layout_pack_unpack_and_version_check() -> None:
    layout = LAYOUTS[1]
    payload = bytes.fromhex("0123456789abcdef")
    info = layout.pack(payload)
    assert info.shape == (layout.code.k,) and list(info[:4]) == [0, 0, 0, 1]
    assert layout.unpack(info) == payload
    other = Layout(version=2, bch_m=7, bch_t=9, check_bits=64)
    assert other.unpack(info) is None  # wrong version field
    padded = info.copy()
    padded[-1] = 1
    assert layout.unpack(padded) is None  # non-zero padding


def test_payload_false_decode_bound() -> None:
    layout = LAYOUTS[1]
    # exact inside the correction radius: 2^64 V(127, e) / 2^127
    assert layout.log_false_payload(0) == pytest.approx(-63 * math.log(2))
    assert layout.log_false_payload(9) == pytest.approx(
        (64 - 127) * math.log(2) + math.log(sum(math.comb(127, i) for i in range(10)))
    )


def test_keyed_material_depends_on_the_key_and_is_balanced() -> None:
    a, b = keyed_tile(fixed_key(1), LAYOUTS[1]), keyed_tile(fixed_key(2), LAYOUTS[1])
    assert a.sync.shape == (TILE_CELLS, TILE_CELLS)
    assert not np.array_equal(a.sync, b.sync) and not np.array_equal(a.chips, b.chips)
    assert abs(float(a.sync.mean())) < 0.1 and abs(float(a.chips.mean())) < 0.1
    counts = np.bincount(a.assign.ravel())
    assert len(counts) == LAYOUTS[1].data_bits and counts.min() >= 5 and counts.max() <= 6  # every bit spread over 5-6 cells
    assert np.array_equal(sync_chips(fixed_key(1)), a.sync)


def test_cells_follow_the_bits() -> None:
    tile = keyed_tile(fixed_key(1), LAYOUTS[1])
    bits = coded_bits(LAYOUTS[1], bytes(8))
    cells = tile.cells(bits).astype(np.float64)
    soft = _codec.bit_soft(cells, tile)
    assert np.array_equal(soft < 0, bits.astype(bool))
    assert float(np.sqrt(np.mean(cells**2))) == pytest.approx(1.0, abs=0.05)


def test_reading_p_value_is_the_smaller_statistic_doubled_and_valid() -> None:
    """A reading reports 2 min(p1, Fisher(p1, p2)): with a payload that does not decode that is
    the check bits' own p-value doubled (Fisher alone would charge 1 - ln p1), and on cells of pure
    noise (an image made without the key) the reported p-values stay super-uniform."""
    layout = LAYOUTS[1]
    tile = keyed_tile(fixed_key(1), layout)
    rng = np.random.default_rng(7)
    # Check bits strongly marked, payload bits noise: the payload does not decode.
    bits = coded_bits(layout, bytes(8))
    signs = 1.0 - 2.0 * bits.astype(np.float64)
    weak = np.where(np.arange(layout.data_bits) < layout.code.n, rng.normal(size=layout.data_bits) * 4, signs)
    cells = (weak[tile.assign] * tile.chips).astype(np.float64) + 0.6 * tile.sync
    log_p, payload, _, _ = _codec.read_alignment(cells, tile)
    assert payload is None
    check = _codec.bit_soft(cells, tile)[layout.code.n :]
    assert log_p == pytest.approx(_codec.log_signed_rank_sf(check) + math.log(2))
    assert log_p < _codec._log_fisher(_codec.log_signed_rank_sf(check))  # better than Fisher alone
    p = np.array([math.exp(_codec.read_alignment(rng.normal(size=(TILE_CELLS, TILE_CELLS)), tile)[0]) for _ in range(600)])
    for x in (0.02, 0.1, 0.5):
        assert np.mean(p <= x) <= x + 3 * math.sqrt(x * (1 - x) / len(p))


def test_sync_statistic_is_the_signed_rank_of_groups_of_four() -> None:
    """By the definition (spec section 6), with explicit loops: the cells times their sync chips,
    summed over 4 consecutive cells in row-major order, ranked by magnitude."""
    tile = keyed_tile(fixed_key(4), LAYOUTS[1])
    cells = np.random.default_rng(11).normal(size=(TILE_CELLS, TILE_CELLS)) + 0.15 * tile.sync
    groups = []
    for g in range(TILE_CELLS * TILE_CELLS // 4):
        total = 0.0
        for i in range(4 * g, 4 * g + 4):
            total += float(cells[i // TILE_CELLS, i % TILE_CELLS]) * float(tile.sync[i // TILE_CELLS, i % TILE_CELLS])
        groups.append(total)
    order = sorted(range(len(groups)), key=lambda i: abs(groups[i]))
    w = sum(rank + 1 for rank, i in enumerate(order) if groups[i] > 0)
    want = math.log(float(_codec._signed_rank_tail(len(groups))[w]))
    assert _codec.log_sync_sf(cells, tile) == pytest.approx(want, rel=1e-12)
    assert len(groups) == 256 and want < math.log(1e-3)  # the small sync push shows


def test_origin_reading_is_valid_under_the_null_and_reads_the_sync_chips() -> None:
    """At the exact origin a reading adds the sync chips' p-value to the check bits' (Fisher). Under
    the null hypothesis the cells are fixed by the image and the key is what varies: over 800 keys
    on one set of cells the reported p-values stay super-uniform. A weak mark reads about twice
    as many decades there as the check bits alone give (the sync chips carry as much of it)."""
    layout = LAYOUTS[1]
    rng = np.random.default_rng(12)
    cells = rng.standard_t(4, size=(TILE_CELLS, TILE_CELLS))  # heavy tails, like a busy image's cells
    p = []
    for i in range(800):
        tile = keyed_tile(fixed_key(1000 + i), layout)
        p.append(math.exp(_codec.read_alignment(cells, tile, at_origin=True)[0]))
    arr = np.array(p)
    for x in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(arr <= x) <= x + 3 * math.sqrt(x * (1 - x) / len(arr))
    assert np.mean(arr <= 0.5) > 0.2  # and not uselessly conservative (the factor 2 of the two statistics: 0.25)

    tile = keyed_tile(fixed_key(1), layout)
    bits = coded_bits(layout, bytes(8))
    signs = 1.0 - 2.0 * bits.astype(np.float64)
    gains = []
    for seed in range(20):
        noise = np.random.default_rng(seed).normal(size=(TILE_CELLS, TILE_CELLS))
        marked = 0.22 * (signs[tile.assign] * tile.chips + 0.6 * tile.sync) + noise
        plain = _codec.read_alignment(marked, tile)[0]
        origin = _codec.read_alignment(marked, tile, at_origin=True)[0]
        gains.append(origin / plain)
    assert 1.5 < float(np.median(gains)) < 3.0


def test_format_v3_mac_statistic_is_exact_under_the_null() -> None:
    """A bound layout's evidence is the MAC bits' signed-rank tail given the payload decoded from
    the other cells: with the cells fixed (heavy-tailed, as a busy image's) and the key varying,
    it is uniform (two-sided KS), and the reported p-value (gated, doubled) is never below it."""
    from scipy import stats

    layout = LAYOUTS[3]
    rng = np.random.default_rng(31)
    sync_cells = rng.standard_t(4, size=(TILE_CELLS, TILE_CELLS))
    data_cells = rng.standard_t(4, size=(TILE_CELLS, TILE_CELLS))
    p_mac, reported = [], []
    for i in range(400):
        key = fixed_key(3000 + i)
        got = _codec.read_bound(sync_cells, data_cells, keyed_tile(key, layout), key, at_origin=True)
        p_mac.append(math.exp(got.log_p_mac))
        reported.append(got.log_p)
        assert got.log_p >= got.log_p_mac + math.log(_codec.STATISTICS) - 1e-9 or got.log_p == 0.0
    assert stats.kstest(p_mac, "uniform").pvalue > 0.01
    assert sum(not math.isclose(x, 0.0) for x in reported) <= 4  # verified only where the MAC reads at 1e-4: rare
