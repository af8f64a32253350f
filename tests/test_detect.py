"""Detection end to end on a tiny random model: verdicts, key rings, spans, normalisation."""

from __future__ import annotations

import math
import unicodedata

import numpy as np
import pytest

from dojang import InputError, Verdict
from dojang.text import KGWConfig, TextDetector, generate_batch, known_configs, resolve
from tests.conftest import HUMAN_EN, HUMAN_KO
from tests.helpers import fixed_key

PROMPTS = ["Once upon a time", "The weather today", "In the laboratory"]


@pytest.fixture(scope="module")
def marked(tiny_model, tokenizer):
    """Answers stamped under fixed_key(0) with each scheme's default configuration."""
    out = {}
    for scheme in ("kgw", "synthid", "gumbel"):
        gens = generate_batch(
            PROMPTS,
            key=fixed_key(0),
            scheme=scheme,
            model=tiny_model,
            tokenizer=tokenizer,
            max_new_tokens=150,
            temperature=1.0,
            seed=0,
            chat=False,
        )
        out[scheme] = gens
    return out


@pytest.mark.parametrize("scheme", ["kgw", "synthid", "gumbel"])
def test_each_scheme_is_detected_and_named(marked, tokenizer, scheme: str) -> None:
    det = TextDetector(keys=fixed_key(0), tokenizer=tokenizer)
    for gen in marked[scheme]:
        result = det.detect_ids(list(gen.token_ids))
        assert result.verdict is Verdict.DETECTED, result
        assert result.scheme == scheme
        assert result.key_id == fixed_key(0).key_id
        assert result.p_value <= 1e-4


def test_wrong_key_finds_nothing(marked, tokenizer) -> None:
    det = TextDetector(keys=fixed_key(99), tokenizer=tokenizer)
    for gens in marked.values():
        for gen in gens:
            assert det.detect_ids(list(gen.token_ids)).verdict is Verdict.NOT_DETECTED


def test_key_ring_names_the_matching_key_and_pays_for_the_others(marked, tokenizer) -> None:
    ids = list(marked["kgw"][0].token_ids)
    cfg = [resolve("kgw")]
    alone = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, configs=cfg, scan=False).detect_ids(ids)
    ring = TextDetector(keys=[fixed_key(7), fixed_key(0), fixed_key(8)], tokenizer=tokenizer, configs=cfg, scan=False)
    result = ring.detect_ids(ids)
    assert result.key_id == fixed_key(0).key_id
    assert result.keys_tried == 3
    assert result.log_p_value == pytest.approx(alone.log_p_value + math.log(3))


def test_scheme_correction_and_scan_factor(marked, tokenizer) -> None:
    ids = list(marked["gumbel"][0].token_ids)
    one = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, configs=["gumbel"], scan=False).detect_ids(ids)
    every = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, scan=False).detect_ids(ids)
    assert every.log_p_value == pytest.approx(one.log_p_value + math.log(len(known_configs())))


def test_text_round_trip_and_prompt_as_context(marked, tokenizer) -> None:
    det = TextDetector(keys=fixed_key(0), tokenizer=tokenizer)
    gen = marked["kgw"][1]
    by_text = det.detect(gen.text)
    assert by_text.detected
    with_prompt = det.detect(gen.text, prompt=gen.prompt)
    assert with_prompt.detected
    pasted = det.detect(gen.prompt + gen.text, prompt=gen.prompt)  # the prompt is never scored
    assert pasted.tokens_scored == with_prompt.tokens_scored


def test_human_text_is_not_detected(tokenizer) -> None:
    det = TextDetector(keys=fixed_key(0), tokenizer=tokenizer)
    for text in (HUMAN_EN, HUMAN_KO, HUMAN_EN * 5):
        assert det.detect(text).verdict is Verdict.NOT_DETECTED


def test_spans_locate_a_pasted_answer(tokenizer) -> None:
    """A marked passage pasted between human paragraphs is found at the right offsets."""
    import torch

    # Build a marked passage token by token over flat logits: kgw with every token a candidate
    # (candidates is generation-only: the detector's "kgw" configuration reads the same mark).
    cfg = KGWConfig(candidates=65536)
    proc = cfg.build_processor(fixed_key(0), temperature=1.0, seed=3)
    words = tokenizer(" The river was quiet and the boats slept in the harbour", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([words])
    allowed = torch.full((len(tokenizer),), -math.inf)
    ascii_words = [
        i
        for i in range(len(tokenizer))
        if tokenizer.convert_ids_to_tokens(i).startswith("Ġ") and tokenizer.convert_ids_to_tokens(i)[1:].isalpha()
    ]
    allowed[ascii_words] = 0.0  # whole English-looking words only: decodes and re-encodes cleanly
    for _ in range(70):
        nxt = proc(ids, allowed.unsqueeze(0)).argmax(-1)
        ids = torch.cat([ids, nxt.unsqueeze(0)], 1)
    passage = tokenizer.decode(ids[0, len(words) :])
    human_before, human_after = HUMAN_EN, " " + HUMAN_EN.replace("committee", "board")
    text = human_before + passage + human_after
    det = TextDetector(keys=fixed_key(0), tokenizer=tokenizer)
    result = det.detect(text)
    assert result.detected
    assert result.spans
    start, end = len(human_before), len(human_before) + len(passage)
    best = max(result.spans, key=lambda s: min(s.end, end) - max(s.start, start))
    overlap = min(best.end, end) - max(best.start, start)
    assert overlap >= 0.6 * len(passage)
    assert best.start >= start - 150 and best.end <= end + 150  # the span does not swallow the human text
    assert all(s.p_value <= det.alpha for s in result.spans)


def test_nfd_korean_tokenises_like_nfc(tokenizer) -> None:
    det = TextDetector(keys=fixed_key(0), tokenizer=tokenizer)
    nfd = unicodedata.normalize("NFD", HUMAN_KO)
    assert nfd != HUMAN_KO
    assert np.array_equal(det.encode(nfd).ids, det.encode(HUMAN_KO).ids)


def test_short_text_is_inconclusive(tokenizer) -> None:
    det = TextDetector(keys=fixed_key(0), tokenizer=tokenizer)
    assert det.detect("Thanks, see you soon.").verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize("bad", ["", "   \n", 42])
def test_bad_text(tokenizer, bad) -> None:
    det = TextDetector(keys=fixed_key(0), tokenizer=tokenizer)
    with pytest.raises(InputError):
        det.detect(bad)


def test_extreme_p_values_stay_exact(tiny_model, tokenizer) -> None:
    gens = generate_batch(
        ["Long story:"],
        key=fixed_key(1),
        scheme="gumbel",
        model=tiny_model,
        tokenizer=tokenizer,
        max_new_tokens=400,
        temperature=1.0,
        seed=2,
        chat=False,
    )
    result = TextDetector(keys=fixed_key(1), tokenizer=tokenizer, configs=["gumbel"]).detect_ids(list(gens[0].token_ids))
    assert result.log10_p_value < -60  # far below where erf-based p-values return 0
    assert math.isfinite(result.log10_p_value)
    assert result.to_dict()["log10_p_value"] == pytest.approx(result.log10_p_value)


# -- the canonical form: invisible characters, full-width forms, whitespace, look-alikes ---------------
def test_canonical_form_and_index_map() -> None:
    from dojang.text._canonical import canonicalize

    text = "Hello  world.\n\nA ｆｕｌｌ-width, zero\u200bwidth cаt; Москва stays Cyrillic."
    canon, index = canonicalize(text)
    assert canon == "Hello world. A full-width, zerowidth cat; Москва stays Cyrillic."
    assert len(index) == len(canon) and index == sorted(index)
    for i, ch in enumerate(canon):  # every canonical character comes from a source character that looks like it
        src = text[index[i]]
        assert ch == src or (ch == " " and src.isspace()) or unicodedata.normalize("NFKC", src) == ch or src in "аС"
    plain = "Nothing to change here, in English or 한국어."
    assert canonicalize(plain)[0] == plain


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        (
            "whitespace",
            lambda t, r: "".join(("  ", "\n", "\t")[r.integers(0, 3)] if c == " " and r.random() < 0.5 else c for c in t),
        ),
        ("fullwidth", lambda t, r: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in t)),
        ("zero_width", lambda t, r: "".join(c + "\u200b" if not c.isspace() and r.random() < 0.1 else c for c in t)),
        (  # what a C2PA text wrapper (c2pa-text) appends: thousands of variation selectors
            "variation_selectors",
            lambda t, r: t + "".join(chr(0xE0100 + b - 16) if b >= 16 else chr(0xFE00 + b) for b in r.integers(0, 256, 3000)),
        ),
        (
            "homoglyphs",
            lambda t, r: "".join({"a": "а", "e": "е", "o": "о", "c": "с"}.get(c, c) if r.random() < 0.1 else c for c in t),
        ),
    ],
)
def test_invisible_edits_do_not_remove_the_mark(marked, tokenizer, name, edit) -> None:  # type: ignore[no-untyped-def]
    from dojang.text._canonical import canonicalize

    rng = np.random.default_rng(3)
    # The tiny random model writes tokens from every script; take an answer that is already canonical
    # (as a real model's English answer is) so that the edit is the only thing to undo.
    text = next(g.text for gens in marked.values() for g in gens if canonicalize(g.text)[0] == g.text)
    edited = edit(text, rng)
    assert edited != text
    strict = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, canonical=False).detect(edited)
    found = TextDetector(keys=fixed_key(0), tokenizer=tokenizer).detect(edited)
    assert found.verdict is Verdict.DETECTED, name
    assert found.log_p_value < strict.log_p_value
    for span in found.spans:  # spans point into the text the caller gave
        assert 0 <= span.start < span.end <= len(edited)


def test_canonical_variant_costs_exactly_a_factor_two(marked, tokenizer) -> None:
    from dojang.text._canonical import canonicalize

    text = marked["gumbel"][0].text.replace(" ", "  ", 1)  # a canonical form that differs
    on = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, scan=False).detect(text)
    raw = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, scan=False, canonical=False).detect(text)
    canon = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, scan=False, canonical=False).detect(canonicalize(text)[0])
    assert on.log_p_value == pytest.approx(min(raw.log_p_value, canon.log_p_value) + math.log(2))
    same = next(g.text for gens in marked.values() for g in gens if canonicalize(g.text)[0] == g.text)
    a = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, scan=False).detect(same)
    b = TextDetector(keys=fixed_key(0), tokenizer=tokenizer, scan=False, canonical=False).detect(same)
    assert a.log_p_value == b.log_p_value  # nothing to canonicalise: no extra test, no factor


def test_canonical_variant_keeps_human_text_calibrated(tokenizer) -> None:
    """Human texts with invisible edits (so the second test always runs): p-values stay valid."""
    from dojang.text.corpus import load_human_corpus

    rng = np.random.default_rng(11)
    texts = [d.text for d in load_human_corpus(langs=["en"])][:300]
    det = TextDetector(keys=fixed_key(5), tokenizer=tokenizer, scan=False)
    ps = []
    for t in texts:
        edited = "".join(c + "\u200b" if c.isalpha() and rng.random() < 0.05 else c for c in t[:1200])
        ps.append(det.detect(edited).p_value)
    ps_arr = np.asarray(ps)
    assert (ps_arr <= 0.01).mean() <= 0.03 and (ps_arr <= 0.1).mean() <= 0.15


def test_the_ascii_shortcut_of_the_canonical_form_is_exact() -> None:
    """Printable ASCII without double spaces skips the character loop: on 50,000 random strings of
    printable ASCII, tabs, newlines and other controls, the shortcut and the loop agree."""
    import random
    import string

    from dojang.text._canonical import _canonicalize, canonicalize

    rng = random.Random(7)
    alphabet = string.printable + "\x1c\x1f\x00"
    shortcut = 0
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert canonicalize(text) == _canonicalize(text), repr(text)
        shortcut += text.isprintable() and "  " not in text
    assert shortcut > 5_000  # the shortcut was taken often enough to be tested
