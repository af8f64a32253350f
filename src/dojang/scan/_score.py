"""The one scoring function of a scan: items + a :class:`Scorer` -> one :class:`ScanRow` each.

A row depends only on its item and the scorer (keys, false-positive rate, schemes, options),
never on which engine, worker or batch scored it: batching is only for speed. Text is tokenised
with the model's fast tokenizer in one ``encode_batch`` call per batch and scored with the
vectorised whole-document test (:meth:`~dojang.text.TextDetector.detect_batch`); the span scan,
~30x slower, runs only when asked for (``spans=True``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dojang.errors import ConfigError, DojangError
from dojang.keys import KeyRing
from dojang.stats import Detection

DEFAULT_FPR = 1e-9  # per item; see docs/scan.md for why scans are stricter than single checks


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to check. ``content`` is text (kind ``text``) or encoded bytes (kind ``image``);
    ``error`` is set instead when the item could not even be read."""

    item_id: str
    kind: str  # "text" | "image"
    content: str | bytes | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ScanRow:
    """The result for one item: a verdict with its exact p-value, or an error."""

    id: str
    kind: str
    verdict: str | None
    p_value: float | None
    log10_p_value: float | None
    key_id: str | None  # the matching key, only when detected
    scheme: str | None
    tokens_scored: int | None  # text only
    payload: str | None  # images: the decoded 64-bit payload (hex), only when detected
    error: str | None

    @classmethod
    def failed(cls, item_id: str, kind: str, error: str) -> ScanRow:
        return cls(item_id, kind, None, None, None, None, None, None, None, error)

    @classmethod
    def from_detection(cls, item_id: str, kind: str, det: Detection) -> ScanRow:
        detected = det.detected
        return cls(
            id=item_id,
            kind=kind,
            verdict=det.verdict.value,
            p_value=det.p_value,
            log10_p_value=det.log10_p_value,
            key_id=det.key_id if detected else None,
            scheme=det.scheme,
            tokens_scored=det.tokens_scored if kind == "text" else None,
            payload=det.payload.hex() if detected and det.payload is not None else None,
            error=None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ROW_FIELDS}


ROW_FIELDS = ("id", "kind", "verdict", "p_value", "log10_p_value", "key_id", "scheme", "tokens_scored", "payload", "error")


@dataclass(frozen=True)
class Scorer:
    """What a scan checks for, in a picklable form that every worker (a local process or a Ray
    task on another machine) turns into detectors once.

    ``keys``: the key ring. ``alpha``: false-positive rate per item (default 1e-9).
    ``schemes``: text schemes or presets to try (default: all). ``spans``: also run the text span
    scan (finds marked passages inside human text; much slower). ``image_search``: search for
    crops and rotations in images. ``tokenizer_json``: the fast tokenizer's JSON (default: the
    embedded model's). ``min_tokens``: fewer scored tokens than this make a text inconclusive.
    """

    keys: KeyRing
    alpha: float = DEFAULT_FPR
    schemes: tuple[str, ...] = ()
    spans: bool = False
    image_search: bool = True
    tokenizer_json: str | None = field(default=None, repr=False)
    min_tokens: int = 16

    def __post_init__(self) -> None:
        if not (0.0 < self.alpha < 1.0) or math.isnan(self.alpha):
            raise ConfigError(f"the false-positive rate must lie strictly between 0 and 1, got {self.alpha}")
        object.__setattr__(self, "keys", KeyRing.coerce(self.keys))
        from dojang.text.config import resolve

        for name in self.schemes:
            resolve(name)  # fail now, not in a worker

    def __repr__(self) -> str:  # never the secrets, never the 3 MB tokenizer
        return (
            f"Scorer(key_ids={list(self.keys.key_ids)}, alpha={self.alpha}, schemes={list(self.schemes) or 'all'}, "
            f"spans={self.spans}, image_search={self.image_search})"
        )

    def identity(self) -> dict[str, Any]:
        """What the rows depend on (for resume checks): key ids, never secrets."""
        import hashlib

        tok = hashlib.sha256((self.tokenizer_json or "default").encode()).hexdigest()[:16]
        return {
            "key_ids": list(self.keys.key_ids),
            "alpha": self.alpha,
            "schemes": list(self.schemes),
            "spans": self.spans,
            "image_search": self.image_search,
            "min_tokens": self.min_tokens,
            "tokenizer": tok,
        }

    def score(self, items: Sequence[Item]) -> list[ScanRow]:
        """Score ``items`` (in order; one row each)."""
        return _runtime(self).score(items)


def default_tokenizer_json() -> str:
    """The embedded model's fast-tokenizer JSON (converted once into the cache; no model hub)."""
    from dojang.text.models import _default_tokenizer_dir

    return (_default_tokenizer_dir() / "tokenizer.json").read_text(encoding="utf-8")


_RUNTIMES: dict[str, _Runtime] = {}


def _runtime(scorer: Scorer) -> _Runtime:
    """One runtime (detectors, tokenizer) per scorer per process, built on first use. Keyed by the
    scorer's identity, so a copy unpickled for each task (Ray) reuses it; key ids are
    fingerprints of the secrets, so equal ids mean equal keys."""
    import json

    tag = json.dumps(scorer.identity(), sort_keys=True)
    rt = _RUNTIMES.get(tag)
    if rt is None:
        _RUNTIMES.clear()
        rt = _RUNTIMES[tag] = _Runtime(scorer)
    return rt


class _Runtime:
    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self._text: Any = None
        self._tokenizer: Any = None
        self._encode: Any = None
        self._image: Any = None

    # -- text --------------------------------------------------------------------------------
    def _text_detector(self) -> tuple[Any, Any]:
        if self._text is None:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core per worker
            from tokenizers import Tokenizer

            from dojang.text.detect import TextDetector

            s = self.scorer
            from dojang.scan._tokenize import fast_encoder

            spec = s.tokenizer_json or default_tokenizer_json()
            self._tokenizer = Tokenizer.from_str(spec)
            self._encode = fast_encoder(self._tokenizer, spec)
            self._text = TextDetector(
                keys=s.keys,
                tokenizer=self._tokenizer,
                configs=list(s.schemes) or None,
                alpha=s.alpha,
                min_tokens=s.min_tokens,
                scan=s.spans,
            )
        return self._text, self._tokenizer

    def _score_texts(self, items: list[Item]) -> list[ScanRow]:
        import numpy as np

        from dojang.text.detect import normalize

        detector, tokenizer = self._text_detector()
        rows: list[ScanRow | None] = [None] * len(items)
        todo: list[int] = []
        texts: list[str] = []
        for i, item in enumerate(items):
            text = normalize(item.content) if isinstance(item.content, str) else None
            if text is None or not text.strip():
                rows[i] = ScanRow.failed(item.item_id, "text", "the text is empty")
                continue
            todo.append(i)
            texts.append(text)
        if texts:
            if self.scorer.spans:
                encoded = tokenizer.encode_batch(texts, add_special_tokens=False)
                for i, enc in zip(todo, encoded, strict=True):
                    det = detector.detect_ids(np.asarray(enc.ids, dtype=np.int64), offsets=np.asarray(enc.offsets).reshape(-1, 2))
                    rows[i] = ScanRow.from_detection(items[i].item_id, "text", det)
            else:
                ids = [np.asarray(x, dtype=np.int64) for x in self._encode(texts)]
                for i, det in zip(todo, detector.detect_batch(ids), strict=True):
                    rows[i] = ScanRow.from_detection(items[i].item_id, "text", det)
        return [r for r in rows if r is not None]

    # -- images ------------------------------------------------------------------------------
    def _score_image(self, item: Item) -> ScanRow:
        if self._image is None:
            from dojang.image import ImageDetector

            self._image = ImageDetector(keys=self.scorer.keys, alpha=self.scorer.alpha, search=self.scorer.image_search)
        assert isinstance(item.content, bytes)
        try:
            det = self._image.detect_bytes(item.content, name=item.item_id)
        except DojangError as err:
            return ScanRow.failed(item.item_id, "image", str(err))
        return ScanRow.from_detection(item.item_id, "image", det)

    # -- both --------------------------------------------------------------------------------
    def score(self, items: Iterable[Item]) -> list[ScanRow]:
        items = list(items)
        out: list[ScanRow | None] = [None] * len(items)
        text_idx = [i for i, it in enumerate(items) if it.error is None and it.kind == "text"]
        for i, item in enumerate(items):
            if item.error is not None:
                out[i] = ScanRow.failed(item.item_id, item.kind, item.error)
            elif item.kind == "image":
                out[i] = self._score_image(item)
            elif item.kind != "text":
                out[i] = ScanRow.failed(item.item_id, item.kind, f"unknown item kind {item.kind!r}")
        for i, row in zip(text_idx, self._score_texts([items[i] for i in text_idx]), strict=True):
            out[i] = row
        return [r for r in out if r is not None]
