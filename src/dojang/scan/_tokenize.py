"""Fast, exact tokenisation for scans: the byte-level BPE's pre-split in Python plus a word cache.

Measured on this project's 2-core machine, the fast tokenizer (``tokenizers``) spends most of
its time in its pre-tokenizer regex (~1,200 documents of 200 tokens per second per core). A
byte-level BPE tokenises each pre-token on its own, so the ids of a document are the
concatenation of the ids of its pre-tokens: this module splits with the same GPT-2 pattern
(stdlib ``re`` for ASCII text, the ``regex`` module otherwise), looks every pre-token up in a
cache, and asks the BPE model only for pre-tokens it has not seen. ~3-4x faster, and the same
ids: ``tests/test_scan_tokenize.py`` checks it against the Rust tokenizer on the whole shipped
corpus (English and Korean).

It is used only for tokenizers it provably matches (no normaliser, a plain ByteLevel
pre-tokenizer with the GPT-2 regex, BPE without dropout); documents that contain an added
token's text (``<|im_start|>`` and the like) go to the Rust tokenizer, which splits those first.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray

_GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# The same pattern for pure-ASCII text: letters, digits and Unicode White_Space restricted to
# ASCII (tab .. carriage return and space; not \x1c-\x1f, which Python's \s would take).
_WS = r"\t\n\x0b\x0c\r "
_ASCII = re.compile(rf"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^{_WS}A-Za-z0-9]+|[{_WS}]+(?![^{_WS}])|[{_WS}]+""")
_CACHE_LIMIT = 500_000  # pre-tokens; the cache is emptied when it grows past this


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's map from bytes to printable characters (what ByteLevel feeds the BPE model)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_B2U = _byte_to_unicode()


_CLASSES: bytes | None = None


def class_table() -> bytes:
    """One byte per code point for the compiled pre-split: 0 other, 1 letter (``\\p{L}``), 2 number
    (``\\p{N}``), 3 white space (``\\s``), each as the ``regex`` module decides it (~0.3 s, once)."""
    global _CLASSES
    if _CLASSES is None:
        import regex

        every = "".join(map(chr, range(0x110000)))
        table = bytearray(0x110000)
        for cls, pattern in ((1, r"\p{L}+"), (2, r"\p{N}+"), (3, r"\s+")):
            for m in regex.finditer(pattern, every):
                table[m.start() : m.end()] = bytes([cls]) * (m.end() - m.start())
        _CLASSES = bytes(table)
    return _CLASSES


def compiled() -> Any:
    """The compiled loops (``dojang.scan._fast``), or None where the extension was not built."""
    import importlib

    try:
        return importlib.import_module("dojang.scan._fast")
    except ImportError:
        return None


class FastEncoder:
    """``encode(texts) -> list of id lists``, equal to ``tokenizer.encode_batch(texts,
    add_special_tokens=False)`` ids; ``encode_flat(texts) -> (ids, lengths)`` gives the same ids
    as one int64 array (the compiled pre-split when it is built). Build it with :func:`fast_encoder`."""

    def __init__(
        self, tokenizer: Any, added: Sequence[str], *, cache_limit: int = _CACHE_LIMIT, spec: dict[str, Any] | None = None
    ) -> None:
        import regex

        self._tokenizer = tokenizer
        self._model = tokenizer.model
        self._unicode = regex.compile(_GPT2)
        self._added = re.compile("|".join(re.escape(a) for a in sorted(added, key=len, reverse=True))) if added else None
        self._cache: dict[str, list[int]] = {}
        self._fast = compiled()
        self._pieces: Any = self._fast.cache_new(cache_limit) if self._fast is not None else None  # compiled path's cache
        self._merges: Any = self._merge_table(spec or json.loads(tokenizer.to_str())) if self._fast is not None else None

    def _merge_table(self, tokenizer_spec: dict[str, Any]) -> Any:
        """The BPE's merges for the compiled path (None when they cannot be read: the Rust model
        then merges every new piece). ``tokenizer_spec``: the tokenizer's parsed JSON."""
        spec = tokenizer_spec["model"]
        vocab: dict[str, int] = spec["vocab"]
        try:
            byte_ids = array("q", (vocab.get(_B2U[b], -1) for b in range(256)))  # -1: dropped, as Rust does
            triples = array("q")
            for merge in spec["merges"]:
                left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
                triples.extend((vocab[left], vocab[right], vocab[left + right]))
        except (KeyError, ValueError, TypeError):
            return None
        return self._fast.bpe_build(byte_ids.tobytes(), triples.tobytes())

    def _bpe_packed(self, piece: str) -> bytes:
        """A new piece's ids for the compiled path, when it does not merge the piece itself."""
        return array("q", self._bpe(piece)).tobytes()

    def encode_flat(self, texts: Sequence[str]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(ids of all texts, concatenated; number of ids of each text)."""
        if self._fast is None:
            return _flatten(self.encode(texts))
        special = {i for i, t in enumerate(texts) if self._added is not None and self._added.search(t)}
        plain = [t for i, t in enumerate(texts) if i not in special] if special else texts
        raw_ids, raw_lengths = self._fast.pretokenize_encode(plain, class_table(), self._pieces, self._bpe_packed, self._merges)
        ids, lengths = np.frombuffer(raw_ids, dtype=np.int64), np.frombuffer(raw_lengths, dtype=np.int64)
        if not special:
            return ids, lengths
        # texts holding an added token's text go to the Rust tokenizer, which splits those first
        order = sorted(special)
        rust = self._tokenizer.encode_batch([texts[i] for i in order], add_special_tokens=False)
        by_index = {i: np.asarray(enc.ids, dtype=np.int64) for i, enc in zip(order, rust, strict=True)}
        parts = np.split(ids, np.cumsum(lengths)[:-1]) if len(plain) else []
        it = iter(parts)
        return _flatten([by_index[i] if i in by_index else next(it) for i in range(len(texts))])

    def _bpe(self, piece: str) -> list[int]:
        ids = [t.id for t in self._model.tokenize("".join(_B2U[b] for b in piece.encode("utf-8")))]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[piece] = ids
        return ids

    def _one(self, text: str) -> list[int]:
        pieces = _ASCII.findall(text) if text.isascii() else self._unicode.findall(text)
        found = list(map(self._cache.get, pieces))
        if None in found:
            found = [ids if ids is not None else self._bpe(p) for p, ids in zip(pieces, found, strict=True)]
        return list(chain.from_iterable(found))  # type: ignore[arg-type]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        out: list[list[int] | None] = [None] * len(texts)
        special: list[int] = []
        for i, text in enumerate(texts):
            if self._added is not None and self._added.search(text):
                special.append(i)
            else:
                out[i] = self._one(text)
        if special:
            encoded = self._tokenizer.encode_batch([texts[i] for i in special], add_special_tokens=False)
            for i, enc in zip(special, encoded, strict=True):
                out[i] = enc.ids
        return out  # type: ignore[return-value]


def fast_encoder(tokenizer: Any, tokenizer_json: str) -> Callable[[Sequence[str]], list[list[int]]]:
    """The fast path when ``tokenizer`` is a byte-level BPE it matches exactly, else the
    tokenizer's own batch encoder."""

    def rust(texts: Sequence[str]) -> list[list[int]]:
        fast = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # no offsets: faster
        return [enc.ids for enc in fast(list(texts), add_special_tokens=False)]

    spec = json.loads(tokenizer_json)
    pre = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    plain = (
        spec.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
        and not pre.get("add_prefix_space", False)
        and model.get("type") == "BPE"
        and not model.get("dropout")
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
    )
    try:
        import regex  # noqa: F401  (a dependency of transformers)
    except ImportError:
        plain = False
    if not plain:
        return rust
    added = [t["content"] for t in spec.get("added_tokens", []) if t.get("content")]
    return FastEncoder(tokenizer, added, spec=spec).encode


def _flatten(encoded: Sequence[Sequence[int]] | Sequence[NDArray[np.int64]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    if not len(encoded):
        return np.zeros(0, dtype=np.int64), lengths
    return np.concatenate([np.asarray(e, dtype=np.int64) for e in encoded]), lengths


def flat_encoder(tokenizer: Any, tokenizer_json: str) -> Callable[[Sequence[str]], tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Like :func:`fast_encoder`, but ``texts -> (ids of all texts concatenated, ids per text)``."""
    encode = fast_encoder(tokenizer, tokenizer_json)
    owner = getattr(encode, "__self__", None)
    if isinstance(owner, FastEncoder):
        return owner.encode_flat

    def flat(texts: Sequence[str]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        return _flatten(encode(texts))

    return flat
