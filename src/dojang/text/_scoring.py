"""Model-free scoring of token sequences (numpy only): which tokens are scored, their hash
values, repeated-pair removal, whole-document tails and the windowed span scan.

Spec: docs/spec/text.md, sections 3-5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from dojang.text._hash import candidate_hash, context_hash, fold_seed, mix32
from dojang.text.config import SchemeConfig

# Window sizes of the span scan: powers of sqrt(2) from 16 tokens; stride a quarter window.
WINDOW_SIZES = tuple(round(2 ** (k / 2)) for k in range(8, 40))
_DOC_MIX = np.uint64(0x9E3779B97F4A7C15)


def seeds_and_values(
    ids: NDArray[np.int64], positions: NDArray[np.int64], cfg: SchemeConfig, words: tuple[int, ...]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Seed and 32-bit value u of each scored position (every position >= context_width)."""
    h = cfg.context_width
    ctx_all = context_hash(ids, words)
    windows = sliding_window_view(ctx_all, h)[positions - h]  # (m, h): tokens positions-h .. positions-1
    if cfg.seeding == "lefthash":
        seeds = fold_seed(windows, words)
    else:
        seeds = windows.min(axis=1)
        if cfg.seeding == "selfhash":
            seeds = np.minimum(seeds, ctx_all[positions])
    values = mix32(seeds ^ candidate_hash(ids[positions], words))
    return seeds, values


def first_occurrences(
    seeds: NDArray[np.int64], tokens: NDArray[np.int64], docs: NDArray[np.int64] | None = None
) -> NDArray[np.bool_]:
    """True at the first occurrence of each (seed, token) pair (per document when ``docs`` is
    given): a repeated pair has the same hash value, so it is evidence only once."""
    pair = (seeds.astype(np.uint64) << np.uint64(32)) | tokens.astype(np.uint64)
    if docs is not None:
        with np.errstate(over="ignore"):
            pair = pair ^ (docs.astype(np.uint64) * _DOC_MIX)
    _, first = np.unique(pair, return_index=True)
    keep = np.zeros(pair.shape[0], dtype=bool)
    keep[first] = True
    return keep


@dataclass(frozen=True, slots=True)
class Scored:
    """One document under one (key, config): the scored token positions and their scores."""

    positions: NDArray[np.int64]  # indices into the token sequence
    scores: NDArray[np.float64]
    log_p_whole: float


def score_document(ids: NDArray[np.int64], start: int, cfg: SchemeConfig, words: tuple[int, ...]) -> Scored:
    """Score the tokens at positions >= max(start, context_width)."""
    first = max(start, cfg.context_width)
    positions = np.arange(first, ids.shape[0], dtype=np.int64)
    if positions.size == 0:
        return Scored(positions, np.zeros(0), 0.0)
    seeds, values = seeds_and_values(ids, positions, cfg, words)
    keep = first_occurrences(seeds, ids[positions])
    positions, values = positions[keep], values[keep]
    scores = cfg.token_scores(values)
    log_p = float(cfg.log_tail(np.asarray([scores.sum()]), np.asarray([scores.size]))[0])
    return Scored(positions, scores, log_p)


@dataclass(frozen=True, slots=True)
class ScanResult:
    log_p: float  # Bonferroni-corrected over every window tested
    windows: NDArray[np.int64]  # (w, 2) [start, end) in scored-token indices
    window_log_p: NDArray[np.float64]  # corrected log p of each window


def scan(scores: NDArray[np.float64], cfg: SchemeConfig) -> ScanResult | None:
    """Windowed scan (sizes 16, 23, 32, ... up to half the document; stride a quarter window).
    Returns None when the document is too short to hold two of the smallest windows."""
    n = scores.size
    sizes = [w for w in WINDOW_SIZES if 2 * w <= n]
    if not sizes:
        return None
    cum = np.concatenate([[0.0], np.cumsum(scores)])
    starts_all, ends_all, logp_all = [], [], []
    for w in sizes:
        stride = max(1, w // 4)
        starts = np.arange(0, n - w + 1, stride, dtype=np.int64)
        if starts[-1] != n - w:
            starts = np.append(starts, n - w)
        totals = cum[starts + w] - cum[starts]
        starts_all.append(starts)
        ends_all.append(starts + w)
        logp_all.append(cfg.log_tail(totals, np.full(starts.shape, w, dtype=np.int64)))
    log_p = np.concatenate(logp_all) + math.log(sum(s.size for s in starts_all))
    windows = np.stack([np.concatenate(starts_all), np.concatenate(ends_all)], axis=1)
    return ScanResult(float(min(0.0, log_p.min())), windows, np.minimum(log_p, 0.0))


def merge_windows(windows: NDArray[np.int64], log_p: NDArray[np.float64], threshold: float) -> list[tuple[int, int, float]]:
    """Union of the windows with log p <= threshold, as [start, end) runs with their best log p."""
    chosen = np.flatnonzero(log_p <= threshold)
    if chosen.size == 0:
        return []
    order = chosen[np.argsort(windows[chosen, 0], kind="stable")]
    runs: list[tuple[int, int, float]] = []
    for i in order:
        start, end, lp = int(windows[i, 0]), int(windows[i, 1]), float(log_p[i])
        if runs and start < runs[-1][1]:
            s0, e0, lp0 = runs[-1]
            runs[-1] = (s0, max(e0, end), min(lp0, lp))
        else:
            runs.append((start, end, lp))
    return runs


def trim_run(scores: NDArray[np.float64], start: int, end: int, level: float) -> tuple[int, int]:
    """The sub-run of ``scores[start:end]`` with the largest sum of (score - level): where the
    marked tokens are, without the unmarked tokens that the windows around them took in."""
    x = scores[start:end] - level
    prefix = np.concatenate([[0.0], np.cumsum(x)])
    lowest = np.minimum.accumulate(prefix)
    j = int(np.argmax(prefix - lowest))
    i = int(np.argmin(prefix[: j + 1]))
    if j <= i:
        return start, end
    return start + i, start + j
