"""Exact upper tails, returned as natural logarithms so they stay right far below 1e-300.

``log_binom_sf(k, n, p)`` is log P(X >= k) for X ~ Binomial(n, p) and ``log_gamma_sf(x, n)`` is
log P(Y >= x) for Y ~ Gamma(n, 1). Both use scipy's regularised incomplete functions where the
result is representable as a double, and an exact log-sum-exp of the point probabilities where it
underflows. No normal approximation is used anywhere.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

_UNDERFLOW = 1e-290  # below this, recompute in log space


def _log_binom_sf_deep(k: int, n: int, p: float) -> float:
    """log sum_{j=k}^{n} C(n,j) p^j (1-p)^(n-j), summed in log space."""
    j = np.arange(k, n + 1, dtype=np.float64)
    terms = (
        special.gammaln(n + 1.0)
        - special.gammaln(j + 1.0)
        - special.gammaln(n - j + 1.0)
        + j * math.log(p)
        + (n - j) * math.log1p(-p)
    )
    return float(special.logsumexp(terms))


def log_binom_sf(k: ArrayLike, n: ArrayLike, p: float) -> NDArray[np.float64]:
    """log P(X >= k), X ~ Binomial(n, p); exact, vectorised over ``k`` and ``n``.

    ``k <= 0`` gives 0 (certainty); ``k > n`` gives -inf.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p}")
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64))
    out = np.zeros(k_arr.shape, dtype=np.float64)
    inside = (k_arr > 0) & (k_arr <= n_arr)
    out[k_arr > n_arr] = -np.inf
    if inside.any():
        ks, ns = k_arr[inside], n_arr[inside]
        # P(X >= k) = I_p(k, n - k + 1), the regularised incomplete beta function.
        sf = special.betainc(ks.astype(np.float64), (ns - ks + 1).astype(np.float64), p)
        with np.errstate(divide="ignore"):
            logs = np.log(sf)
        deep = sf < _UNDERFLOW
        for idx in np.flatnonzero(deep):
            logs[idx] = _log_binom_sf_deep(int(ks[idx]), int(ns[idx]), p)
        out[inside] = logs
    return out


def _log_gamma_sf_deep(x: float, n: int) -> float:
    """log P(Gamma(n,1) >= x) = log P(Poisson(x) <= n-1), summed in log space."""
    j = np.arange(0, n, dtype=np.float64)
    terms = -x + j * math.log(x) - special.gammaln(j + 1.0)
    return float(special.logsumexp(terms))


def log_gamma_sf(x: ArrayLike, n: ArrayLike) -> NDArray[np.float64]:
    """log P(Y >= x), Y ~ Gamma(shape=n, scale=1), for integer ``n >= 1``; exact, vectorised."""
    x_arr, n_arr = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(n, dtype=np.int64))
    out = np.zeros(x_arr.shape, dtype=np.float64)
    inside = (x_arr > 0) & (n_arr > 0)
    out[(n_arr <= 0) & (x_arr > 0)] = -np.inf
    if inside.any():
        xs, ns = x_arr[inside], n_arr[inside]
        sf = special.gammaincc(ns.astype(np.float64), xs)
        with np.errstate(divide="ignore"):
            logs = np.log(sf)
        for idx in np.flatnonzero(sf < _UNDERFLOW):
            logs[idx] = _log_gamma_sf_deep(float(xs[idx]), int(ns[idx]))
        out[inside] = logs
    return out


def bonferroni_log(log_p: ArrayLike, tests: int) -> NDArray[np.float64]:
    """Bonferroni correction in log space: log min(1, tests * p). Valid under any dependence."""
    if tests < 1:
        raise ValueError("tests must be >= 1")
    return np.minimum(np.asarray(log_p, dtype=np.float64) + math.log(tests), 0.0)


def to_p_value(log_p: float) -> float:
    """exp(log_p) as a float; 0.0 only when the p-value is below the smallest double."""
    return float(math.exp(log_p)) if log_p > -745.0 else 0.0
