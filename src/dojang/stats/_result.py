"""The one result type every dojang detector returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dojang.stats._tails import to_p_value


class Verdict(str, Enum):
    """Three states: a mark was found, it was looked for and not found, or there was too little
    content to tell."""

    DETECTED = "detected"
    NOT_DETECTED = "not_detected"
    INCONCLUSIVE = "inconclusive"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Span:
    """A marked part of a document: character offsets ``[start, end)`` and its scan-corrected
    p-value."""

    start: int
    end: int
    log_p_value: float

    @property
    def p_value(self) -> float:
        return to_p_value(self.log_p_value)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "p_value": self.p_value}


@dataclass(frozen=True, slots=True)
class Detection:
    """What a detector says about one piece of content.

    ``log_p_value`` is the natural log of the false-positive probability: the chance that content
    made without the key scores at least this high, already corrected for the number of keys
    tried and for the span scan. ``p_value`` is its exponential (0.0 only below 1e-323);
    ``log10_p_value`` stays exact at any depth. ``key_id`` names the key that matched best
    (None when no key was tried); the key's secret is never part of a result.
    """

    scheme: str
    verdict: Verdict
    log_p_value: float
    tokens_scored: int
    statistic: float
    key_id: str | None
    alpha: float
    keys_tried: int = 1
    spans: tuple[Span, ...] = field(default=())
    payload: bytes | None = None  # image marks: the decoded payload (only when detected)
    bit_errors_corrected: int | None = None  # image marks: payload bits the code had to correct
    reason: str | None = None  # why a verdict is inconclusive ("could not be read"), in words
    # image marks: a keyed pattern (the sync layer) was seen, whether or not a payload verified;
    # inconclusive with this set means "pattern without a valid payload" (an average or a forgery)
    keyed_pattern_seen: bool | None = None

    @property
    def p_value(self) -> float:
        return to_p_value(self.log_p_value)

    @property
    def log10_p_value(self) -> float:
        return self.log_p_value / math.log(10.0)

    @property
    def detected(self) -> bool:
        return self.verdict is Verdict.DETECTED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the contract keys (verdict, p_value, tokens_scored, scheme,
        key_id, spans) and a few more; image results carry payload and bit_errors_corrected."""
        out: dict[str, Any] = {
            "verdict": self.verdict.value,
            "p_value": self.p_value,
            "log10_p_value": self.log10_p_value,
            "tokens_scored": self.tokens_scored,
            "scheme": self.scheme,
            "key_id": self.key_id,
            "statistic": self.statistic,
            "alpha": self.alpha,
            "keys_tried": self.keys_tried,
            "spans": [s.to_dict() for s in self.spans],
        }
        if self.scheme.startswith("image"):
            out["payload"] = self.payload.hex() if self.payload is not None else None
            out["bit_errors_corrected"] = self.bit_errors_corrected
            out["payload_verified"] = self.payload is not None and self.verdict is Verdict.DETECTED
            out["keyed_pattern_seen"] = bool(self.keyed_pattern_seen)
            del out["spans"]
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def decide(log_p_value: float, *, alpha: float, tokens_scored: int, min_tokens: int) -> Verdict:
    """Detected when p <= alpha; otherwise inconclusive when fewer than ``min_tokens`` tokens
    could be scored, else not detected."""
    if log_p_value <= math.log(alpha):
        return Verdict.DETECTED
    if tokens_scored < min_tokens:
        return Verdict.INCONCLUSIVE
    return Verdict.NOT_DETECTED
