"""The scan's compiled loops (``dojang.scan._fast``) give exactly what the Python and numpy code
gives: the Rust tokenizer's ids, and the detector's whole-document scores."""

from __future__ import annotations

import math
import random
import shutil

import numpy as np
import pytest
from tokenizers import Tokenizer

from dojang.keys import KeyRing
from dojang.scan import Item, Scorer
from dojang.scan._score import Rows, _compiled_configs, _runtime, default_tokenizer_json, whole_document_rows
from dojang.scan._tokenize import FastEncoder, compiled
from dojang.text import TextDetector
from dojang.text.config import GumbelConfig, KGWConfig, SynthIDConfig
from tests.helpers import fixed_key
from tests.scan_data import MARK_KEY, OTHER_KEY, human_sample, human_texts, make_marked
from tests.test_scan_tokenize import EDGE_CASES

FAST = compiled()
if FAST is None:
    if shutil.which("cc") or shutil.which("gcc"):
        pytest.fail("dojang.scan._fast was not built although a C compiler is here: reinstall (pip install -e .)")
    pytest.skip("no C compiler here: the compiled scan loops were not built", allow_module_level=True)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_str(default_tokenizer_json())


def _rust(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def _flat(encoder: FastEncoder, texts: list[str]) -> list[list[int]]:
    ids, lengths = encoder.encode_flat(texts)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64 and int(lengths.sum()) == ids.size
    return [part.tolist() for part in np.split(ids, np.cumsum(lengths)[:-1])] if texts else []


# Every class of the pre-split (letters, numbers, other, white space) and its edges: contractions,
# the space that joins the next run, runs of spaces before a word and at the end, separators that
# are not white space, bytes without a symbol of their own, scripts, emoji, combining marks.
POOL = list("aZé가ñ日") + list("19½٣") + list("!'?.-_\"`") + [" ", " ", "\n", "\t", "\r", "\x0b", "\u00a0", "\u3000"]
POOL += ["'s", "'re", "'ll", "'d", "'M", "\x1c", "\x04", "\x13", "\x7f", "👍🏽", "e\u0301", "\u200b"]


def test_compiled_ids_equal_the_rust_tokenizer(tok) -> None:
    enc = FastEncoder(tok, [t.content for t in tok.get_added_tokens_decoder().values()])
    assert enc._merges is not None  # the compiled BPE is in use
    rng = random.Random(7)
    fuzz = ["".join(rng.choice(POOL) for _ in range(rng.randint(0, 60))) for _ in range(3000)]
    long_runs = ["x" * 300, " " + "가" * 400, "1" * 1000 + "a", "!" * 257, " " * 600 + "end", "b" * 3000]  # BPE, cache limits
    texts = fuzz + long_runs
    assert _flat(enc, texts) == _rust(tok, texts)
    assert _flat(enc, texts) == _rust(tok, texts)  # again, from the warm cache
    # with texts that hold an added token's text (those go to the Rust tokenizer) in between
    mixed = [*EDGE_CASES, *fuzz[:50], "<|im_start|>", "x<|im_end|>y", *fuzz[50:100]]
    assert _flat(enc, mixed) == _rust(tok, mixed)


def test_compiled_ids_on_the_shipped_corpus_and_a_tiny_cache(tok) -> None:
    """~2,000 corpus texts (English and Korean); with a cache of 50 pieces it is emptied thousands
    of times on the way, and the ids stay the same."""
    texts = [t[:1500] for i, t in enumerate(human_texts()) if i % (10 if t[:50].isascii() else 3) == 0]
    expected = _rust(tok, texts)
    assert _flat(FastEncoder(tok, []), texts) == expected
    assert _flat(FastEncoder(tok, [], cache_limit=50), texts) == expected
    assert _flat(FastEncoder(tok, []), []) == []


def test_a_lone_surrogate_is_refused_not_guessed(tok) -> None:
    enc = FastEncoder(tok, [])
    with pytest.raises(UnicodeEncodeError):
        enc.encode_flat(["fine", "bad \ud800 text"])
    assert _flat(enc, ["fine"]) == _rust(tok, ["fine"])  # and the encoder still works


# -- scores --------------------------------------------------------------------------------------
CONFIGS = [
    GumbelConfig(context_width=4, seeding="lefthash"),
    GumbelConfig(context_width=1, seeding="lefthash", allow_narrow_context=True),
    SynthIDConfig(layers=30, context_width=4, seeding="lefthash"),
    SynthIDConfig(layers=7, context_width=2, seeding="lefthash"),
    KGWConfig(gamma=0.25, delta=2.0, context_width=4, seeding="selfhash"),
    KGWConfig(gamma=0.5, delta=2.0, context_width=3, seeding="lefthash"),
    KGWConfig(gamma=0.25, delta=3.0, context_width=2, seeding="minhash"),
]


@pytest.fixture(scope="module")
def docs(tiny_model, tokenizer) -> list[str]:
    # marked and human texts, a repeated phrase (repeated pairs count once), and texts of 0-5 tokens
    return [*make_marked(tiny_model, tokenizer), *human_sample(40), "the cat sat. " * 30, "", "a", "a b", "one two three four"]


def test_compiled_scores_equal_the_numpy_detector(docs, tok) -> None:
    keys = KeyRing([fixed_key(MARK_KEY), fixed_key(OTHER_KEY)])
    detector = TextDetector(keys=keys, tokenizer=tok, configs=CONFIGS, alpha=1e-9, scan=False, canonical=False)
    assert _compiled_configs(detector) is not None
    ids = [np.asarray(e, dtype=np.int64) for e in _rust(tok, docs)]
    expected = detector.detect_batch(ids)
    rows = Rows(len(docs))
    lengths = np.asarray([a.size for a in ids], dtype=np.int64)
    whole_document_rows(detector, FAST, np.concatenate(ids), lengths, rows, np.arange(len(docs)))
    got = rows.columns
    detected = 0
    for i, det in enumerate(expected):
        assert got["verdict"][i] == det.verdict.value and got["scheme"][i] == det.scheme
        assert got["tokens_scored"][i] == det.tokens_scored
        assert got["key_id"][i] == (det.key_id if det.detected else None)
        assert math.isclose(got["log10_p_value"][i], det.log10_p_value, rel_tol=1e-12, abs_tol=1e-12)
        detected += det.detected
    assert detected >= 6  # the marked texts, so the test sees both verdicts


@pytest.mark.parametrize("canonical", [False, True])
def test_scan_rows_are_the_same_with_and_without_the_compiled_loops(docs, canonical) -> None:
    scorer = Scorer(keys=[fixed_key(MARK_KEY), fixed_key(OTHER_KEY)], canonical=canonical)
    edited = [t.replace(" ", "\u200b  ") for t in docs[:8]]  # canonical forms that differ
    items = [Item(str(i), "text", t) for i, t in enumerate([*docs, *edited])]
    rt = _runtime(scorer)
    fast = scorer.score(items)
    assert rt._fast is FAST
    try:
        rt._fast = None
        slow = scorer.score(items)
    finally:
        rt._fast = FAST
    assert [r.error for r in fast] == [r.error for r in slow]
    for a, b in zip(fast, slow, strict=True):
        assert (a.id, a.verdict, a.key_id, a.scheme, a.tokens_scored) == (b.id, b.verdict, b.key_id, b.scheme, b.tokens_scored)
        if a.log10_p_value is not None or b.log10_p_value is not None:
            assert math.isclose(a.log10_p_value, b.log10_p_value, rel_tol=1e-12, abs_tol=1e-12)  # type: ignore[arg-type]


def test_a_lone_surrogate_becomes_an_error_row_and_the_batch_goes_on(docs) -> None:
    scorer = Scorer(keys=fixed_key(MARK_KEY))
    rows = scorer.score([Item("a", "text", docs[0]), Item("b", "text", "bad \ud800 text"), Item("c", "text", docs[1])])
    assert rows[1].error is not None and "surrogate" in rows[1].error and rows[1].verdict is None
    assert rows[0].verdict == "detected" and rows[2].verdict == "detected"
