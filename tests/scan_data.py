"""Real inputs for the scan tests: texts stamped by the real watermark processor (through a tiny
model over the real vocabulary), human texts from the shipped corpus, real photographs."""

from __future__ import annotations

import gzip
import json
import os
import signal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from dojang.scan import Scorer
from tests.helpers import fixed_key

MARK_KEY = 1  # fixed_key(MARK_KEY) stamped the marked texts and images
OTHER_KEY = 2


@cache
def human_texts() -> tuple[str, ...]:
    """Every text of the shipped human corpus (English and Korean), in file order."""
    path = resources.files("dojang") / "data" / "human_corpus.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as handle:
        return tuple(json.loads(line)["text"] for line in handle)


def human_sample(n: int, chars: int = 1200) -> list[str]:
    """``n`` human texts, English and Korean interleaved, cut to about ``chars`` characters."""
    texts = human_texts()
    ko = [t for t in texts if any("\uac00" <= c <= "\ud7a3" for c in t[:200])]
    en = [t for t in texts if t not in set(ko[: n // 4 + 1])]
    picked = [*ko[: n // 4], *en[: n - n // 4]]
    return [t[:chars] for t in picked]


_MARKED: dict[int, list[str]] = {}


def make_marked(tiny_model: Any, tokenizer: Any, n: int = 6) -> list[str]:
    """``n`` (at most 6) texts of 150 tokens stamped under fixed_key(MARK_KEY); made once per model."""
    if id(tiny_model) not in _MARKED:
        _MARKED[id(tiny_model)] = _generate(tiny_model, tokenizer)
    return _MARKED[id(tiny_model)][:n]


def _generate(tiny_model: Any, tokenizer: Any) -> list[str]:
    from dojang.text import generate_batch

    prompts = [f"Story {i}:" for i in range(6)]
    gens = generate_batch(
        prompts,
        key=fixed_key(MARK_KEY),
        scheme="default",
        model=tiny_model,
        tokenizer=tokenizer,
        max_new_tokens=150,
        temperature=1.0,
        seed=7,
        chat=False,
    )
    return [g.text for g in gens]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for r in records:
            handle.write((json.dumps(r, ensure_ascii=False) if not isinstance(r, str) else r) + "\n")
    return path


KILL_TEXT = "KILL-THIS-WORKER"


class DyingScorer(Scorer):
    """A scorer whose worker process is killed outright (as the kernel's out-of-memory killer
    does) on any shard holding ``KILL_TEXT``; spawned workers import it from here."""

    def score_table(self, items: Any) -> Any:
        if any(item.content == KILL_TEXT for item in items):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().score_table(items)
