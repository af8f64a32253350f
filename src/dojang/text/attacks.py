"""What people do to generated text, as small composable callables for robustness benchmarks.

A :class:`TextAttack` maps a string to a string and has a name; ``a + b`` (or :func:`chain`)
runs one after the other. Attacks work on batches underneath (``attack.many(texts)``) so that
the ones that run a language model (:func:`paraphrase`) generate in batches. Every random choice
is drawn from a generator seeded by ``seed`` and the text itself: the same attack on the same
text always gives the same result, and different texts get different edits.

>>> from dojang.text.attacks import delete_words, homoglyphs
>>> edited = (delete_words(0.1, seed=1) + homoglyphs(0.05, seed=1))(text)   # doctest: +SKIP

Only :func:`substitute_tokens` (a tokenizer) and :func:`paraphrase` (a model) need more than the
standard library and numpy; they take the tokenizer or model as an argument.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dojang.errors import ConfigError

__all__ = [
    "EMOJI_INSTRUCTION",
    "TextAttack",
    "case",
    "chain",
    "copy_paste",
    "delete_words",
    "emoji_count",
    "emoji_prompt",
    "fullwidth",
    "homoglyphs",
    "identity",
    "insert_words",
    "nfd",
    "paraphrase",
    "remove_emoji",
    "substitute_tokens",
    "swap_words",
    "whitespace",
    "zero_width",
]

ZERO_WIDTH_SPACE = "\u200b"
EMOJI_INSTRUCTION = "Put an emoji after every word of your answer."
PARAPHRASE_INSTRUCTION = "Rewrite the following text in your own words. Keep its meaning and length.\n\n"

# Latin letters and the Cyrillic (or Greek) letters that look the same in most fonts.
HOMOGLYPHS = {
    "a": "\u0430", "c": "\u0441", "e": "\u0435", "i": "\u0456", "j": "\u0458", "o": "\u043e", "p": "\u0440",
    "s": "\u0455", "x": "\u0445", "y": "\u0443", "A": "\u0410", "B": "\u0412", "C": "\u0421", "E": "\u0415",
    "H": "\u041d", "I": "\u0406", "K": "\u041a", "M": "\u041c", "N": "\u039d", "O": "\u041e", "P": "\u0420",
    "T": "\u0422", "X": "\u0425", "Y": "\u03a5",
}  # fmt: skip

_EMOJI = re.compile(  # U+FFFD: an emoji cut short when an answer hit its token budget
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U00002b00-\U00002bff\U00002300-\U000023ff"
    "\U0001f1e6-\U0001f1ff\ufe0f\u200d\u20e3\ufffd]+"
)
_SPLIT = re.compile(r"(\s+)")


@dataclass(frozen=True)
class TextAttack:
    """A named text edit. ``fn`` edits a batch of texts (one output per input, same order)."""

    name: str
    fn: Callable[[list[str]], list[str]]

    def __call__(self, text: str) -> str:
        return self.fn([text])[0]

    def many(self, texts: Sequence[str]) -> list[str]:
        """Apply the attack to every text (in batches where the attack runs a model)."""
        out = self.fn(list(texts))
        if len(out) != len(texts):  # pragma: no cover - a broken custom attack
            raise ConfigError(f"attack {self.name!r} returned {len(out)} texts for {len(texts)}")
        return out

    def __add__(self, other: TextAttack) -> TextAttack:
        return chain(self, other)


def chain(*attacks: TextAttack) -> TextAttack:
    """Run ``attacks`` one after the other; the name joins theirs with ``+``."""
    if not attacks:
        return identity()

    def run(texts: list[str]) -> list[str]:
        for attack in attacks:
            texts = attack.fn(texts)
        return texts

    return TextAttack(" + ".join(a.name for a in attacks), run)


def _per_text(name: str, edit: Callable[[str], str]) -> TextAttack:
    return TextAttack(name, lambda texts: [edit(t) for t in texts])


def _rng(seed: int, text: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}: the fraction must lie in [0, 1], got {value}")
    return float(value)


def _words(text: str) -> tuple[list[str], list[str]]:
    """Words and the whitespace after each (the last separator may be empty); a leading
    separator is kept with an empty first word."""
    parts = _SPLIT.split(text)
    if len(parts) % 2:
        parts.append("")
    return parts[0::2], parts[1::2]


def _join(words: list[str], seps: list[str]) -> str:
    return "".join(w + s for w, s in zip(words, seps, strict=True))


def identity() -> TextAttack:
    return _per_text("none", lambda t: t)


# -- edits of words and tokens ----------------------------------------------------------------
def substitute_tokens(fraction: float, *, tokenizer: Any, seed: int = 0) -> TextAttack:
    """Replace ``fraction`` of the tokens with tokens drawn uniformly from the vocabulary."""
    fraction = _fraction("substitute", fraction)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab = len(tokenizer)

    def edit(text: str) -> str:
        rng = _rng(seed, text)
        ids = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
        where = rng.random(ids.size) < fraction
        new = rng.integers(0, vocab, size=ids.size)
        for j in np.flatnonzero(np.isin(new, list(special))) if special else ():
            new[j] = (new[j] + 1) % vocab
        ids[where] = new[where]
        return str(tokenizer.decode(ids.tolist(), skip_special_tokens=True))

    return _per_text(f"substitute {fraction:g}", edit)


def delete_words(fraction: float, *, seed: int = 0) -> TextAttack:
    """Delete ``fraction`` of the words (with the space after each)."""
    fraction = _fraction("delete", fraction)

    def edit(text: str) -> str:
        words, seps = _words(text)
        drop = _rng(seed, text).random(len(words)) < fraction
        kept = [(w, s) for w, s, d in zip(words, seps, drop, strict=True) if not d or not w]
        return _join([w for w, _ in kept], [s for _, s in kept]).strip()

    return _per_text(f"delete {fraction:g}", edit)


def insert_words(fraction: float, *, seed: int = 0) -> TextAttack:
    """Insert ``fraction`` x (number of words) extra words, copies of random words of the same
    text, at random places (works in any language)."""
    fraction = _fraction("insert", fraction)

    def edit(text: str) -> str:
        words, seps = _words(text)
        pool = [w for w in words if w]
        if not pool:
            return text
        rng = _rng(seed, text)
        for _ in range(round(fraction * len(pool))):
            at = int(rng.integers(0, len(words) + 1))
            if at and not seps[at - 1]:  # inserting after the last word: it needs a space before
                seps[at - 1] = " "
            words.insert(at, pool[int(rng.integers(0, len(pool)))])
            seps.insert(at, " " if at < len(words) - 1 else "")
        return _join(words, seps).strip()

    return _per_text(f"insert {fraction:g}", edit)


def swap_words(fraction: float, *, seed: int = 0) -> TextAttack:
    """Swap ``fraction`` of the words with their right-hand neighbour."""
    fraction = _fraction("swap", fraction)

    def edit(text: str) -> str:
        words, seps = _words(text)
        rng = _rng(seed, text)
        for i in np.flatnonzero(rng.random(max(len(words) - 1, 0)) < fraction):
            words[i], words[i + 1] = words[i + 1], words[i]
        return _join(words, seps)

    return _per_text(f"swap {fraction:g}", edit)


def copy_paste(fraction: float, *, human_texts: Sequence[str], seed: int = 0) -> TextAttack:
    """Paste the text into human-written text so that it makes up ``fraction`` of the words of the
    result, at a random place (the human words come from ``human_texts``, chosen at random)."""
    fraction = _fraction("copy_paste", fraction)
    if fraction == 0.0:
        raise ConfigError("copy_paste: the fraction of AI text must be above 0")
    pool = [t for t in human_texts if t.strip()]
    if not pool:
        raise ConfigError("copy_paste needs at least one human text")

    def edit(text: str) -> str:
        rng = _rng(seed, text)
        ai_words = len(text.split())
        need = round(ai_words * (1.0 - fraction) / fraction)
        human: list[str] = []
        while len(human) < need:
            human += pool[int(rng.integers(0, len(pool)))].split()
        human = human[:need]
        at = int(rng.integers(0, need + 1))
        return " ".join([*human[:at], text.strip(), *human[at:]])

    return _per_text(f"copy_paste {fraction:g}", edit)


# -- surface changes ---------------------------------------------------------------------------
CASES = ("lower", "upper", "title", "swap")


def case(mode: str = "lower") -> TextAttack:
    """Change letter case: ``lower``, ``upper``, ``title`` or ``swap``."""
    if mode not in CASES:
        raise ConfigError(f"case: mode must be one of {', '.join(CASES)}, got {mode!r}")
    edit: Callable[[str], str] = getattr(str, mode if mode != "swap" else "swapcase")
    return _per_text(f"case {mode}", edit)


def whitespace(fraction: float = 0.5, *, seed: int = 0) -> TextAttack:
    """Replace ``fraction`` of the spaces with a double space, a newline or a tab."""
    fraction = _fraction("whitespace", fraction)
    choices = ("  ", "\n", "\t")

    def edit(text: str) -> str:
        rng = _rng(seed, text)
        return "".join(choices[int(rng.integers(0, 3))] if ch == " " and rng.random() < fraction else ch for ch in text)

    return _per_text(f"whitespace {fraction:g}", edit)


# -- Unicode tricks ------------------------------------------------------------------------------
def homoglyphs(fraction: float = 0.1, *, seed: int = 0) -> TextAttack:
    """Replace ``fraction`` of the Latin letters that have a Cyrillic or Greek look-alike."""
    fraction = _fraction("homoglyphs", fraction)

    def edit(text: str) -> str:
        rng = _rng(seed, text)
        return "".join(HOMOGLYPHS[ch] if ch in HOMOGLYPHS and rng.random() < fraction else ch for ch in text)

    return _per_text(f"homoglyphs {fraction:g}", edit)


def zero_width(fraction: float = 0.1, *, seed: int = 0) -> TextAttack:
    """Insert a zero-width space (U+200B) after ``fraction`` of the visible characters."""
    fraction = _fraction("zero_width", fraction)

    def edit(text: str) -> str:
        rng = _rng(seed, text)
        return "".join(ch + ZERO_WIDTH_SPACE if not ch.isspace() and rng.random() < fraction else ch for ch in text)

    return _per_text(f"zero_width {fraction:g}", edit)


def nfd() -> TextAttack:
    """Decompose to Unicode NFD (accents and Hangul syllables become combining sequences)."""
    return _per_text("nfd", lambda t: unicodedata.normalize("NFD", t))


def fullwidth(fraction: float = 1.0, *, seed: int = 0) -> TextAttack:
    """Turn ``fraction`` of the printable ASCII characters into their full-width forms (U+FF01..)."""
    fraction = _fraction("fullwidth", fraction)

    def edit(text: str) -> str:
        rng = _rng(seed, text)
        return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" and rng.random() < fraction else ch for ch in text)

    return _per_text(f"fullwidth {fraction:g}", edit)


# -- language-model attacks ------------------------------------------------------------------------
def paraphrase(
    *,
    model: Any,
    tokenizer: Any,
    temperature: float = 0.7,
    seed: int = 0,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
) -> TextAttack:
    """Ask a language model (without any watermark) to rewrite each text in its own words.
    ``max_new_tokens`` defaults to 1.3x the longest input (in tokens)."""
    from dojang.text.generate import generate_batch

    def run(texts: list[str]) -> list[str]:
        if not texts:
            return []
        budget = max_new_tokens or max(16, round(1.3 * max(len(tokenizer(t)["input_ids"]) for t in texts)))
        prompts = [PARAPHRASE_INSTRUCTION + t for t in texts]
        gens = generate_batch(
            prompts, key=None, model=model, tokenizer=tokenizer, max_new_tokens=budget,
            temperature=temperature, seed=seed, batch_size=batch_size,
        )  # fmt: skip
        return [g.text for g in gens]

    return TextAttack("paraphrase", run)


def emoji_prompt(prompt: str) -> str:
    """The emoji attack's prompt: the user asks for an emoji after every word (the answer is then
    generated with the watermark, and :func:`remove_emoji` cleans it)."""
    return f"{prompt.rstrip()} {EMOJI_INSTRUCTION}"


def emoji_count(text: str) -> int:
    """How many emoji ``text`` holds (a modified or joined emoji counts once per run of symbols)."""
    return len(_EMOJI.findall(text))


def remove_emoji() -> TextAttack:
    """Delete emoji (and the joiners and variation selectors that build them, and the U+FFFD of
    one cut short), then tidy spaces: none before punctuation or a line break, never two."""

    def edit(text: str) -> str:
        text = re.sub(r"[ \t]+\n", "\n", _EMOJI.sub("", text))
        return re.sub(r"[ \t]{2,}", " ", re.sub(r" +([.,;:!?])", r"\1", text)).strip()

    return _per_text("remove_emoji", edit)
