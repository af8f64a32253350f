"""Exact tail probabilities in log space, multiple-testing corrections, and the shared
:class:`Detection` result type. Imports numpy and scipy only (no torch)."""

from dojang.stats._result import Detection, Span, Verdict, decide
from dojang.stats._tails import (
    bonferroni_log,
    log_binom_sf,
    log_gamma_sf,
    to_p_value,
)

__all__ = [
    "Detection",
    "Span",
    "Verdict",
    "bonferroni_log",
    "decide",
    "log_binom_sf",
    "log_gamma_sf",
    "to_p_value",
]
