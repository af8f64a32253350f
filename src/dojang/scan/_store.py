"""Where a scan keeps its results: per-shard parts with completion markers, then one output.

Layout for ``--out results.parquet``::

    results.parquet.parts/plan.json          what this scan is (inputs, shards, key ids, options)
    results.parquet.parts/00012.parquet      rows of shard 12
    results.parquet.parts/00012.done         shard 12 is complete (its counts, as JSON)
    results.parquet                          written as results.parquet.partial, renamed when whole
    results.parquet.summary.json             the summary, written after the output

A shard counts as done only once its marker exists, and the marker is written (atomically)
after its rows; the output file appears only by a rename once every row is in it. So an
interrupted scan leaves either the finished output or a parts folder to resume from, never a
partial file under the output's name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dojang.errors import ConfigError, InputError
from dojang.scan._deps import require
from dojang.scan._inputs import Shard
from dojang.scan._score import ROW_FIELDS

log = logging.getLogger(__name__)

VERDICTS = ("detected", "not_detected", "inconclusive")


def row_schema() -> Any:
    pa = require("pyarrow")
    types = {"p_value": pa.float64(), "log10_p_value": pa.float64(), "tokens_scored": pa.int64()}
    return pa.schema([(name, types.get(name, pa.string())) for name in ROW_FIELDS])


def counts_of(table: Any) -> dict[str, Any]:
    """Counts per verdict and detections per key in a shard's rows."""
    verdict_col = table.column("verdict").to_pylist()
    verdicts = Counter(v for v in verdict_col if v is not None)
    errors = sum(1 for e in table.column("error").to_pylist() if e is not None)
    pairs = list(zip(verdict_col, table.column("key_id").to_pylist(), strict=True))
    by_key = Counter(k for v, k in pairs if v == "detected" and k is not None)
    # images with a keyed pattern but no payload that verifies (an average or a forgery): inconclusive, counted apart
    pattern_only = sum(1 for v, k in pairs if v == "inconclusive" and k is not None)
    return {"items": table.num_rows, "errors": errors, **{v: verdicts.get(v, 0) for v in VERDICTS}, "by_key": dict(by_key),
            "keyed_pattern_only": pattern_only}  # fmt: skip


@dataclass
class ScanSummary:
    """Counts over a whole scan. ``expected_false_positives`` is alpha x items: how many items
    the scan would flag if none carried a mark."""

    items: int = 0
    detected: int = 0
    not_detected: int = 0
    inconclusive: int = 0
    keyed_pattern_only: int = 0  # of the inconclusive: images with a keyed pattern but no payload that verifies
    errors: int = 0
    alpha: float = 0.0
    by_key: dict[str, int] = field(default_factory=dict)
    output: str | None = None
    shards: int = 0
    shards_resumed: int = 0  # finished by an earlier, interrupted run and not redone
    seconds: float = 0.0

    @property
    def expected_false_positives(self) -> float:
        return self.alpha * self.items

    def add(self, counts: dict[str, Any]) -> None:
        self.items += counts["items"]
        self.errors += counts["errors"]
        self.detected += counts["detected"]
        self.not_detected += counts["not_detected"]
        self.inconclusive += counts["inconclusive"]
        self.keyed_pattern_only += counts.get("keyed_pattern_only", 0)
        for key_id, n in counts["by_key"].items():
            self.by_key[key_id] = self.by_key.get(key_id, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "detected": self.detected,
            "not_detected": self.not_detected,
            "inconclusive": self.inconclusive,
            "keyed_pattern_only": self.keyed_pattern_only,
            "errors": self.errors,
            "expected_false_positives": self.expected_false_positives,
            "fpr": self.alpha,
            "detected_by_key": dict(sorted(self.by_key.items())),
            "output": self.output,
            "shards": self.shards,
            "shards_resumed": self.shards_resumed,
            "seconds": round(self.seconds, 3),
        }


def output_format(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise InputError(f"{out}: the output must end in .parquet or .jsonl")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Store:
    """The parts folder of one scan."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.fmt = output_format(out)
        self.parts = out.with_name(out.name + ".parts")
        self.summary_path = out.with_name(out.name + ".summary.json")

    def open(self, plan: dict[str, Any]) -> set[int]:
        """Start or resume: returns the indices of shards already done. A parts folder left by a
        different scan (other inputs, keys or options) is refused, never mixed in."""
        fingerprint = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
        plan_file = self.parts / "plan.json"
        if self.parts.exists():
            try:
                old = json.loads(plan_file.read_text(encoding="utf-8")).get("fingerprint")
            except (OSError, ValueError):
                old = None
            stale = old is None and not any(self.parts.glob("*.done"))  # stopped before its plan was written
            if old != fingerprint and not stale:
                raise ConfigError(
                    f"{self.parts} holds the unfinished parts of a different scan (other inputs, keys or options); "
                    "rerun that scan to finish it, or remove the folder"
                )
            if stale:
                _atomic_write(plan_file, json.dumps({"fingerprint": fingerprint, **plan}, indent=1).encode())
            done = {int(p.stem) for p in self.parts.glob("*.done")}
            if done:
                log.info("resuming: %d shard(s) already done in %s", len(done), self.parts)
            return done
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.parts.mkdir()
        _atomic_write(plan_file, json.dumps({"fingerprint": fingerprint, **plan}, indent=1).encode())
        return set()

    def counts(self, index: int) -> dict[str, Any]:
        return json.loads((self.parts / f"{index:05d}.done").read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def write_shard(self, index: int, table: Any) -> dict[str, Any]:
        """Write one shard's rows, then its marker; returns its counts."""
        pq = require("pyarrow.parquet")
        part = self.parts / f"{index:05d}.parquet"
        tmp = part.with_name(part.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, part)
        counts = counts_of(table)
        _atomic_write(self.parts / f"{index:05d}.done", json.dumps(counts).encode())
        return counts

    def finish(self, shards: list[Shard], summary: ScanSummary) -> None:
        """Join the parts in shard order into the output (via a temporary name), write the
        summary, remove the parts."""
        pq = require("pyarrow.parquet")
        tmp = self.out.with_name(self.out.name + ".partial")
        if self.fmt == "parquet":
            with pq.ParquetWriter(tmp, row_schema()) as writer:
                for shard in shards:
                    writer.write_table(pq.read_table(self.parts / f"{shard.index:05d}.parquet", schema=row_schema()))
        else:
            with open(tmp, "w", encoding="utf-8") as handle:
                for shard in shards:
                    for row in pq.read_table(self.parts / f"{shard.index:05d}.parquet").to_pylist():
                        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, self.out)
        summary.output = str(self.out)
        _atomic_write(self.summary_path, (json.dumps(summary.to_dict(), indent=1) + "\n").encode())
        shutil.rmtree(self.parts, ignore_errors=True)
