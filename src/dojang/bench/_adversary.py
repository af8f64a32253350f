"""``dojang bench image --adversary``: forge, copy and remove the image mark as an attacker would.

The attacker holds N images marked under one key (and, for some attacks, their originals), knows
the published format (the tile's period) but not the key, and tries to

* **forge**: add an estimate of the mark to a clean photo so that ``detect`` accuses it;
* **remove**: subtract the estimate from a marked image so that ``detect`` misses it.

Estimates: the average residual of the N marked images after a denoiser (Gaussian, median,
total variation, wavelet: no originals needed; Yang et al., NeurIPS 2024, "Can Simple Averaging
Defeat Modern Watermarks?"), the average exact residual of N original/marked pairs, and the
exact residual of one pair (Kutter's copy attack, 2000). Every estimate is folded modulo the
tile's period (public) and tiled back, which adds up every repetition of whatever pattern the
marks share, and is applied at scales x1..x4. Detection runs without the geometric search: the
planted pattern sits at the origin, where the reader always looks first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from dojang.bench._common import Progress, environment, need, no_progress
from dojang.errors import ConfigError
from dojang.image import ImageDetector, embed, psnr
from dojang.image._pattern import CANONICAL_SHORT, TILE_UNITS
from dojang.keys import Key, generate_key
from dojang.stats import Verdict

__all__ = ["ESTIMATORS", "AdversarySuite", "run_adversary"]

SOURCES_MARKED = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "cat", "brick")
SOURCES_CLEAN = ("camera", "coins", "moon", "retina", "clock", "cell", "grass", "gravel", "page", "text")  # held out


@dataclass(frozen=True)
class AdversarySuite:
    """What the adversary run measures: marked-set sizes, scales, victims, image size, estimators."""

    sizes: tuple[int, ...] = (1, 10, 100)
    scales: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)
    victims: int = 20  # clean images each forgery is planted on, and marked images each removal is tried on
    side: int = 512  # px: every image is side x side (the attacker averages pixel-aligned residuals)
    estimators: tuple[str, ...] = ("gaussian", "median", "tv", "wavelet", "pairs", "copy")
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 1:
            raise ConfigError("adversary: sizes must be positive counts of marked images")
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError("adversary: scales must be positive")
        if self.victims < 1:
            raise ConfigError("adversary: victims must be at least 1")
        if self.side < 256:
            raise ConfigError("adversary: side must be at least 256 px (the smallest image a mark fits)")
        unknown = sorted(set(self.estimators) - set(ESTIMATORS))
        if unknown:
            raise ConfigError(f"adversary: unknown estimators {unknown}; choose from {', '.join(ESTIMATORS)}")

    def quick(self) -> AdversarySuite:
        return AdversarySuite(sizes=(1, 10), scales=(1.0, 4.0), victims=3, side=256, estimators=self.estimators, seed=self.seed)


# -- images ---------------------------------------------------------------------------------------------
def _sources(names: tuple[str, ...]) -> list[np.ndarray]:
    data = need("skimage.data")
    out = []
    for name in names:
        arr = getattr(data, name)()
        img = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("RGB")
        out.append(np.asarray(img))
    return out


def _views(sources: list[np.ndarray], count: int, side: int, rng: np.random.Generator) -> list[Image.Image]:
    """``count`` distinct side x side images: random crops (40-100 % of the short side), mirrored
    at random, of the sources in turn; each a different picture for the attacker's average."""
    out = []
    for i in range(count):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        crop = int(min(h, w) * rng.uniform(0.4, 1.0))
        top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        img = Image.fromarray(src[top : top + crop, left : left + crop]).resize((side, side), Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(img)
    return out


# -- estimators -----------------------------------------------------------------------------------------
def _denoised(kind: str) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        if kind == "gaussian":
            from scipy import ndimage

            return np.asarray(ndimage.gaussian_filter(x, (1.0, 1.0, 0)))
        if kind == "median":
            img = Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))
            return np.asarray(img.filter(ImageFilter.MedianFilter(3)), dtype=np.float32)
        restoration = need("skimage.restoration")
        if kind == "tv":
            return np.asarray(restoration.denoise_tv_chambolle(x / 255.0, weight=0.05, channel_axis=-1) * 255.0)
        return np.asarray(restoration.denoise_wavelet(x / 255.0, channel_axis=-1, rescale_sigma=True) * 255.0)

    return run


ESTIMATORS = ("gaussian", "median", "tv", "wavelet", "pairs", "copy")


def _fold(residual: np.ndarray, period: int) -> np.ndarray:
    """Average ``residual`` over every whole repetition of a ``period``-px tile and tile it back."""
    h, w = residual.shape[:2]
    tile = np.zeros((period, period, residual.shape[2]), np.float64)
    count = np.zeros((period, period, 1), np.float64)
    ys, xs = np.arange(h) % period, np.arange(w) % period
    np.add.at(tile, (ys[:, None], xs[None, :]), residual)
    np.add.at(count, (ys[:, None], xs[None, :]), 1.0)
    tile /= np.maximum(count, 1.0)
    return tile[ys[:, None], xs[None, :]]


def estimate(kind: str, marked: list[np.ndarray], originals: list[np.ndarray], period: int) -> np.ndarray:
    """The attacker's estimate of the mark, ``(side, side, 3)`` float: averaged, folded."""
    if kind == "copy":
        residuals: Any = [marked[0] - originals[0]]
    elif kind == "pairs":
        residuals = (m - o for m, o in zip(marked, originals, strict=True))
    else:
        denoise = _denoised(kind)
        residuals = (np.clip(m - denoise(m), -12.0, 12.0) for m in marked)
    total, n = None, 0
    for r in residuals:
        total = r.astype(np.float64) if total is None else total + r
        n += 1
    assert total is not None
    return _fold(total / n, period)


# -- results --------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One (estimator, N, scale) combination: forgery and removal outcomes."""

    estimator: str
    n: int
    scale: float
    forged_detected: int = 0
    forged_verified: int = 0  # detected with a payload that verifies (for format v3, every detection)
    forged_pattern: int = 0  # inconclusive: a keyed pattern seen without a valid payload
    forged_total: int = 0
    forged_psnr: list[float] = field(default_factory=list)
    removed: int = 0  # marked images no longer detected
    removal_total: int = 0
    removal_psnr: list[float] = field(default_factory=list)  # PSNR of the attacked image against the marked one

    def to_dict(self) -> dict[str, Any]:
        def mean(xs: list[float]) -> float | None:
            finite = [x for x in xs if math.isfinite(x)]
            return round(float(np.mean(finite)), 2) if finite else None

        return {
            "estimator": self.estimator, "n": self.n, "scale": self.scale,
            "forgery_rate": self.forged_detected / max(1, self.forged_total),
            "forgery_verified_rate": self.forged_verified / max(1, self.forged_total),
            "pattern_only_rate": self.forged_pattern / max(1, self.forged_total),
            "forged": self.forged_total, "forged_psnr_db": mean(self.forged_psnr),
            "removal_rate": self.removed / max(1, self.removal_total),
            "removal_tried": self.removal_total, "removal_psnr_db": mean(self.removal_psnr),
        }  # fmt: skip


def run_adversary(
    suite: AdversarySuite | None = None, *, key: Key | None = None, progress: Progress = no_progress
) -> dict[str, Any]:
    """Mark ``max(sizes)`` images, build every estimate, plant it on clean victims and subtract it
    from marked ones; returns the results as a JSON-ready dict (``cells``, ``baseline``, ...)."""
    suite = suite or AdversarySuite()
    key = key or generate_key()
    rng = np.random.default_rng(suite.seed)
    started = time.time()
    period = round(TILE_UNITS * suite.side / CANONICAL_SHORT)  # the tile in px (published format)
    biggest = max(suite.sizes)
    originals_img = _views(_sources(SOURCES_MARKED), biggest, suite.side, rng)
    victims_img = _views(_sources(SOURCES_CLEAN), suite.victims, suite.side, rng)
    marked: list[np.ndarray] = []
    originals: list[np.ndarray] = []
    for i, img in enumerate(originals_img):
        payload = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        marked.append(np.asarray(embed(img, key, payload), dtype=np.float32))
        originals.append(np.asarray(img, dtype=np.float32))
        progress("marking", i + 1, biggest)
    detector = ImageDetector(keys=key, search=False)
    victims = [np.asarray(v, dtype=np.float32) for v in victims_img]
    targets = marked[: suite.victims]  # the removal is tried on marked images the attacker holds

    def verdict(x: np.ndarray) -> Any:
        return detector.detect(np.clip(np.rint(x), 0, 255).astype(np.uint8))

    baseline = {
        "clean_detected": sum(verdict(v).verdict is Verdict.DETECTED for v in victims),
        "clean_pattern": sum(verdict(v).verdict is Verdict.INCONCLUSIVE for v in victims),
        "marked_detected": sum(verdict(m).verdict is Verdict.DETECTED for m in targets),
        "clean": len(victims),
        "marked": len(targets),
    }
    cells: list[Cell] = []
    combos = [(e, n) for e in suite.estimators for n in suite.sizes if not (e == "copy" and n != suite.sizes[0])]
    for step, (kind, n) in enumerate(combos):
        est = estimate(kind, marked[:n], originals[:n], period)
        for scale in suite.scales:
            cell = Cell(kind, 1 if kind == "copy" else n, scale)
            for v in victims:
                forged = np.clip(np.rint(v + scale * est), 0, 255)
                d = verdict(forged)
                cell.forged_total += 1
                cell.forged_detected += d.verdict is Verdict.DETECTED
                cell.forged_verified += d.verdict is Verdict.DETECTED and d.payload is not None
                cell.forged_pattern += d.verdict is Verdict.INCONCLUSIVE
                cell.forged_psnr.append(psnr(forged.astype(np.uint8), v.astype(np.uint8)))
            for m in targets:
                attacked = np.clip(np.rint(m - scale * est), 0, 255)
                d = verdict(attacked)
                cell.removal_total += 1
                cell.removed += d.verdict is not Verdict.DETECTED
                cell.removal_psnr.append(psnr(attacked.astype(np.uint8), m.astype(np.uint8)))
            cells.append(cell)
        progress("attacking", step + 1, len(combos))
    return {
        "modality": "image-adversary",
        "key_id": key.key_id,
        "suite": {
            "sizes": list(suite.sizes),
            "scales": list(suite.scales),
            "victims": suite.victims,
            "side": suite.side,
            "estimators": list(suite.estimators),
            "seed": suite.seed,
        },
        "baseline": baseline,
        "cells": [c.to_dict() for c in cells],
        "environment": environment(),
        "seconds": round(time.time() - started, 1),
    }


def write_adversary_report(result: dict[str, Any], out_dir: str) -> tuple[str, str]:
    """``results.json`` and a one-table ``report.html`` in ``out_dir``."""
    import html
    import json
    from pathlib import Path

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the output folder ({err.strerror})") from None
    (out / "results.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    head = ["estimator", "N", "scale", "forged: detected", "forged: pattern only", "forged PSNR dB", "removed", "removal PSNR dB"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
            c["estimator"], c["n"], c["scale"], f"{c['forgery_rate']:.3f}", f"{c['pattern_only_rate']:.2f}",
            c["forged_psnr_db"], f"{c['removal_rate']:.3f}", c["removal_psnr_db"])) + "</tr>"
        for c in result["cells"]
    )  # fmt: skip
    base = result["baseline"]
    page = (
        "<!doctype html><meta charset=utf-8><title>dojang bench image --adversary</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style>"
        f"<h1>Image mark under forgery and removal</h1><p>key {html.escape(result['key_id'])}; "
        f"{base['clean']} clean victims ({base['clean_detected']} detected before any attack), {base['marked']} marked "
        f"targets ({base['marked_detected']} detected before any attack); {result['seconds']} s.</p>"
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + rows + "</table>"
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    return str(out / "results.json"), str(out / "report.html")
