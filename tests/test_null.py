"""Under the null (text made without the key) p-values are valid: P(p <= a) <= a, checked
empirically with fixed seeds for every scheme, with and without the span scan."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dojang.text import TextDetector, known_configs
from dojang.text.config import GumbelConfig
from tests.helpers import fixed_key

VOCAB = 49152
CONFIGS = known_configs()


def _docs(rng: np.random.Generator, count: int, length: int, zipf: bool) -> list[np.ndarray]:
    if zipf:  # heavy repetition, like human text: a few tokens dominate
        return [np.minimum(rng.zipf(1.3, size=length), VOCAB - 1).astype(np.int64) for _ in range(count)]
    return [rng.integers(0, VOCAB, size=length, dtype=np.int64) for _ in range(count)]


def _upper(alpha: float, n: int) -> float:
    return alpha + 4 * math.sqrt(alpha * (1 - alpha) / n)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.scheme}-{c.seeding}-h{c.context_width}")
@pytest.mark.parametrize("zipf", [False, True], ids=["uniform", "zipf"])
def test_whole_document_p_values_are_valid(cfg, zipf: bool) -> None:
    rng = np.random.default_rng(20240521)
    if zipf:
        # Zipf documents share many (context, token) pairs, so under one key their p-values are
        # dependent; validity is a statement over keys, so each document gets its own key.
        docs = _docs(rng, 1500, 200, zipf)
        p = np.array(
            [
                TextDetector(keys=fixed_key(i), tokenizer=None, configs=[cfg], scan=False).detect_ids(d).p_value
                for i, d in enumerate(docs)
            ]
        )
    else:
        detector = TextDetector(keys=fixed_key(0), tokenizer=None, configs=[cfg], scan=False)
        p = np.array([d.p_value for d in detector.detect_batch(_docs(rng, 4000, 200, zipf))])
    for alpha in (0.01, 0.05, 0.2):
        assert np.mean(p <= alpha) <= _upper(alpha, p.size), alpha
    # ... and not vacuous: a test that never rejects would pass the line above.
    assert np.mean(p <= 0.2) >= 0.1
    if isinstance(cfg, GumbelConfig):  # a continuous statistic: p-values close to uniform
        assert stats.kstest(p, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("cfg", CONFIGS[:1] + CONFIGS[-1:], ids=lambda c: c.scheme)
def test_scan_p_values_are_valid(cfg) -> None:
    rng = np.random.default_rng(7)
    detector = TextDetector(keys=fixed_key(1), tokenizer=None, configs=[cfg], scan=True)
    p = np.array([detector.detect_ids(d).p_value for d in _docs(rng, 600, 300, False)])
    for alpha in (0.05, 0.2):
        assert np.mean(p <= alpha) <= _upper(alpha, p.size)
    assert np.mean(p <= 0.2) > 0.0


def test_batch_and_single_paths_agree() -> None:
    rng = np.random.default_rng(3)
    detector = TextDetector(keys=[fixed_key(1), fixed_key(2)], tokenizer=None, scan=False)
    docs = _docs(rng, 50, 120, True)
    batch = detector.detect_batch(docs)
    for doc, b in zip(docs, batch, strict=True):
        s = detector.detect_ids(doc)
        assert (s.scheme, s.key_id, s.tokens_scored) == (b.scheme, b.key_id, b.tokens_scored)
        assert s.log_p_value == pytest.approx(b.log_p_value, abs=1e-9)


def test_repeated_pairs_are_scored_once() -> None:
    sentence = np.array([101, 2023, 2003, 1037, 3231, 6251, 1012], dtype=np.int64)
    doc = np.tile(sentence, 40)  # a menu, a list, a chorus: the same n-grams over and over
    cfg = CONFIGS[0]
    detector = TextDetector(keys=fixed_key(1), tokenizer=None, configs=[cfg], scan=False)
    result = detector.detect_ids(doc)
    assert result.tokens_scored <= sentence.size  # one period's worth of distinct pairs at most
    assert result.verdict.value in {"not_detected", "inconclusive"}
