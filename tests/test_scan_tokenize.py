"""The scan's fast tokenisation gives exactly the ids of the Rust tokenizer."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from dojang.scan._score import default_tokenizer_json
from dojang.scan._tokenize import FastEncoder, fast_encoder
from tests.scan_data import human_texts

EDGE_CASES = [
    "<|im_start|>user\nhello<|im_end|> and plain text after",  # added tokens: the Rust path
    "tab\tand  double   spaces\n\n  leading\r\nCRLF  \n",
    "separators \x1c\x1d\x1e\x1f are not whitespace; \x0b\x0c are",
    "\u00a0no-break\u3000ideographic\u2028line\u2029para\u200bzero-width",
    "emoji 👍🏽 family 👨‍👩‍👧 flags 🇰🇷🇫🇷",
    "numbers 1234567 3.14 ½ ² ٣ ௫ and digits1234letters",
    "contractions it's I'M we've they'll you'd 'S 'RE",
    "combining e\u0301 vs é; Hangul jamo \u1100\u1161 vs 가",
    "العربية हिन्दी ไทย Ελληνικά русский 日本語の文章",
    "   ",
    " x",
    "trailing spaces   ",
    "!!!??? ... --- *** ```code``` {json: [1, 2]}",
]


@pytest.fixture(scope="module")
def rust_and_fast():
    spec = default_tokenizer_json()
    tok = Tokenizer.from_str(spec)
    encode = fast_encoder(tok, spec)
    assert isinstance(getattr(encode, "__self__", None), FastEncoder)  # the fast path is the one in use
    return tok, encode


def _rust(tok, texts):  # type: ignore[no-untyped-def]
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def test_same_ids_on_edge_cases(rust_and_fast) -> None:
    tok, encode = rust_and_fast
    assert encode(EDGE_CASES) == _rust(tok, EDGE_CASES)
    assert encode(EDGE_CASES) == _rust(tok, EDGE_CASES)  # again, from the warm cache


def test_same_ids_on_the_shipped_corpus(rust_and_fast) -> None:
    """Every third Korean text and every tenth English one from the shipped human corpus, cut to
    1,500 characters (~2,000 texts, ~0.6M tokens)."""
    tok, encode = rust_and_fast
    texts = [t[:1500] for i, t in enumerate(human_texts()) if i % (10 if t[:50].isascii() else 3) == 0]
    assert len(texts) > 1500
    assert encode(texts) == _rust(tok, texts)


def test_other_tokenizers_use_the_rust_path() -> None:
    from tokenizers import models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    encode = fast_encoder(tok, tok.to_str())
    assert not isinstance(getattr(encode, "__self__", None), FastEncoder)
    assert encode(["a b a"]) == [[1, 0, 1]]
