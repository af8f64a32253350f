"""The canonical form detection also tries: what everyday and deliberate edits change but a reader
does not see.

* compatibility forms (full-width letters, ligatures, ...) folded by NFKC, per character;
* invisible characters removed: zero-width space/joiners, word joiner, BOM, soft hyphen, and the
  variation selectors (U+FE00-FE0F, U+E0100-E01EF) of which a C2PA text wrapper is built;
* every run of whitespace (spaces, tabs, newlines) becomes one space;
* Cyrillic and Greek look-alikes inside words that also hold Latin letters become Latin
  (mixed-script words, as Unicode TS #39 flags them); all-Cyrillic or all-Greek words stay.

:func:`canonicalize` also returns, for every character of the canonical text, the index of the
character of the input it came from, so spans found in the canonical text map back.
"""

from __future__ import annotations

import unicodedata

__all__ = ["canonicalize"]

INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e")
# Latin look-alikes (Unicode confusables for Latin in the Cyrillic and Greek blocks).
LOOKALIKES = {
    "а": "a", "в": "B", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j",
    "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "к": "k", "м": "M", "н": "H", "т": "T",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X",
    "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J",
    "ο": "o", "ν": "v", "ι": "i", "κ": "k", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "α": "a",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip


def _is_latin_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def canonicalize(text: str) -> tuple[str, list[int]]:
    """(canonical text, index into ``text`` of each canonical character)."""
    if text.isascii() and text.isprintable() and "  " not in text:
        # Printable ASCII without double spaces is its own canonical form: no invisible or
        # compatibility characters, no look-alikes, and its only whitespace is single spaces.
        return text, list(range(len(text)))
    return _canonicalize(text)


def _canonicalize(text: str) -> tuple[str, list[int]]:
    chars: list[str] = []
    index: list[int] = []
    word_start = 0  # position in ``chars`` where the current word began
    for i, ch in enumerate(text):
        if ch in INVISIBLE or "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef":
            continue
        for f in ch if ch.isascii() else unicodedata.normalize("NFKC", ch):
            if f.isspace():  # any whitespace, also what NFKC makes of U+3000 or NBSP: one space per run
                _fix_word(chars, word_start)
                if not chars or chars[-1] != " ":
                    chars.append(" ")
                    index.append(i)
                word_start = len(chars)
            else:
                chars.append(f)
                index.append(i)
    _fix_word(chars, word_start)
    return "".join(chars), index


def _fix_word(chars: list[str], start: int) -> None:
    """Map look-alikes to Latin in chars[start:] when that word also holds Latin letters."""
    word = chars[start:]
    if any(_is_latin_letter(c) for c in word) and any(c in LOOKALIKES for c in word):
        for j in range(start, len(chars)):
            chars[j] = LOOKALIKES.get(chars[j], chars[j])
