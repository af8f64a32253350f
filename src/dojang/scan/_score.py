"""The one scoring function of a scan: items + a :class:`Scorer` -> one :class:`ScanRow` each.

A row depends only on its item and the scorer (keys, false-positive rate, schemes, options),
never on which engine, worker or batch scored it: batching is only for speed. A batch of texts
is tokenised in one call (:mod:`dojang.scan._tokenize`) and scored with the whole-document test
of :meth:`~dojang.text.TextDetector.detect_batch`: by the compiled loops of
``dojang.scan._fast`` where they were built, else by numpy, with the same rows either way
(``tests/test_scan_compiled.py``). The span scan, ~100x slower, runs only when asked for
(``spans=True``). Rows are built column by column (:class:`Rows`), so the fast path makes no
Python object per row.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dojang.errors import ConfigError, DojangError
from dojang.keys import KeyRing
from dojang.stats import Detection, Verdict

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
    key_id: str | None  # the matching key when detected; an image's key whose keyed pattern was seen without a valid payload
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
            key_id=det.key_id if detected or (det.verdict is Verdict.INCONCLUSIVE and det.keyed_pattern_seen) else None,
            scheme=det.scheme,
            tokens_scored=det.tokens_scored if kind == "text" else None,
            payload=det.payload.hex() if detected and det.payload is not None else None,
            error=None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ROW_FIELDS}


ROW_FIELDS = ("id", "kind", "verdict", "p_value", "log10_p_value", "key_id", "scheme", "tokens_scored", "payload", "error")


class Rows:
    """The rows of one batch, column by column: what a scan writes, without a Python object per
    row on the fast path. :meth:`to_rows` gives :class:`ScanRow` objects, :meth:`to_table` the
    pyarrow table (schema :func:`dojang.scan._store.row_schema`)."""

    def __init__(self, n: int) -> None:
        import numpy as np

        self.n = n
        self.columns = {name: np.empty(n, dtype=object) for name in ROW_FIELDS}  # None everywhere

    def put(self, i: int, row: ScanRow) -> None:
        for name in ROW_FIELDS:
            self.columns[name][i] = getattr(row, name)

    def to_rows(self) -> list[ScanRow]:
        return [ScanRow(*values) for values in zip(*(self.columns[name].tolist() for name in ROW_FIELDS), strict=True)]

    def to_table(self) -> Any:
        import pyarrow as pa

        from dojang.scan._store import row_schema

        schema = row_schema()
        return pa.table({f.name: pa.array(self.columns[f.name], type=f.type) for f in schema}, schema=schema)


@dataclass(frozen=True)
class Scorer:
    """What a scan checks for, in a picklable form that every worker (a local process or a Ray
    task on another machine) turns into detectors once.

    ``keys``: the key ring. ``alpha``: false-positive rate per item (default 1e-9).
    ``schemes``: text schemes or presets to try (default: all). ``spans``: also run the text span
    scan (finds marked passages inside human text; much slower). ``canonical``: also test each
    text's canonical form, as single checks do (invisible characters, full-width forms,
    whitespace runs, look-alike letters; about 5x slower). ``image_search``: search for
    crops and rotations in images. ``tokenizer_json``: the fast tokenizer's JSON (default: the
    embedded model's). ``min_tokens``: fewer scored tokens than this make a text inconclusive.
    """

    keys: KeyRing
    alpha: float = DEFAULT_FPR
    schemes: tuple[str, ...] = ()
    spans: bool = False
    canonical: bool = False
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
            f"spans={self.spans}, canonical={self.canonical}, image_search={self.image_search})"
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
            "canonical": self.canonical,
            "image_search": self.image_search,
            "min_tokens": self.min_tokens,
            "tokenizer": tok,
        }

    def score(self, items: Sequence[Item]) -> list[ScanRow]:
        """Score ``items`` (in order; one row each)."""
        return _runtime(self).score_rows(items).to_rows()

    def score_table(self, items: Sequence[Item]) -> Any:
        """The same rows as :meth:`score`, as a pyarrow table (what scans write; faster)."""
        return _runtime(self).score_rows(items).to_table()


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


_SEEDING = {"lefthash": 0, "minhash": 1, "selfhash": 2}


def _compiled_configs(detector: Any) -> list[tuple[int, int, int, int, int, int, int]] | None:
    """The detector's (key, configuration) pairs as the compiled scorer's tuples, in the order
    :meth:`~dojang.text.TextDetector.detect_batch` tries them; None when one is not supported."""
    from dojang.text.config import GumbelConfig, KGWConfig, SynthIDConfig

    out = []
    for key in detector.keys:
        for cfg in detector.configs:
            words = detector._words[(key.key_id, cfg.scheme)]
            if isinstance(cfg, KGWConfig):
                kind, param = 0, cfg.green_threshold
            elif isinstance(cfg, SynthIDConfig):
                kind, param = 1, cfg.layers
            elif isinstance(cfg, GumbelConfig):
                kind, param = 2, 0
            else:
                return None
            out.append((cfg.context_width, _SEEDING[cfg.seeding], kind, param, words[0], words[1], words[2]))
    return out


@dataclass(frozen=True, slots=True)
class Best:
    """The whole-document test of a batch of documents: for each, the corrected log p-value of
    its best (key, configuration) pair, that pair's index in ``detector.keys x detector.configs``
    order, and the tokens scored under it."""

    log_p: Any  # float64 (n,)
    pair: Any  # int64 (n,)
    tokens: Any  # int64 (n,)


def whole_document_best(detector: Any, fast: Any, ids: Any, lengths: Any) -> Best:
    """The whole-document test of :meth:`~dojang.text.TextDetector.detect_batch` for documents
    whose token ids are ``ids`` (all concatenated) with ``lengths`` ids each, scored by the
    compiled loop ``fast.score``, or by numpy when ``fast`` is None."""
    import numpy as np

    pairs = [(k, c) for k in detector.keys for c in detector.configs]
    nd = len(lengths)
    if fast is None:
        docs = np.split(ids, np.cumsum(lengths)[:-1]) if nd > 1 else [ids][:nd]
        dets = detector.detect_batch(docs)
        index = {(k.key_id, c.scheme): j for j, (k, c) in enumerate(pairs)}
        return Best(
            np.asarray([d.log_p_value for d in dets], dtype=np.float64),
            np.asarray([index[(d.key_id, d.scheme)] for d in dets], dtype=np.int64),
            np.asarray([d.tokens_scored for d in dets], dtype=np.int64),
        )
    configs = _compiled_configs(detector)
    assert configs is not None
    offsets = np.zeros(nd + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    totals = np.zeros((len(pairs), nd))
    counts = np.zeros((len(pairs), nd), dtype=np.int64)
    fast.score(np.ascontiguousarray(ids, dtype=np.int64), offsets, configs, totals, counts)
    best_lp = np.zeros(nd)
    best_idx = np.zeros(nd, dtype=np.int64)
    for j, (key, cfg) in enumerate(pairs):
        lp = np.minimum(cfg.log_tail(totals[j], counts[j]) + detector.log_tests(key), 0.0)
        better = (lp < best_lp) if j else np.ones(nd, dtype=bool)
        best_lp = np.where(better, lp, best_lp)
        best_idx = np.where(better, j, best_idx)
    return Best(best_lp, best_idx, counts[best_idx, np.arange(nd)])


def with_canonical(best: Best, canon: Best, which: Any) -> Best:
    """Documents ``which`` were also tested in their canonical form (``canon``, one entry each):
    keep the smaller p-value and pay the factor 2 for the two tests, as
    :meth:`~dojang.text.TextDetector.detect` does."""
    import numpy as np

    lp, pair, tokens = best.log_p.copy(), best.pair.copy(), best.tokens.copy()
    first = best.log_p[which]
    take = canon.log_p < first
    lp[which] = np.minimum(np.minimum(first, canon.log_p) + math.log(2.0), 0.0)
    pair[which] = np.where(take, canon.pair, pair[which])
    tokens[which] = np.where(take, canon.tokens, tokens[which])
    return Best(lp, pair, tokens)


def fill_rows(detector: Any, best: Best, rows: Rows, at: Any) -> None:
    """Write the verdicts of ``best`` into ``rows`` at indices ``at``."""
    import numpy as np

    pairs = [(k, c) for k in detector.keys for c in detector.configs]
    detected = best.log_p <= math.log(detector.alpha)
    cols = rows.columns
    cols["kind"][at] = "text"
    cols["verdict"][at] = np.where(
        detected, "detected", np.where(best.tokens < detector.min_tokens, "inconclusive", "not_detected")
    )
    with np.errstate(under="ignore"):
        cols["p_value"][at] = np.where(best.log_p > -745.0, np.exp(best.log_p), 0.0)  # as stats.to_p_value
    cols["log10_p_value"][at] = best.log_p / math.log(10.0)
    key_ids = np.asarray([key.key_id for key, _ in pairs], dtype=object)
    matched = key_ids[best.pair]
    matched[~detected] = None  # a key is named only when it matched
    cols["key_id"][at] = matched
    cols["scheme"][at] = np.asarray([cfg.scheme for _, cfg in pairs], dtype=object)[best.pair]
    cols["tokens_scored"][at] = best.tokens


def whole_document_rows(detector: Any, fast: Any, ids: Any, lengths: Any, rows: Rows, at: Any) -> None:
    """Fill ``rows`` at indices ``at`` with :func:`whole_document_best` of the documents."""
    fill_rows(detector, whole_document_best(detector, fast, ids, lengths), rows, at)


_WS_RUN = re.compile(r"\s+")


def canonical_form(text: str) -> str | None:
    """The canonical form :meth:`~dojang.text.TextDetector.detect` also tests (for ASCII text:
    whitespace runs made one space), or None when it would not test one."""
    from dojang.text._canonical import canonicalize
    from dojang.text.detect import normalize

    canon = _WS_RUN.sub(" ", text) if text.isascii() else canonicalize(text)[0]
    if canon == text or not canon.strip() or normalize(canon) != canon:
        return None
    return canon


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Runtime:
    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self._text: Any = None
        self._tokenizer: Any = None
        self._encode: Any = None
        self._fast: Any = None  # the compiled loops, when built (dojang.scan._fast)
        self._image: Any = None

    # -- text --------------------------------------------------------------------------------
    def _text_detector(self) -> tuple[Any, Any]:
        if self._text is None:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core per worker
            from tokenizers import Tokenizer

            from dojang.text.detect import TextDetector

            s = self.scorer
            from dojang.scan._tokenize import compiled, flat_encoder

            spec = s.tokenizer_json or default_tokenizer_json()
            self._tokenizer = Tokenizer.from_str(spec)
            self._encode = flat_encoder(self._tokenizer, spec)
            hf: Any = self._tokenizer
            if s.spans:  # TextDetector.detect needs offsets from a transformers tokenizer
                from transformers import PreTrainedTokenizerFast

                hf = PreTrainedTokenizerFast(tokenizer_object=self._tokenizer)
            self._text = TextDetector(
                keys=s.keys,
                tokenizer=hf,
                configs=list(s.schemes) or None,
                alpha=s.alpha,
                min_tokens=s.min_tokens,
                scan=s.spans,
                canonical=s.canonical,
            )
            self._fast = compiled() if _compiled_configs(self._text) is not None else None
        return self._text, self._tokenizer

    def _score_texts(self, items: Sequence[Item], rows: Rows, at: Sequence[int]) -> None:
        """Score the text ``items`` into ``rows`` at the indices ``at``."""
        import numpy as np

        from dojang.text.detect import normalize

        detector, _ = self._text_detector()
        todo: list[int] = []
        texts: list[str] = []
        for i, item in zip(at, items, strict=True):
            text = normalize(item.content) if isinstance(item.content, str) else None
            if text is None or not text.strip():
                rows.put(i, ScanRow.failed(item.item_id, "text", "the text is empty"))
            elif not text.isascii() and not _is_unicode(text):  # JSON allows "\ud800": not text
                rows.put(i, ScanRow.failed(item.item_id, "text", "the text is not valid Unicode (a lone surrogate)"))
            else:
                todo.append(i)
                texts.append(text)
        if not texts:
            return
        if self.scorer.spans:
            for i, text in zip(todo, texts, strict=True):
                rows.put(i, ScanRow.from_detection(rows.columns["id"][i], "text", detector.detect(text)))
            return
        forms = [canonical_form(t) for t in texts] if self.scorer.canonical else []
        which = [j for j, c in enumerate(forms) if c is not None]
        ids, lengths = self._encode(texts + [forms[j] for j in which])  # type: ignore[misc]
        n = len(texts)
        split = int(lengths[:n].sum())
        best = whole_document_best(detector, self._fast, ids[:split], lengths[:n])
        if which:
            canon = whole_document_best(detector, self._fast, ids[split:], lengths[n:])
            best = with_canonical(best, canon, np.asarray(which, dtype=np.int64))
        fill_rows(detector, best, rows, np.asarray(todo, dtype=np.int64))

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
    def score_rows(self, items: Iterable[Item]) -> Rows:
        items = list(items)
        rows = Rows(len(items))
        rows.columns["id"][:] = [item.item_id for item in items]
        text_idx = []
        for i, item in enumerate(items):
            if item.error is not None:
                rows.put(i, ScanRow.failed(item.item_id, item.kind, item.error))
            elif item.kind == "image":
                rows.put(i, self._score_image(item))
            elif item.kind == "text":
                text_idx.append(i)
            else:
                rows.put(i, ScanRow.failed(item.item_id, item.kind, f"unknown item kind {item.kind!r}"))
        if text_idx:
            self._score_texts([items[i] for i in text_idx], rows, text_idx)
        return rows
