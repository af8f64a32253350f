"""Detection metrics on p-values: ROC and AUC, TPR at a chosen FPR (empirical and nominal), and a
uniformity check of null p-values. Plain numpy/scipy on arrays; scores are -log10 p (higher
means more evidence of a mark)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Uniformity", "auc", "roc", "scores_from_log10_p", "tpr_at_fpr", "tpr_nominal", "uniformity"]


def _arr(x: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64).ravel()


def scores_from_log10_p(log10_p: ArrayLike) -> NDArray[np.float64]:
    """Detection scores, -log10 p: 0 for p = 1, larger for stronger evidence."""
    return -_arr(log10_p)


def roc(null_scores: ArrayLike, marked_scores: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The ROC curve of the rule "detected when score >= t" over every threshold t: false- and
    true-positive rates, from (0, 0) to (1, 1), ties handled as one step."""
    null, marked = _arr(null_scores), _arr(marked_scores)
    if not null.size or not marked.size:
        raise ValueError("the ROC needs at least one null and one marked score")
    thresholds = np.unique(np.concatenate([null, marked]))[::-1]
    fpr = np.array([0.0, *[(null >= t).mean() for t in thresholds]])
    tpr = np.array([0.0, *[(marked >= t).mean() for t in thresholds]])
    return fpr, tpr


def auc(null_scores: ArrayLike, marked_scores: ArrayLike) -> float:
    """Area under the ROC curve: P(marked score > null score) + P(tie) / 2 (Mann-Whitney)."""
    null, marked = _arr(null_scores), _arr(marked_scores)
    if not null.size or not marked.size:
        raise ValueError("the AUC needs at least one null and one marked score")
    greater = (marked[:, None] > null[None, :]).mean()
    ties = (marked[:, None] == null[None, :]).mean()
    return float(greater + 0.5 * ties)


def tpr_at_fpr(null_scores: ArrayLike, marked_scores: ArrayLike, fpr: float) -> tuple[float, float]:
    """TPR at an empirical FPR of at most ``fpr``: the threshold lets through at most
    floor(fpr * n) of the n null scores (strictly above it). Returns (tpr, fpr achieved). With
    fewer than 1 / fpr null scores the threshold is the largest null score."""
    null, marked = np.sort(_arr(null_scores))[::-1], _arr(marked_scores)
    if not null.size or not marked.size:
        raise ValueError("TPR at FPR needs null and marked scores")
    k = min(math.floor(fpr * null.size + 1e-9), null.size - 1)
    threshold = null[k]
    return float((marked > threshold).mean()), float((null > threshold).mean())


def tpr_nominal(p_values: ArrayLike, alpha: float) -> float:
    """The share of p-values at or below ``alpha``: the TPR (on marked content) or the FPR (on
    unmarked content) of the detector's own threshold."""
    p = _arr(p_values)
    return float((p <= alpha).mean()) if p.size else float("nan")


@dataclass(frozen=True, slots=True)
class Uniformity:
    """A Kolmogorov-Smirnov test of null p-values against U(0, 1). ``d_plus`` measures excess small
    p-values (false positives above the nominal rate), ``d_minus`` a conservative detector."""

    n: int
    statistic: float
    p_value: float
    d_plus: float
    d_minus: float
    level: float

    @property
    def uniform(self) -> bool:
        return self.p_value > self.level

    @property
    def direction(self) -> str:
        if self.uniform:
            return "uniform"
        return "anti-conservative" if self.d_plus >= self.d_minus else "conservative"

    def describe(self) -> str:
        if self.uniform:
            return f"consistent with uniform (KS D = {self.statistic:.3f}, p = {self.p_value:.3g}, n = {self.n})"
        what = (
            "too many small p-values: the false-positive rate exceeds the nominal one"
            if self.direction == "anti-conservative"
            else "fewer small p-values than uniform: the p-values are conservative (upper bounds)"
        )
        return f"NOT uniform (KS D = {self.statistic:.3f}, p = {self.p_value:.3g}, n = {self.n}): {what}"

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n, "ks_statistic": self.statistic, "ks_p_value": self.p_value, "d_plus": self.d_plus,
            "d_minus": self.d_minus, "level": self.level, "uniform": self.uniform, "direction": self.direction,
        }  # fmt: skip


def uniformity(p_values: Sequence[float] | ArrayLike, *, level: float = 0.01) -> Uniformity:
    """Two-sided KS test of ``p_values`` against U(0, 1) at ``level``."""
    from scipy import stats

    p = np.sort(_arr(p_values))
    if p.size < 2:
        raise ValueError("the uniformity check needs at least two p-values")
    n = p.size
    d_plus = float(np.max(np.arange(1, n + 1) / n - p))
    d_minus = float(np.max(p - np.arange(n) / n))
    res = stats.kstest(p, "uniform")
    return Uniformity(n, float(res.statistic), float(res.pvalue), max(d_plus, 0.0), max(d_minus, 0.0), level)
