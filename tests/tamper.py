"""Byte-level tampering of signed files for the provenance tests (JPEG, PNG, WebP)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each header segment up to and including SOS."""
    assert data[:2] == b"\xff\xd8"
    out, pos = [], 2
    while pos < len(data):
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        out.append((marker, pos, pos + 2 + length))
        pos += 2 + length
        if marker == 0xDA:
            break
    return out


def flip_jpeg_scan(data: bytes) -> bytes:
    """Change one bit of the entropy-coded image data (a few pixels of one block change)."""
    sos_end = jpeg_segments(data)[-1][2]
    pos = sos_end + (len(data) - sos_end) // 2
    while data[pos] in (0xFF, 0xFE) or data[pos - 1] == 0xFF:
        pos += 1
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def change_png_pixel(data: bytes) -> bytes:
    """Change one channel of the last pixel by one level, keeping every other chunk (the manifest too)."""
    chunks = _png_chunks(data)
    raw = bytearray(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")))
    raw[-1] = (raw[-1] + 1) % 256  # the last pixel of the last row: no later pixel is predicted from it
    out, done = [data[:8]], False
    for kind, body in chunks:
        if kind == b"IDAT":
            if not done:
                out.append(_png_chunk(b"IDAT", zlib.compress(bytes(raw), 9)))
                done = True
            continue
        out.append(_png_chunk(kind, body))
    return b"".join(out)


def flip_webp_data(data: bytes) -> bytes:
    """Change one byte in the middle of the VP8/VP8L bitstream."""
    for tag in (b"VP8 ", b"VP8L"):
        at = data.find(tag)
        if at >= 0:
            (length,) = struct.unpack("<I", data[at + 4 : at + 8])
            pos = at + 8 + length // 2
            return data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1 :]
    raise ValueError("no VP8 chunk")


def move_jpeg_manifest(signed: bytes, other: bytes) -> bytes:
    """Copy the C2PA APP11 segments of ``signed`` into the JPEG ``other`` (right after its SOI/APP0)."""
    app11 = b"".join(signed[s:e] for m, s, e in jpeg_segments(signed) if m == 0xEB)
    assert app11, "no APP11 (JUMBF) segment in the signed file"
    segs = jpeg_segments(other)
    cut = segs[0][2] if segs[0][0] == 0xE0 else 2
    return other[:cut] + app11 + other[cut:]


def reencode(data: bytes, fmt: str = "JPEG", **kwargs: object) -> bytes:
    """Decode and encode again: what platforms do, and it drops the manifest."""
    with Image.open(io.BytesIO(data)) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, fmt, **kwargs)
    return buf.getvalue()
