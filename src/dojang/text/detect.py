"""Model-free detection: tokenizer + key(s) + text -> :class:`~dojang.stats.Detection`.

The detector tries every (key, configuration) pair it was given and reports the best, with its
p-value multiplied by the number of pairs (Bonferroni: valid whatever their dependence). With the
span scan on, the document p-value is the smaller of the whole-document test and the scan, times
two; the scan itself is corrected for every window it tested.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dojang.errors import ConfigError, InputError
from dojang.keys import Key, KeyRing
from dojang.stats import Detection, Span, decide
from dojang.text._canonical import canonicalize
from dojang.text._hash import key_words
from dojang.text._scoring import (
    first_occurrences,
    merge_windows,
    scan,
    score_document,
    seeds_and_values,
    trim_run,
)
from dojang.text.config import SchemeConfig, known_configs, resolve

DEFAULT_ALPHA = 1e-4
DEFAULT_MIN_TOKENS = 16


def normalize(text: str) -> str:
    """The normalisation both sides apply before tokenising: Unicode NFC."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True, slots=True)
class _Encoded:
    ids: NDArray[np.int64]
    start: int  # first token that belongs to the text (after the prompt)
    offsets: NDArray[np.int64] | None  # (n, 2) character offsets into the text, or None


class TextDetector:
    """Detects dojang text watermarks without the model.

    ``keys``: one key or a key ring. ``configs``: the scheme configurations to try (default:
    every preset and scheme default). ``alpha``: the false-positive rate per document at which
    the verdict is ``detected``. ``min_tokens``: below this many scorable tokens a negative
    result is ``inconclusive``. ``scan``: also search for marked spans in mixed documents.
    ``canonical``: also test the text's canonical form (see :meth:`detect`).
    """

    def __init__(
        self,
        *,
        keys: Key | KeyRing | Iterable[Key],
        tokenizer: Any,
        configs: Sequence[SchemeConfig | str] | None = None,
        alpha: float = DEFAULT_ALPHA,
        min_tokens: int = DEFAULT_MIN_TOKENS,
        scan: bool = True,
        canonical: bool = True,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ConfigError(f"alpha must lie strictly between 0 and 1, got {alpha}")
        if min_tokens < 1:
            raise ConfigError("min_tokens must be >= 1")
        self.keys = KeyRing.coerce(keys)
        self.configs = tuple(resolve(c) for c in configs) if configs is not None else known_configs()
        if not self.configs:
            raise ConfigError("a detector needs at least one scheme configuration")
        self.tokenizer = tokenizer
        self.alpha = alpha
        self.min_tokens = min_tokens
        self.scan = scan
        self.canonical = canonical
        self._words = {(k.key_id, c.scheme): key_words(k, c.scheme) for k in self.keys for c in self.configs}

    @property
    def tests(self) -> int:
        """How many (key, configuration) pairs each document is tested under."""
        return len(self.keys) * len(self.configs)

    def log_tests(self, key: Key) -> float:
        """log of the factor a p-value read under ``key`` (in any configuration) is multiplied by:
        the configurations tried times the key's share of the ring (``KeyRing`` weights)."""
        return math.log(len(self.configs)) + self.keys.log_correction(key.key_id)

    def __repr__(self) -> str:
        schemes = [c.scheme for c in self.configs]
        return f"TextDetector(key_ids={list(self.keys.key_ids)}, schemes={schemes}, alpha={self.alpha})"

    # -- encoding ------------------------------------------------------------------------------
    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc.get("offset_mapping")
        return list(enc["input_ids"]), offsets

    def encode(self, text: str, *, prompt: str | None = None) -> _Encoded:
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}")
        text = normalize(text)
        if not text.strip():
            raise InputError("the text is empty")
        prompt_ids: list[int] = []
        shift = 0
        if prompt:
            prompt = normalize(prompt)
            if text.startswith(prompt):  # prompt and answer pasted together: score the answer only
                shift = len(prompt)
                text = text[shift:]
                if not text.strip():
                    raise InputError("the text holds nothing after the prompt")
            prompt_ids = self._encode(prompt)[0]
        ids, offsets = self._encode(text)
        all_ids = np.asarray(prompt_ids + ids, dtype=np.int64)
        off = None
        if offsets is not None:
            answer = np.asarray(offsets, dtype=np.int64).reshape(-1, 2) + shift
            off = np.concatenate([np.zeros((len(prompt_ids), 2), dtype=np.int64), answer])
        return _Encoded(all_ids, len(prompt_ids), off)

    # -- detection -----------------------------------------------------------------------------
    def detect(self, text: str, *, prompt: str | None = None) -> Detection:
        """Detect in one text. ``prompt``, when given, is used as context only and never scored.

        With ``canonical`` on (the default), a text whose canonical form differs (invisible
        characters, full-width forms, whitespace runs, mixed-script look-alikes; see
        :mod:`dojang.text._canonical`) is also tested in that form, and the smaller p-value is
        doubled: two tests, chosen by the text alone, so the bound holds whatever the key."""
        enc = self.encode(text, prompt=prompt)
        det = self.detect_ids(enc.ids, prompt_length=enc.start, offsets=enc.offsets)
        if not self.canonical:
            return det
        nfc = normalize(text)
        canon, index = canonicalize(nfc)
        if canon == nfc or not canon.strip() or normalize(canon) != canon:
            return det
        cprompt = canonicalize(normalize(prompt))[0] if prompt else None
        enc2 = self.encode(canon, prompt=cprompt)
        det2 = self.detect_ids(enc2.ids, prompt_length=enc2.start, offsets=enc2.offsets)
        chosen = det if det.log_p_value <= det2.log_p_value else det2
        log_p = min(0.0, chosen.log_p_value + math.log(2.0))
        spans = chosen.spans
        if chosen is det2:  # canonical offsets -> offsets into the (NFC) text the caller gave
            spans = tuple(
                Span(start=index[sp.start], end=index[sp.end - 1] + 1, log_p_value=min(0.0, sp.log_p_value + math.log(2.0)))
                for sp in det2.spans
                if sp.end > sp.start
            )
        else:
            spans = tuple(Span(start=sp.start, end=sp.end, log_p_value=min(0.0, sp.log_p_value + math.log(2.0))) for sp in spans)
        verdict = decide(log_p, alpha=self.alpha, tokens_scored=chosen.tokens_scored, min_tokens=self.min_tokens)
        return replace(chosen, log_p_value=log_p, verdict=verdict, spans=spans)

    def detect_ids(
        self,
        ids: Sequence[int] | NDArray[np.int64],
        *,
        prompt_length: int = 0,
        offsets: NDArray[np.int64] | None = None,
    ) -> Detection:
        """Detect in a token sequence; tokens before ``prompt_length`` serve as context only.
        ``offsets`` (n, 2) map tokens to character offsets for the spans."""
        arr = np.asarray(ids, dtype=np.int64)
        if arr.ndim != 1:
            raise InputError("ids must be a 1-D sequence of token ids")
        if arr.size and arr.min() < 0:
            raise InputError("token ids must be non-negative")
        best: tuple[float, Key, SchemeConfig, Any, Any] | None = None
        for key in self.keys:
            log_tests = self.log_tests(key)
            for cfg in self.configs:
                scored = score_document(arr, prompt_length, cfg, self._words[(key.key_id, cfg.scheme)])
                log_p = scored.log_p_whole
                result = scan(scored.scores, cfg) if self.scan else None
                if result is not None:
                    log_p = min(log_p, result.log_p) + math.log(2.0)
                log_p = min(0.0, log_p + log_tests)
                if best is None or log_p < best[0]:
                    best = (log_p, key, cfg, scored, result)
        assert best is not None  # at least one key and one config, checked in __init__
        log_p, key, cfg, scored, result = best
        spans: tuple[Span, ...] = ()
        if result is not None and offsets is not None and log_p <= math.log(self.alpha):
            extra = math.log(2.0) + self.log_tests(key)
            runs = merge_windows(result.windows, result.window_log_p + extra, math.log(self.alpha))
            mean, std = cfg.null_moments
            trimmed = [(*trim_run(scored.scores, s, e, mean + 0.5 * std), lp) for s, e, lp in runs]
            spans = tuple(
                Span(
                    start=int(offsets[scored.positions[s], 0]),
                    end=int(offsets[scored.positions[e - 1], 1]),
                    log_p_value=min(0.0, lp),
                )
                for s, e, lp in trimmed
            )
        n = int(scored.scores.size)
        verdict = decide(log_p, alpha=self.alpha, tokens_scored=n, min_tokens=self.min_tokens)
        return Detection(
            scheme=cfg.scheme,
            verdict=verdict,
            log_p_value=log_p,
            tokens_scored=n,
            statistic=float(scored.scores.sum()),
            key_id=key.key_id,
            alpha=self.alpha,
            keys_tried=len(self.keys),
            spans=spans,
        )

    def detect_batch(self, docs: Sequence[Sequence[int] | NDArray[np.int64]]) -> list[Detection]:
        """Whole-document detection of many token sequences at once (no span scan), vectorised
        over the concatenation: the fast path for corpora."""
        if not docs:
            return []
        lengths = np.asarray([len(d) for d in docs], dtype=np.int64)
        ids = np.concatenate([np.asarray(d, dtype=np.int64) for d in docs]) if lengths.sum() else np.zeros(0, np.int64)
        doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos_in_doc = np.arange(ids.size, dtype=np.int64) - starts[doc_of]
        best_lp = np.zeros(len(docs))
        best_n = np.zeros(len(docs), dtype=np.int64)
        best_stat = np.zeros(len(docs))
        best_idx = np.zeros(len(docs), dtype=np.int64)
        pairs = [(k, c) for k in self.keys for c in self.configs]
        for j, (key, cfg) in enumerate(pairs):
            positions = np.flatnonzero(pos_in_doc >= cfg.context_width)
            seeds, values = seeds_and_values(ids, positions, cfg, self._words[(key.key_id, cfg.scheme)])
            keep = first_occurrences(seeds, ids[positions], doc_of[positions])
            docs_kept = doc_of[positions[keep]]
            scores = cfg.token_scores(values[keep])
            totals = np.bincount(docs_kept, weights=scores, minlength=len(docs))
            counts = np.bincount(docs_kept, minlength=len(docs)).astype(np.int64)
            lp = np.minimum(cfg.log_tail(totals.astype(np.float64), counts) + self.log_tests(key), 0.0)
            better = (lp < best_lp) if j else np.ones(len(docs), dtype=bool)
            best_lp = np.where(better, lp, best_lp)
            best_n = np.where(better, counts, best_n)
            best_stat = np.where(better, totals, best_stat)
            best_idx = np.where(better, j, best_idx)
        return [
            Detection(
                scheme=pairs[int(best_idx[i])][1].scheme,
                verdict=decide(float(best_lp[i]), alpha=self.alpha, tokens_scored=int(best_n[i]), min_tokens=self.min_tokens),
                log_p_value=float(best_lp[i]),
                tokens_scored=int(best_n[i]),
                statistic=float(best_stat[i]),
                key_id=pairs[int(best_idx[i])][0].key_id,
                alpha=self.alpha,
                keys_tried=len(self.keys),
            )
            for i in range(len(docs))
        ]
