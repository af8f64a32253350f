"""The human reference corpus that ships with dojang, for honest false-positive measurement.

``src/dojang/data/human_corpus.jsonl.gz``: English and Korean texts in several genres (news,
fiction, technical, code, legal, repetitive), one JSON object per line; the sources and their
licences are listed in ``CORPUS_LICENCES.md`` beside it. None of it was made with a dojang key,
so every p-value measured on it is a draw from the null.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["HumanText", "load_human_corpus"]


@dataclass(frozen=True, slots=True)
class HumanText:
    """One human-written text: its id, language (``en``/``ko``), genre, source and licence."""

    id: str
    lang: str
    genre: str
    source: str
    licence: str
    text: str


@lru_cache(maxsize=1)
def _all() -> tuple[HumanText, ...]:
    path = resources.files("dojang") / "data" / "human_corpus.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return tuple(HumanText(**{k: str(r[k]) for k in ("id", "lang", "genre", "source", "licence", "text")}) for r in rows)


def load_human_corpus(*, langs: Iterable[str] | None = None, genres: Iterable[str] | None = None) -> list[HumanText]:
    """The shipped human texts, optionally only some languages and genres (in file order)."""
    lang_set = set(langs) if langs is not None else None
    genre_set = set(genres) if genres is not None else None
    return [t for t in _all() if (lang_set is None or t.lang in lang_set) and (genre_set is None or t.genre in genre_set)]
