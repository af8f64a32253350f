"""``scan``: check a corpus for dojang marks, resumably, with the local or the Ray engine."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dojang.errors import ConfigError
from dojang.keys import Key, KeyRing
from dojang.scan._engines import ENGINES, run_local, run_ray
from dojang.scan._inputs import plan
from dojang.scan._score import DEFAULT_FPR, Scorer, default_tokenizer_json
from dojang.scan._store import ScanSummary, Store

log = logging.getLogger(__name__)

DEFAULT_OUT = "scan-results.parquet"


def scan(
    inputs: Sequence[str],
    keys: Key | KeyRing | Sequence[Key],
    *,
    out: str | os.PathLike[str] = DEFAULT_OUT,
    engine: str = "local",
    alpha: float = DEFAULT_FPR,
    text_column: str | None = None,
    id_column: str | None = None,
    schemes: Sequence[str] = (),
    spans: bool = False,
    canonical: bool = False,
    image_search: bool = True,
    workers: int | None = None,
    ray_address: str | None = None,
    rows_per_shard: int = 10_000,
    images_per_shard: int = 32,
    tokenizer_json: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> ScanSummary:
    """Scan ``inputs`` (paths or fsspec URLs) under ``keys`` and write one row per item to
    ``out`` (.parquet or .jsonl); returns the summary.

    ``alpha`` is the false-positive rate per item (default 1e-9). ``id_column`` names each row of
    a table by its value in that column or field (rows without one keep ``file#row``/``file:line``). An interrupted scan called
    again with the same arguments resumes: shards already finished are not scored again.
    ``on_plan(items, items_already_done)`` is called once the inputs are planned and
    ``progress(shard_index, items)`` after each shard; both run in this process (a progress
    hook that raises stops the scan, leaving the finished shards for a resume).
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if rows_per_shard < 1 or images_per_shard < 1:
        raise ConfigError("shard sizes must be positive")
    start = time.perf_counter()
    scorer = Scorer(
        keys=KeyRing.coerce(keys),
        alpha=alpha,
        schemes=tuple(schemes),
        spans=spans,
        canonical=canonical,
        image_search=image_search,
    )
    store = Store(Path(out))
    shards, files = plan(
        list(inputs),
        text_column=text_column,
        id_column=id_column,
        rows_per_shard=rows_per_shard,
        images_per_shard=images_per_shard,
    )
    if any(s.fmt != "files" or any(not _is_image(f) for f in s.files) for s in shards):
        scorer = dataclasses.replace(scorer, tokenizer_json=tokenizer_json or default_tokenizer_json())
    description: dict[str, Any] = {
        "inputs": list(inputs),
        "files": files,
        "shards": [s.to_dict() for s in shards],
        "scorer": scorer.identity(),
    }
    done = store.open(description)
    summary = ScanSummary(alpha=alpha, shards=len(shards), shards_resumed=len(done))
    for index in sorted(done):
        summary.add(store.counts(index))
    pending = [s for s in shards if s.index not in done]
    if on_plan is not None:
        on_plan(sum(s.count for s in shards), summary.items)
    log.info("scan: %d shard(s), %d to do, engine %s, %s", len(shards), len(pending), engine, scorer)

    def on_done(index: int, table: Any) -> None:
        summary.add(store.write_shard(index, table))
        if progress is not None:
            progress(index, table.num_rows)

    if pending:
        if engine == "ray":
            run_ray(scorer, pending, on_done, address=ray_address)
        else:
            run_local(scorer, pending, on_done, workers=workers)
    summary.seconds = time.perf_counter() - start
    store.finish(shards, summary)
    return summary


def _is_image(url: str) -> bool:
    from dojang.scan._inputs import IMAGE_SUFFIXES, _suffix

    return _suffix(url) in IMAGE_SUFFIXES
