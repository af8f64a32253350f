"""Typed results of a benchmark run, and their JSON form (the keys are documented in
docs/bench.md; ``SCHEMA_VERSION`` changes whenever they do)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dojang.bench._metrics import Uniformity, auc, roc, scores_from_log10_p, tpr_at_fpr, tpr_nominal

__all__ = ["SCHEMA_VERSION", "AttackResult", "BenchResult", "Curve", "Example", "NullResult"]

SCHEMA_VERSION = 1


def _num(x: float) -> float | None:
    """JSON has no inf/nan: those become null."""
    return float(x) if math.isfinite(x) else None


def _rates(rates: dict[float, float]) -> dict[str, float | None]:
    return {f"{k:g}": _num(v) for k, v in rates.items()}


@dataclass(frozen=True)
class NullResult:
    """p-values on unmarked content: per-source counts, the nominal FPR and the uniformity check.
    ``log10_p`` are the detector's (they set the ROC and the FPR); ``test_log10_p``, when not
    empty, are the ones the uniformity check and the histogram use."""

    log10_p: tuple[float, ...]
    sources: dict[str, int]
    fpr_nominal: dict[float, float]
    uniformity: Uniformity
    by_source: dict[str, Uniformity] = field(default_factory=dict)
    test_log10_p: tuple[float, ...] = ()

    @classmethod
    def build(
        cls, log10_p: list[float], sources: list[str], fprs: tuple[float, ...], *, test_log10_p: list[float] | None = None
    ) -> NullResult:
        """``test_log10_p``: the p-values the uniformity check runs on when they differ from the
        ones that set the ROC (text: the whole-document test, without the span scan, whose
        corrected minimum is conservative by design)."""
        p = 10.0 ** np.asarray(log10_p if test_log10_p is None else test_log10_p)
        names = sorted(set(sources))
        from dojang.bench._metrics import uniformity

        by_source = {
            s: uniformity([float(pv) for pv, src in zip(p, sources, strict=True) if src == s])
            for s in names
            if sources.count(s) >= 2
        }
        return cls(
            log10_p=tuple(log10_p),
            sources={s: sources.count(s) for s in names},
            fpr_nominal={a: tpr_nominal(10.0 ** np.asarray(log10_p), a) for a in fprs},
            uniformity=uniformity(p),
            by_source=by_source,
            test_log10_p=tuple(test_log10_p or ()),
        )

    @property
    def p_values(self) -> np.ndarray:
        return 10.0 ** np.asarray(self.log10_p)

    @property
    def tested_p_values(self) -> np.ndarray:
        """The p-values the uniformity check ran on: the histogram shows these, so that the
        picture and the verdict printed on it describe the same numbers."""
        return 10.0 ** np.asarray(self.test_log10_p or self.log10_p)

    def to_dict(self) -> dict[str, Any]:
        counts, edges = np.histogram(self.tested_p_values, bins=20, range=(0.0, 1.0))
        return {
            "count": len(self.log10_p),
            "sources": self.sources,
            "fpr_nominal": _rates(self.fpr_nominal),
            "uniformity": self.uniformity.to_dict(),
            "uniformity_by_source": {k: v.to_dict() for k, v in self.by_source.items()},
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
            "log10_p_values": [_num(x) for x in self.log10_p],
        }


@dataclass(frozen=True)
class AttackResult:
    """Detection of marked content after one attack (pipeline), against the null set."""

    name: str
    log10_p: tuple[float, ...]
    tpr_nominal: dict[float, float]
    tpr_empirical: dict[float, float]
    fpr_achieved: dict[float, float]
    auc: float
    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]
    size: float  # mean tokens scored (text) or pixels (image) after the attack
    expected_failure: bool = False
    note: str = ""
    fpr_attacked_null: float | None = None  # nominal FPR on unmarked content put through the same attack

    @classmethod
    def build(
        cls, name: str, log10_p: list[float], null: NullResult, fprs: tuple[float, ...], size: float, **extra: Any
    ) -> AttackResult:
        marked_scores = scores_from_log10_p(log10_p)
        null_scores = scores_from_log10_p(null.log10_p)
        fpr, tpr = roc(null_scores, marked_scores)
        emp = {a: tpr_at_fpr(null_scores, marked_scores, a) for a in fprs}
        p = 10.0 ** np.asarray(log10_p)
        return cls(
            name=name,
            log10_p=tuple(log10_p),
            tpr_nominal={a: tpr_nominal(p, a) for a in fprs},
            tpr_empirical={a: v[0] for a, v in emp.items()},
            fpr_achieved={a: v[1] for a, v in emp.items()},
            auc=auc(null_scores, marked_scores),
            roc_fpr=tuple(float(x) for x in fpr),
            roc_tpr=tuple(float(x) for x in tpr),
            size=size,
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": len(self.log10_p),
            "tpr_nominal": _rates(self.tpr_nominal),
            "tpr_empirical": _rates(self.tpr_empirical),
            "fpr_achieved": _rates(self.fpr_achieved),
            "auc": _num(self.auc),
            "roc": {"fpr": list(self.roc_fpr), "tpr": list(self.roc_tpr)},
            "median_log10_p": _num(float(np.median(self.log10_p))),
            "mean_size": _num(self.size),
            "expected_failure": self.expected_failure,
            "note": self.note,
            "fpr_attacked_null": None if self.fpr_attacked_null is None else _num(self.fpr_attacked_null),
            "log10_p_values": [_num(x) for x in self.log10_p],
        }


@dataclass(frozen=True)
class Curve:
    """TPR at the nominal threshold against a strength or a size: a robustness or length curve."""

    name: str
    x_label: str
    x: tuple[float, ...]
    tpr: tuple[float, ...]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {"x_label": self.x_label, "x": list(self.x), "tpr": [_num(t) for t in self.tpr], "alpha": self.alpha}


@dataclass(frozen=True)
class Example:
    """An image example for the report: original, marked and the amplified difference (PNG bytes)."""

    name: str
    original_png: bytes
    marked_png: bytes
    difference_png: bytes
    amplification: float


@dataclass(frozen=True)
class BenchResult:
    """Everything one ``dojang bench`` run measured. ``quality`` maps a row label (e.g.
    "marked", "unmarked" or an image name) to named figures."""

    modality: str
    scheme: str
    key_id: str
    suite: dict[str, Any]
    null: NullResult
    attacks: tuple[AttackResult, ...]
    length: Curve
    sweeps: tuple[Curve, ...]
    quality: dict[str, dict[str, float]]
    seconds: float
    environment: dict[str, str]
    examples: tuple[Example, ...] = ()
    samples: tuple[tuple[str, str], ...] = ()  # (label, text) examples of attacked text for the report

    @property
    def flags(self) -> list[str]:
        """Warnings the report shows at the top: non-uniform null p-values, a nominal FPR above
        its target, an unexpected failure."""
        out = []
        if not self.null.uniformity.uniform:
            out.append(f"null p-values {self.null.uniformity.describe()}")
        for name, u in self.null.by_source.items():
            if not u.uniform and u.direction == "anti-conservative":
                out.append(f"null p-values on {name} texts: {u.describe()}")
        n = len(self.null.log10_p)
        for a, rate in self.null.fpr_nominal.items():
            # flag only when the excess is beyond sampling noise (binomial 99.9% upper bound)
            if rate > a + 3.1 * math.sqrt(a * (1 - a) / n) + 1.0 / n:
                out.append(f"nominal FPR at {a:g} measured {rate:.4f} on {n} unmarked items")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "modality": self.modality,
            "scheme": self.scheme,
            "key_id": self.key_id,
            "suite": self.suite,
            "seconds": round(self.seconds, 1),
            "environment": self.environment,
            "flags": self.flags,
            "null": self.null.to_dict(),
            "attacks": [a.to_dict() for a in self.attacks],
            "length": self.length.to_dict(),
            "sweeps": {c.name: c.to_dict() for c in self.sweeps},
            "quality": {k: {n: _num(v) for n, v in row.items()} for k, row in self.quality.items()},
        }
