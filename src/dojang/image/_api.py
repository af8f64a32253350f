"""The image watermark's public face: embed, detect, and their file versions."""

from __future__ import annotations

import logging
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

from dojang.errors import DetectionError, InputError
from dojang.image import _codec, _io
from dojang.image._pattern import COARSE_VERSION, FINE_VERSION, LAYOUTS, LEGACY_VERSIONS, PAYLOAD_BITS
from dojang.keys import Key, KeyRing
from dojang.stats import Detection, Verdict

log = logging.getLogger(__name__)

PATTERN_REASON = (
    "a keyed pattern of this key is present, but no payload verifies: the image was not shown to be marked "
    "(an average of marked images, a forgery, or a mark damaged past reading)"
)
LEGACY_REASON = (
    "a format v1/v2 mark, which predates forgery resistance: its payload is not bound to this image's content "
    "and has no MAC, so a copy or an average of marked images can carry it"
)

SCHEME = "image/v3"
MIN_EMBED_SIDE = 256  # px on the short side
MIN_DETECT_SIDE = 128  # a 50% crop of the smallest image that can be marked
DEFAULT_ALPHA = 1e-6  # false-positive rate per image
STACK_ALPHA = 1e-9  # how sure embedding must be that a mark is already there before refusing
PAYLOAD_BYTES = PAYLOAD_BITS // 8
BOOSTS = (1.0, 1.2, 1.45, 1.75, 2.1)  # strengths tried in turn until the mark reads back
EDIT_ALPHA = _codec.EDIT_ALPHA  # how clearly the weakest everyday edit (_codec.log_p_weakest_edit) must read
# dB: raising the strength for robustness never takes a photo below this; a mark that does not
# read back at all may go under (the busiest textures: gravel)
PHOTO_MIN_PSNR = 38.0
FLOOR_MARGIN = 0.2  # dB: the last step for robustness aims this far above the promise (rounding and clipping)
FLOOR_STEP = 1.03  # the last step onto the floor is taken when it raises the strength at least this much
SMOOTH_MIN_PSNR = 45.0  # dB promised for smooth and flat images: robustness never buys strength past it
SPARE_ALPHA = 1e-14  # a mark whose weakest edit reads at least this clearly is tried lighter
MIN_BOUND = 0.02  # mean |content weight| (section 7) below which an image has no detail to bind a mark to
LIGHTER = (0.9, 0.8, 0.7)  # strength factors tried in turn (+0.9, +1.9, +3.1 dB)

ImageLike = TypeVar("ImageLike")


@dataclass(frozen=True)
class Embedded:
    """What :func:`embed_file` wrote: the payload used (hex), the key id and the quality figures."""

    path: str
    payload: bytes
    key_id: str
    version: int
    width: int
    height: int
    format: str
    psnr: float
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "payload": self.payload.hex(),
            "key_id": self.key_id,
            "version": self.version,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "psnr": round(self.psnr, 2),
            "verified": self.verified,
        }


def random_payload() -> bytes:
    """64 random bits, for a content id."""
    return secrets.token_bytes(PAYLOAD_BYTES)


def parse_payload(payload: bytes | str | int) -> bytes:
    """Accept 8 bytes, 16 hex digits (``0x`` optional) or an int below 2**64."""
    if isinstance(payload, bytes | bytearray):
        out = bytes(payload)
    elif isinstance(payload, str):
        text = payload.strip().lower().removeprefix("0x")
        if len(text) != 2 * PAYLOAD_BYTES or any(c not in "0123456789abcdef" for c in text):
            raise InputError(f"payload must be {2 * PAYLOAD_BYTES} hex digits ({PAYLOAD_BITS} bits), got {payload!r}")
        out = bytes.fromhex(text)
    elif isinstance(payload, int) and not isinstance(payload, bool):
        if not 0 <= payload < 1 << PAYLOAD_BITS:
            raise InputError(f"payload must be an integer in [0, 2**{PAYLOAD_BITS})")
        out = payload.to_bytes(PAYLOAD_BYTES, "big")
    else:
        raise InputError(f"payload must be bytes, a hex string or an int, not {type(payload).__name__}")
    if len(out) != PAYLOAD_BYTES:
        raise InputError(f"payload must be exactly {PAYLOAD_BYTES} bytes ({PAYLOAD_BITS} bits), got {len(out)}")
    return out


def _pixels(image: Any, name: str = "image") -> _io.Pixels:
    from PIL import Image

    if isinstance(image, _io.Pixels):
        return image
    if isinstance(image, Image.Image):
        return _io.from_pil(image, name=name)
    if isinstance(image, np.ndarray):
        return _io.from_array(image, name=name)
    if isinstance(image, str | os.PathLike):
        return _io.read(image)[0]
    raise InputError(f"{name}: expected a PIL image, a numpy array or a path, not {type(image).__name__}")


def _like(original: Any, px: _io.Pixels) -> Any:
    """Return marked pixels in the caller's type (PIL in, PIL out; array in, array out)."""
    if isinstance(original, np.ndarray):
        return px.colour if px.alpha is None else np.dstack([px.colour, px.alpha])
    return px.to_pil()


# -- embedding --------------------------------------------------------------------------------------
class Marked(NamedTuple):
    """What :func:`embed_pixels` made: the marked pixels, the PSNR of the change (dB, colour
    channels) and the layout version written."""

    pixels: _io.Pixels
    psnr: float
    version: int


def embed_pixels(px: _io.Pixels, key: Key, payload: bytes, *, check_existing: bool = True, version: int | None = None) -> Marked:
    """Mark ``px`` with layout ``version``: by default layout 2 (the coarse frame) on smooth and
    flat images, where WebP's smoothing takes most of a fine mark away, and layout 1 on the rest."""
    if min(px.height, px.width) < MIN_EMBED_SIDE:
        raise InputError(f"image is {px.width}x{px.height} px; a mark needs at least {MIN_EMBED_SIDE} px on the short side")
    luma = px.luma()
    if check_existing:
        prior = _codec.read_key(_codec.prepare(luma), key, search=False)
        if prior.log_p_value <= math.log(STACK_ALPHA):
            found = prior.payload.hex() if prior.payload else "unreadable"
            raise InputError(
                f"the image already carries a dojang mark under key {key.key_id} (payload {found}); marks never stack"
            )
    if version is not None and version not in LAYOUTS:
        raise InputError(f"unknown payload layout version {version}")
    base = px.colour.astype(np.float32)
    activity = _codec.activity_amplitude(luma)
    smooth = _codec.is_smooth(activity)
    layout = LAYOUTS[version if version is not None else COARSE_VERSION if smooth else FINE_VERSION]
    bind = _codec.bind_weights(luma, key, layout) if layout.bound else None
    if bind is not None and float(np.mean(np.abs(bind))) < MIN_BOUND:
        raise InputError(
            "the image has no detail to bind a mark to (it is uniform, or nearly): a format v3 mark lives in the "
            "image's own content, so that it cannot be copied onto another image"
        )
    promise = SMOOTH_MIN_PSNR if smooth else PHOTO_MIN_PSNR  # dB
    floor = promise + FLOOR_MARGIN  # where the last step for robustness aims

    def apply(delta: NDArray[np.float32]) -> _io.Pixels:
        shaped = delta if px.colour.ndim == 2 else delta[..., None]
        return px.with_colour(np.clip(np.rint(base + shaped), 0, 255).astype(np.uint8))

    def reads_back(out: _io.Pixels) -> bool:
        check = _codec.read_key(_codec.prepare(out.luma()), key, search=False, layouts=(layout,), sync_evidence=False)
        return check.payload == payload and check.log_p_value <= math.log(STACK_ALPHA)

    good: tuple[_io.Pixels, float, NDArray[np.float32]] | None = None
    weakest = 0.0
    plain = 0.0  # measured PSNR at strength x1
    boost, tried = 1.0, 0
    while True:
        delta = _codec.luma_delta(luma, key, payload, layout=layout, boost=boost, activity=activity, bind=bind)
        out = apply(delta)
        measured = psnr(out.colour, px.colour)
        if smooth and tried == 0 and measured < SMOOTH_MIN_PSNR:
            # The cap predicts the luma change before the informed gains, the colour clipping and the
            # rounding: a smooth image that still lands under its promise is scaled onto it.
            delta = delta * np.float32(10 ** ((measured - _codec.SMOOTH_PSNR) / 20))
            out = apply(delta)
            measured = psnr(out.colour, px.colour)
        if tried == 0:
            plain = measured
        tried += 1
        step = _next_strength(boost, plain, floor)
        if not reads_back(out):
            if good is not None:  # a stronger try for robustness broke the plain read (never seen): keep the last good one
                break
            # The busiest textures may need more than the PSNR budget to read back at all.
            stronger = _past_floor(boost)
            if stronger is None:
                break
            boost = stronger
            log.info("mark did not read back; trying strength x%.2f", boost)
            continue
        if good is not None and measured < promise:  # the last step's rounding crossed the promise
            break
        good = (out, measured, delta)
        # Robustness: spend more strength while the weaker of a centre crop and a WebP 50
        # re-encoding reads weakly (pure textures lose their informed balance in a crop; fine
        # textures lose the mark to WebP's smoothing) and the PSNR floor allows it. The plain
        # strength is always judged: the lighter marks below start from it.
        if step is None and tried > 1:
            break
        weakest = _codec.log_p_weakest_edit(out.luma(), key, layout, payload)
        if step is None or weakest <= math.log(EDIT_ALPHA):
            break
        log.info("mark reads weakly after a crop or a re-encoding at strength x%.2f; trying stronger", boost)
        boost = step
    if good is None:
        raise DetectionError(
            "the mark did not read back from the marked pixels (the image is too uniform, saturated or busy to carry it); "
            "nothing was written"
        )
    # Invisibility: a mark that survives those edits with room to spare is made lighter, as long
    # as it still does. The statistic grows with the square of the strength (log p ~ -z^2 / 2),
    # so the factors predicted to hold are tried lightest first and the first that does is kept.
    if weakest <= math.log(SPARE_ALPHA):
        chosen = good[2]
        for factor in sorted(f for f in LIGHTER if weakest * f * f <= math.log(EDIT_ALPHA)):
            out = apply(chosen * np.float32(factor))
            if reads_back(out) and _codec.log_p_weakest_edit(out.luma(), key, layout, payload) <= math.log(EDIT_ALPHA):
                good = (out, psnr(out.colour, px.colour), chosen)
                break
    return Marked(good[0], good[1], layout.version)


def _next_strength(boost: float, plain: float, floor: float) -> float | None:
    """The strength after ``boost``: the next of ``BOOSTS``, or the last step onto ``floor`` (dB)
    where the next would cross it (``plain`` is the PSNR measured at x1), or None at the floor."""
    top = 10 ** ((plain - floor) / 20)  # the strength predicted to land on the floor
    for b in BOOSTS:
        if b > boost * 1.001:
            if b <= top:
                return b
            return top if top > boost * FLOOR_STEP else None
    return None


def _past_floor(boost: float) -> float | None:
    """The next of ``BOOSTS`` above ``boost``, for a mark that has not read back yet (the busiest
    textures may need more than their PSNR budget), or None past the last."""
    return next((b for b in BOOSTS if b > boost * 1.001), None)


def embed(image: ImageLike, key: Key, payload: bytes | str | int, *, check_existing: bool = True) -> ImageLike:
    """Embed a keyed, invisible mark carrying ``payload`` (64 bits) into ``image``.

    ``image`` is a PIL image or a uint8 array (``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``); the
    result has the same type, size and mode, with alpha, EXIF and ICC kept. Raises
    :class:`InputError` when the image is too small or already marked under ``key`` and
    :class:`DetectionError` when the mark does not read back.
    """
    px = _pixels(image)
    marked = embed_pixels(px, key, parse_payload(payload), check_existing=check_existing).pixels
    return _like(image, marked)  # type: ignore[no-any-return]


def encode_marked(
    src: str | os.PathLike[str] | bytes,
    fmt: str,
    key: Key,
    payload: bytes | str | int | None = None,
    *,
    quality: int | None = None,
    check_existing: bool = True,
    name: str = "output",
) -> tuple[bytes, Embedded]:
    """Mark an image (a path or the bytes of a file) and encode it as ``fmt`` in memory.

    The encoded bytes are read back and checked; a lossy output whose mark does not survive is
    re-encoded at a higher quality. Returns the bytes and what was embedded (``path`` is ``name``)."""
    payload_bytes = random_payload() if payload is None else parse_payload(payload)
    px, _ = _io.read_bytes(src, name="input") if isinstance(src, bytes) else _io.read(src)
    marked, psnr_db, version = embed_pixels(px, key, payload_bytes, check_existing=check_existing)
    qualities = [quality] if quality else ([None, 98, 100] if fmt in ("JPEG", "WEBP") else [None])
    for q in qualities:
        data = _io.encode(marked, fmt, quality=q)
        back, _ = _io.read_bytes(data, name=name)
        check = _codec.read_key(_codec.prepare(back.luma()), key, search=False, sync_evidence=False)  # as the embedder judges
        if check.payload == payload_bytes and check.log_p_value <= math.log(DEFAULT_ALPHA):
            info = Embedded(name, payload_bytes, key.key_id, version, px.width, px.height, fmt, psnr_db, True)
            return data, info
        log.info("mark did not survive %s at quality %s; trying higher", fmt, q)
    raise DetectionError(f"{name}: the mark did not survive encoding as {fmt}; try .png")


def embed_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    key: Key,
    payload: bytes | str | int | None = None,
    *,
    quality: int | None = None,
    check_existing: bool = True,
) -> Embedded:
    """Mark the image file ``src`` and write ``dst`` (format from its suffix). The written file is
    read back and checked before this returns; a lossy output whose mark does not survive is
    re-encoded at a higher quality, and nothing is left at ``dst`` if it still fails."""
    fmt = _io.format_for(dst)
    data, info = encode_marked(src, fmt, key, payload, quality=quality, check_existing=check_existing, name=str(dst))
    out = Path(dst)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return info


# -- detection --------------------------------------------------------------------------------------
class ImageDetector:
    """Reads dojang image marks with one or more keys.

    ``alpha`` is the false-positive rate per image (default 1e-6), already covering the number of
    keys tried and the geometric search. ``search=False`` skips the search for crops, rotations and
    quarter turns (about ten times faster; resizing needs no search).
    """

    def __init__(self, *, keys: Key | KeyRing | list[Key], alpha: float = DEFAULT_ALPHA, search: bool = True) -> None:
        if not 0.0 < alpha < 1.0:
            raise InputError(f"alpha must be in (0, 1), got {alpha}")
        self.keys = KeyRing.coerce(keys)
        if len(self.keys) == 0:
            raise InputError("at least one key is needed to detect a mark")
        self.alpha = alpha
        self.search = search

    def __repr__(self) -> str:
        return f"ImageDetector(keys={list(self.keys.key_ids)!r}, alpha={self.alpha}, search={self.search})"

    def detect(self, image: Any) -> Detection:
        return self.detect_pixels(_pixels(image))

    def detect_file(self, path: str | os.PathLike[str]) -> Detection:
        return self.detect_pixels(_io.read(path)[0])

    def detect_bytes(self, data: bytes, *, name: str = "upload") -> Detection:
        return self.detect_pixels(_io.read_bytes(data, name=name)[0])

    def detect_pixels(self, px: _io.Pixels) -> Detection:
        keys_tried = len(self.keys)
        if min(px.height, px.width) < MIN_DETECT_SIDE:
            raise InputError(
                f"image is {px.width}x{px.height} px; reading a mark needs at least {MIN_DETECT_SIDE} px on the short side"
            )
        prep = _codec.prepare(px.luma())
        if prep.blank:
            return Detection(
                scheme=SCHEME, verdict=Verdict.INCONCLUSIVE, log_p_value=0.0, tokens_scored=0, statistic=0.0, key_id=None,
                alpha=self.alpha, keys_tried=keys_tried, reason="the image is uniform: there is no detail to read a mark from",
            )  # fmt: skip
        best_key, best, pattern = None, None, 0.0
        best_rank: tuple[bool, float, float] | None = None
        readings: dict[str, _codec.Reading] = {}
        if len(self.keys) > 1:
            # Each key at the identities first: a marked image stops at its own key without the
            # search under every other key (a verified payload at 1e-20 has no rival to wait for).
            # The correction is the ring's whatever the order, so stopping early changes no p-value.
            for key in self.keys:
                quick = _codec.read_key(prep, key, search=self.search, identity_only=True)
                if quick.verified and quick.log_p_value < _codec.CLEAR:
                    readings = {key.key_id: quick}
                    break
        for key in [k for k in self.keys if k.key_id in readings] or self.keys:
            reading = readings.get(key.key_id) or _codec.read_key(prep, key, search=self.search)
            correction = self.keys.log_correction(key.key_id)  # log n, or the key's weighted share
            pattern = min(pattern, reading.log_p_pattern + correction)  # capped at 0 below
            # a verified payload first, then the strongest reading; among keys with no verified
            # payload, the one whose keyed pattern reads most clearly (the key a pattern-only verdict names)
            # (corrected p-values are capped at 1, so keys whose reading found nothing stay tied
            # whatever their weights, and the pattern decides between them)
            rank = (
                reading.verified,
                -min(0.0, reading.log_p_value + correction),
                -min(0.0, reading.log_p_pattern + correction),
            )
            if best_rank is None or rank > best_rank:
                best_key, best, best_rank = key, reading, rank
        assert best is not None and best_key is not None and best_rank is not None
        log_p = min(0.0, -best_rank[1])
        detected = best.verified and log_p <= math.log(self.alpha)
        pattern_seen = min(0.0, pattern) <= math.log(self.alpha)
        layout = best.layout
        log.debug("best alignment %s, check matches %d/%d", best.alignment.describe(), best.check_matches, best.check_bits)
        if detected:
            verdict, reason = Verdict.DETECTED, LEGACY_REASON if best.version in LEGACY_VERSIONS else None
        elif pattern_seen:
            verdict, reason = Verdict.INCONCLUSIVE, PATTERN_REASON
        else:
            verdict, reason = Verdict.NOT_DETECTED, None
        return Detection(
            scheme=f"image/v{best.version}" if detected and best.version else SCHEME,
            verdict=verdict,
            log_p_value=log_p,
            tokens_scored=layout.data_bits,
            statistic=z_equivalent(log_p),
            key_id=best_key.key_id,
            alpha=self.alpha,
            keys_tried=keys_tried,
            payload=best.payload if detected else None,
            bit_errors_corrected=best.bit_errors_corrected if detected and best.payload is not None else None,
            reason=reason,
            keyed_pattern_seen=pattern_seen or detected,
        )


def detect(image: Any, keys: Key | KeyRing | list[Key], *, alpha: float = DEFAULT_ALPHA, search: bool = True) -> Detection:
    """Look for a dojang image mark under ``keys``: a :class:`~dojang.stats.Detection` with the
    exact p-value, the payload (when detected) and the number of payload bits corrected."""
    return ImageDetector(keys=keys, alpha=alpha, search=search).detect(image)


def detect_file(
    path: str | os.PathLike[str], keys: Key | KeyRing | list[Key], *, alpha: float = DEFAULT_ALPHA, search: bool = True
) -> Detection:
    return ImageDetector(keys=keys, alpha=alpha, search=search).detect_file(path)


def z_equivalent(log_p: float) -> float:
    """The image detector's ``statistic``: the standard normal score with the same tail as the
    p-value (``P(Z >= z) = p``), so that it reads like the text detector's z-score; 0 for p >= 1/2.
    (It was the sync peak of the alignment read, which is 0 at the exact origin, where most
    marks are read.)"""
    from scipy.special import ndtri_exp

    return max(0.0, -float(ndtri_exp(min(0.0, log_p))))


def psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Peak signal-to-noise ratio of two uint8 arrays, in dB."""
    diff = a.astype(np.int16) - b.astype(np.int16)
    mse = float(np.square(diff, dtype=np.int32).sum(dtype=np.int64)) / diff.size  # exact: integers throughout
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
