"""Text attacks: each does what it says, deterministically, and composes."""

from __future__ import annotations

import unicodedata

import pytest

from dojang.errors import ConfigError
from dojang.text import attacks as T
from dojang.text import normalize

TEXT = (
    "The old lighthouse keeper climbed the stairs every evening to light the lamp. Ships passed in the night, "
    "and he counted them in a small notebook that he kept beside his bed. One winter the storms were so strong "
    "that the sea reached the door of the tower, but the light never went out."
)
ACCENTED = "Café résumé naïve — 한국어 문장입니다."


def _subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(word in it for word in small)


def test_seeded_and_deterministic() -> None:
    for make in (T.delete_words, T.insert_words, T.swap_words, T.homoglyphs, T.zero_width, T.whitespace):
        a, b, c = make(0.2, seed=1), make(0.2, seed=1), make(0.2, seed=2)
        assert a(TEXT) == b(TEXT) != TEXT
        assert a(TEXT) != c(TEXT), make.__name__


def test_delete_insert_swap_do_what_they_say() -> None:
    words = TEXT.split()
    deleted = T.delete_words(0.2, seed=3)(TEXT).split()
    assert 0.65 * len(words) < len(deleted) < 0.95 * len(words)
    assert _subsequence(deleted, words)
    inserted = T.insert_words(0.1, seed=3)(TEXT).split()
    assert len(inserted) == len(words) + round(0.1 * len(words))
    assert _subsequence(words, inserted) and set(inserted) == set(words)
    swapped = T.swap_words(0.2, seed=3)(TEXT).split()
    assert sorted(swapped) == sorted(words) and swapped != words
    assert T.delete_words(0.0)(TEXT) == TEXT and T.swap_words(0.0)(TEXT) == TEXT


def test_copy_paste_hits_the_fraction() -> None:
    human = ["word " * 500]
    for fraction in (0.1, 0.25, 0.5):
        out = T.copy_paste(fraction, human_texts=human, seed=0)(TEXT)
        assert TEXT in out
        assert len(TEXT.split()) / len(out.split()) == pytest.approx(fraction, abs=0.01)
    with pytest.raises(ConfigError):
        T.copy_paste(0.0, human_texts=human)
    with pytest.raises(ConfigError):
        T.copy_paste(0.5, human_texts=[])


def test_token_substitution(tokenizer) -> None:
    assert T.substitute_tokens(0.0, tokenizer=tokenizer)(TEXT) == TEXT
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    out = T.substitute_tokens(0.5, tokenizer=tokenizer, seed=4)(TEXT)
    assert out == T.substitute_tokens(0.5, tokenizer=tokenizer, seed=4)(TEXT)
    new = tokenizer(out, add_special_tokens=False)["input_ids"]
    kept = len(set(zip(range(len(ids)), ids, strict=True)) & set(zip(range(len(new)), new, strict=False)))
    assert kept < 0.8 * len(ids)  # about half the tokens are new (re-tokenising shifts a few more)


def test_case_and_whitespace() -> None:
    assert T.case("lower")(TEXT) == TEXT.lower()
    assert T.case("upper")(TEXT) == TEXT.upper()
    with pytest.raises(ConfigError):
        T.case("sideways")
    spaced = T.whitespace(0.5, seed=1)(TEXT)
    assert spaced != TEXT and spaced.split() == TEXT.split()
    assert any(ch in spaced for ch in "\n\t")


def test_unicode_tricks_and_what_normalisation_undoes() -> None:
    # NFD changes the bytes, but the detector's NFC normalisation restores them exactly.
    decomposed = T.nfd()(ACCENTED)
    assert decomposed.encode() != ACCENTED.encode()
    assert normalize(decomposed) == normalize(ACCENTED)
    # Zero-width spaces survive NFC (and NFKC): normalisation does not remove them.
    zw = T.zero_width(0.2, seed=0)(TEXT)
    assert "\u200b" in zw and normalize(zw) != TEXT
    assert unicodedata.normalize("NFKC", zw) != TEXT
    assert zw.replace("\u200b", "") == TEXT
    # Full-width forms survive NFC but NFKC folds them back.
    wide = T.fullwidth(1.0)(TEXT)
    assert normalize(wide) != TEXT and unicodedata.normalize("NFKC", wide) == TEXT
    # Homoglyphs are different letters: no normalisation form maps them back.
    glyphs = T.homoglyphs(0.3, seed=0)(TEXT)
    assert len(glyphs) == len(TEXT) and glyphs != TEXT
    assert unicodedata.normalize("NFKC", glyphs) != TEXT
    changed = sum(a != b for a, b in zip(glyphs, TEXT, strict=True))
    candidates = sum(ch in T.HOMOGLYPHS for ch in TEXT)
    assert 0.2 * candidates < changed < 0.4 * candidates


def test_emoji_removal_and_prompt() -> None:
    assert T.remove_emoji()("Hello 👋 world 🌍! Thumbs 👍🏽 up ❤️ .") == "Hello world! Thumbs up."
    assert T.remove_emoji()(TEXT) == TEXT
    assert T.emoji_count("Hello 👋 world 🌍! Thumbs 👍🏽 up") == 3 and T.emoji_count(TEXT) == 0
    assert T.emoji_prompt("Why is the sky blue?").endswith(T.EMOJI_INSTRUCTION)
    # no space left before a line break; an emoji cut short by the token budget (U+FFFD) goes too
    assert T.remove_emoji()("The 🙂 sea 🌟\n\nIt 🔥 is \ufffd") == "The sea\n\nIt is"
    assert T.emoji_count("It 🔥 is \ufffd") == 2


def test_chaining() -> None:
    a, b = T.delete_words(0.1, seed=1), T.case("upper")
    both = a + b
    assert both(TEXT) == b(a(TEXT))
    assert both.name == "delete 0.1 + upper".replace("upper", "case upper")
    assert T.chain(a, b, T.nfd()).many([TEXT, ACCENTED]) == [T.nfd()(b(a(t))) for t in (TEXT, ACCENTED)]
    assert T.chain()(TEXT) == TEXT
    with pytest.raises(ConfigError):
        T.delete_words(1.5)
