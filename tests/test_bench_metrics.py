"""Benchmark metrics against known values and theory (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dojang.bench import auc, roc, tpr_at_fpr, tpr_nominal, uniformity


def test_auc_of_separable_reversed_and_identical_sets() -> None:
    low, high = np.arange(10.0), np.arange(10.0) + 100
    assert auc(low, high) == 1.0
    assert auc(high, low) == 0.0
    assert auc(low, low) == 0.5
    assert auc([0.0, 1.0], [1.0, 2.0]) == pytest.approx(0.875)  # 3 wins + 1 tie of 4 pairs


def test_auc_matches_the_binormal_closed_form(rng) -> None:
    d = 1.0
    null, marked = rng.normal(0, 1, 3000), rng.normal(d, 1, 3000)
    assert auc(null, marked) == pytest.approx(stats.norm.cdf(d / math.sqrt(2)), abs=0.015)


def test_roc_runs_from_corner_to_corner() -> None:
    fpr, tpr = roc([0.0, 1.0, 2.0], [1.5, 3.0])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc([0.0, 1.0, 2.0], [1.5, 3.0]))


def test_tpr_at_fpr_on_a_constructed_example() -> None:
    null = np.arange(100.0)  # 0..99
    marked = [50.5, 98.5, 99.5, 200.0]
    assert tpr_at_fpr(null, marked, 0.01) == (0.75, 0.01)  # threshold 98: one null score (99) passes
    assert tpr_at_fpr(null, marked, 0.05) == (0.75, 0.05)
    assert tpr_at_fpr(null, marked, 0.5) == (1.0, 0.5)
    assert tpr_at_fpr(null, marked, 1e-4) == (0.5, 0.0)  # fewer than 1/fpr nulls: above the largest


def test_nominal_rates() -> None:
    assert tpr_nominal([1e-5, 1e-3, 0.02, 0.5], 1e-3) == 0.5
    assert math.isnan(tpr_nominal([], 0.01))


def test_uniformity_passes_uniform_and_flags_both_directions() -> None:
    rng = np.random.default_rng(2024)
    u = rng.random(2000)
    assert uniformity(u).uniform
    small = uniformity(rng.beta(0.5, 1.0, 2000))  # too many small p-values
    assert not small.uniform and small.direction == "anti-conservative"
    assert "exceeds the nominal" in small.describe()
    big = uniformity(np.sqrt(rng.random(2000)))  # conservative p-values
    assert not big.uniform and big.direction == "conservative"
    with pytest.raises(ValueError):
        uniformity([0.5])
