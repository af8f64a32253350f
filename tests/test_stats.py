"""Exact tails against high-precision references, including depths where doubles underflow."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from dojang.stats import Verdict, bonferroni_log, decide, log_binom_sf, log_gamma_sf, to_p_value

mpmath.mp.dps = 60


def _mp_binom_sf(k: int, n: int, p: float) -> float:
    pm = mpmath.mpf(p)
    total = mpmath.fsum(mpmath.binomial(n, j) * pm**j * (1 - pm) ** (n - j) for j in range(k, n + 1))
    return float(mpmath.log(total))


def _mp_gamma_sf(x: float, n: int) -> float:
    return float(mpmath.log(mpmath.gammainc(n, a=x, regularized=True)))


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (1, 1, 0.25),
        (30, 100, 0.25),
        (60, 100, 0.25),
        (100, 100, 0.25),
        (200, 250, 0.25),
        (900, 1000, 0.25),
        (3000, 3000, 0.5),
        (5, 10, 0.5),
        (1, 200, 0.25),
    ],
)
def test_binomial_tail_matches_mpmath(k: int, n: int, p: float) -> None:
    got = float(log_binom_sf(k, n, p))
    want = _mp_binom_sf(k, n, p)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("x", "n"), [(0.5, 1), (10.0, 5), (150.0, 100), (900.0, 200), (3000.0, 500), (50.0, 100)])
def test_gamma_tail_matches_mpmath(x: float, n: int) -> None:
    assert float(log_gamma_sf(x, n)) == pytest.approx(_mp_gamma_sf(x, n), rel=1e-9, abs=1e-12)


def test_tail_edges() -> None:
    assert float(log_binom_sf(0, 10, 0.25)) == 0.0
    assert float(log_binom_sf(11, 10, 0.25)) == -math.inf
    assert float(log_gamma_sf(0.0, 3)) == 0.0
    assert float(log_gamma_sf(5.0, 0)) == -math.inf


def test_far_tail_where_normal_approximations_fail() -> None:
    # z = 8 for n=200, gamma=0.25: a normal tail says 6e-16 and transformers' erf shortcut 0.0;
    # the exact binomial tail is about 1e-12.
    n, gamma = 200, 0.25
    k = math.ceil(n * gamma + 8 * math.sqrt(n * gamma * (1 - gamma)))
    exact = _mp_binom_sf(k, n, gamma)
    got = float(log_binom_sf(k, n, gamma))
    assert got == pytest.approx(exact, rel=1e-9)
    normal = math.log(0.5 * math.erfc(8 / math.sqrt(2)))
    assert abs(normal - exact) > 3.0  # the normal approximation is off by more than a factor of 20


def test_vectorised_matches_scalar() -> None:
    ks = np.array([10, 40, 80, 199])
    ns = np.array([100, 100, 200, 200])
    vec = log_binom_sf(ks, ns, 0.25)
    for k, n, v in zip(ks, ns, vec, strict=True):
        assert v == pytest.approx(float(log_binom_sf(int(k), int(n), 0.25)))


def test_invalid_probability() -> None:
    with pytest.raises(ValueError):
        log_binom_sf(1, 2, 1.0)


def test_bonferroni_and_p_value() -> None:
    assert float(bonferroni_log(math.log(1e-6), 10)) == pytest.approx(math.log(1e-5))
    assert float(bonferroni_log(math.log(0.5), 10)) == 0.0
    assert to_p_value(-2000.0) == 0.0
    assert to_p_value(math.log(1e-30)) == pytest.approx(1e-30)


def test_decide() -> None:
    assert decide(math.log(1e-5), alpha=1e-4, tokens_scored=3, min_tokens=16) is Verdict.DETECTED
    assert decide(math.log(0.2), alpha=1e-4, tokens_scored=3, min_tokens=16) is Verdict.INCONCLUSIVE
    assert decide(math.log(0.2), alpha=1e-4, tokens_scored=30, min_tokens=16) is Verdict.NOT_DETECTED
