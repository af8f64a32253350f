"""Reading and writing image files without losing what they carry: alpha, EXIF, ICC profile.

Pixels are handled as float luma plus an 8-bit colour array; every supported mode maps to one of
``L`` (greyscale), ``LA``, ``RGB`` or ``RGBA``. Bad files raise :class:`~dojang.errors.InputError`
with one sentence that names the file and the problem.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from dojang.errors import InputError

MAX_PIXELS = 100_000_000  # a decompression bomb guard well above 8K (33 MP)
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
DEFAULT_QUALITY = {"JPEG": 95, "WEBP": 95}  # lossy outputs: high enough that the mark survives
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as JPEG uses
_ORIENTATION = 0x0112  # EXIF tag
_LUMA_BLOCK = 1 << 16  # pixels per block of the RGB -> luma product (stays in cache)


@dataclass
class Pixels:
    """An image split into what the watermark touches and what it keeps."""

    colour: NDArray[np.uint8]  # (H, W) greyscale or (H, W, 3) RGB
    alpha: NDArray[np.uint8] | None  # (H, W) or None
    info: dict[str, Any] = field(default_factory=dict)  # exif / icc_profile bytes to write back

    @property
    def height(self) -> int:
        return int(self.colour.shape[0])

    @property
    def width(self) -> int:
        return int(self.colour.shape[1])

    def luma(self) -> NDArray[np.float32]:
        """``(H, W)`` float32 luma. RGB goes in blocks of rows: one product over a whole 8K image
        (100 M values through a 400 MB temporary) took 1.2 s, blocks of ~64 K pixels take 0.04 s,
        with the same bits."""
        if self.colour.ndim == 2:
            return self.colour.astype(np.float32)
        out = np.empty(self.colour.shape[:2], dtype=np.float32)
        rows = max(1, _LUMA_BLOCK // self.width)
        for top in range(0, self.height, rows):
            out[top : top + rows] = self.colour[top : top + rows].astype(np.float32) @ LUMA
        return out

    def with_colour(self, colour: NDArray[np.uint8]) -> Pixels:
        return Pixels(colour, self.alpha, dict(self.info))

    def to_pil(self) -> Image.Image:
        if self.colour.ndim == 2:
            img = Image.fromarray(self.colour, "L")
            if self.alpha is not None:
                img = Image.merge("LA", (img, Image.fromarray(self.alpha, "L")))
        else:
            img = Image.fromarray(self.colour, "RGB")
            if self.alpha is not None:
                img.putalpha(Image.fromarray(self.alpha, "L"))
        img.info.update(self.info)
        return img


def from_pil(img: Image.Image, *, name: str = "image") -> Pixels:
    """Split a PIL image; honours EXIF orientation (the pixels come upright, the tag is cleared)."""
    info: dict[str, Any] = {}
    try:
        if img.getexif().get(_ORIENTATION, 1) != 1:  # exif_transpose copies even an upright image (0.06 s at 8K)
            img = ImageOps.exif_transpose(img) or img
    except Exception as err:  # broken EXIF must not stop a read; the pixels are what matter
        warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({err})", stacklevel=2)
    exif = img.getexif()
    if len(exif):
        info["exif"] = exif.tobytes()
    if img.info.get("icc_profile"):
        info["icc_profile"] = img.info["icc_profile"]
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise InputError(f"{name}: {mode} images (16-bit or float) are not supported; convert to 8-bit first")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        img = img.convert("RGB")
    elif mode == "La":
        img = img.convert("LA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    mode = img.mode
    # np.asarray wraps a fresh copy of the pixels (PIL's tobytes), read-only: nothing writes into
    # Pixels.colour, and a second copy cost 0.2 s on an 8K image
    if mode == "L":
        return Pixels(np.asarray(img, dtype=np.uint8), None, info)
    if mode == "LA":
        arr = np.asarray(img, dtype=np.uint8)
        return Pixels(arr[..., 0].copy(), arr[..., 1].copy(), info)
    if mode == "RGB":
        return Pixels(np.asarray(img, dtype=np.uint8), None, info)
    if mode == "RGBA":
        arr = np.asarray(img, dtype=np.uint8)
        return Pixels(arr[..., :3].copy(), arr[..., 3].copy(), info)
    raise InputError(f"{name}: unsupported image mode {mode}")


def from_array(arr: NDArray[Any], *, name: str = "array") -> Pixels:
    """``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 (RGB(A)); floats in [0, 1] are scaled."""
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InputError(f"{name}: contains NaN or infinite values")
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise InputError(f"{name}: expected uint8 or float pixels, got {a.dtype}")
    if a.ndim == 2:
        return Pixels(a.copy(), None)
    if a.ndim == 3 and a.shape[2] == 3:
        return Pixels(a.copy(), None)
    if a.ndim == 3 and a.shape[2] == 4:
        return Pixels(a[..., :3].copy(), a[..., 3].copy())
    raise InputError(f"{name}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")


def read(path: str | os.PathLike[str]) -> tuple[Pixels, str]:
    """Open an image file: (pixels, PIL format name). Refuses missing, corrupt and huge files."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an image")
    data = p.read_bytes()
    return read_bytes(data, name=str(p))


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff_format(data: bytes) -> str | None:
    """The image format a file's first bytes name (PNG, JPEG, WEBP, GIF, BMP, TIFF, AVIF, HEIC),
    whether or not the rest of it is readable; None when they name none."""
    for magic, fmt in _SIGNATURES:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return "AVIF" if brand in (b"avif", b"avis") else "HEIC" if brand in (b"heic", b"heix", b"mif1", b"msf1") else None
    return None


def read_bytes(data: bytes, *, name: str = "upload") -> tuple[Pixels, str]:
    if not data:
        raise InputError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if img.width * img.height > MAX_PIXELS:
                raise InputError(f"{name}: {img.width}x{img.height} px is more than the {MAX_PIXELS:,} pixel limit")
            img.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        named = sniff_format(data)
        if named in ("PNG", "JPEG", "WEBP"):  # the signature is right, the header behind it is not (a bad CRC, a cut)
            raise InputError(f"{name}: a {named} file whose header is corrupt or truncated") from None
        if named is not None:
            raise InputError(f"{name}: {named} files are not supported (PNG, JPEG or WebP expected)") from None
        raise InputError(f"{name}: not an image dojang can read (PNG, JPEG or WebP expected)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{name}: too many pixels (decompression bomb guard)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{name}: the image data is corrupt or truncated ({err})") from None
    if fmt not in ("PNG", "JPEG", "WEBP", "MPO"):
        raise InputError(f"{name}: {fmt} files are not supported (PNG, JPEG or WebP expected)")
    return from_pil(img, name=name), "JPEG" if fmt == "MPO" else fmt


def format_for(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{path}: unsupported output format {suffix or '(no suffix)'}; use .png, .jpg or .webp")
    return FORMATS[suffix]


def encode(pixels: Pixels, fmt: str, *, quality: int | None = None) -> bytes:
    """Encode to ``fmt`` keeping EXIF and ICC; lossy formats at a quality that keeps the mark."""
    img = pixels.to_pil()
    kwargs: dict[str, Any] = {k: v for k, v in pixels.info.items() if k in ("exif", "icc_profile")}
    if fmt == "JPEG":
        if img.mode in ("RGBA", "LA"):
            raise InputError("JPEG cannot keep an alpha channel; write .png or .webp instead")
        kwargs.update(quality=quality or DEFAULT_QUALITY["JPEG"], subsampling=0)
    elif fmt == "WEBP":
        kwargs.update(quality=quality or DEFAULT_QUALITY["WEBP"], method=4)
        if quality == 100:
            kwargs.update(lossless=True)
    elif fmt == "PNG":
        kwargs.update(optimize=False)
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()
