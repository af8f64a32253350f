"""The keyed tile: geometry constants, payload layouts and the pattern they render.

The mark is one periodic tile of ``TILE_CELLS x TILE_CELLS`` cells, repeated over the image in a
*canonical frame* where the image's short side is a fixed number of units (so resizing the
image does not move the mark, and big images get a smoother, lower-frequency pattern). A cell is
``CELL_UNITS`` units wide; the pattern between cell centres is bilinear. Each layout names its
frame: ``CANONICAL_SHORT`` (256) units for layout 1, ``COARSE_SHORT`` (128) for layout 2, whose
cells are twice as wide on the image (for smooth and flat images, where WebP's smoothing takes
away most of a fine mark).

Every cell carries two keyed +-1 chips added together: a *sync* chip (one set per layout: it
lets the detector find the tile's position, scale and rotation) and a *data* chip that spreads
one bit of the coded payload or one of the keyed *check* bits. Which cell carries which bit is a
keyed permutation, so a bit's cells are scattered over the tile. All keyed material comes from
HKDF outputs (not from a random number generator whose stream could change between numpy
versions), so the format is pinned by the key alone.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from dojang.errors import ConfigError
from dojang.image._bch import BCH
from dojang.keys import Key

TILE_CELLS = 32  # cells per tile side
CELL_UNITS = 2  # canonical units per cell
TILE_UNITS = TILE_CELLS * CELL_UNITS  # tile period in canonical units
CANONICAL_SHORT = 256  # the image's short side in canonical units (layout 1)
COARSE_SHORT = 128  # the same for layout 2: cells twice as wide on the image
SYNC_WEIGHT = 0.6  # sync chip amplitude relative to the data chip
PAYLOAD_BITS = 64  # user data per mark
VERSION_BITS = 4


@dataclass(frozen=True)
class Layout:
    """One payload format: the version number written into the mark, the BCH code, and the number
    of keyed check bits (the detection statistic). ``info`` bits = version + payload + zero pad."""

    version: int
    bch_m: int
    bch_t: int
    check_bits: int
    frame: int = CANONICAL_SHORT  # canonical units on the image's short side
    # Format v3 (layouts 3 and 4): the data chips are multiplied by a keyed function of the
    # image's own content (``_content``), so no two images share a data pattern, and the check
    # bits are a keyed MAC of the version and payload instead of zeros.
    bound: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.version < 1 << VERSION_BITS:
            raise ConfigError(f"layout version must be in 1..{(1 << VERSION_BITS) - 1}")
        if self.code.k < VERSION_BITS + PAYLOAD_BITS:
            raise ConfigError(f"{self.code!r} leaves no room for {VERSION_BITS + PAYLOAD_BITS} info bits")
        if self.data_bits > TILE_CELLS * TILE_CELLS // 4:
            raise ConfigError(f"{self.data_bits} data bits do not fit the tile at 4 cells a bit")

    @property
    def code(self) -> BCH:
        return _bch(self.bch_m, self.bch_t)

    @property
    def data_bits(self) -> int:
        return self.code.n + self.check_bits

    def log_false_payload(self, distance: int) -> float:
        """Natural log of an upper bound on the chance that fair coins lie within ``distance`` bits
        of some valid codeword (right version, zero padding): ``2**64 V(n, d) / 2**n``, exact for
        ``d <= t`` where the balls are disjoint, a union bound beyond."""
        n = self.code.n
        volume = sum(math.comb(n, i) for i in range(distance + 1))
        return (PAYLOAD_BITS - n) * math.log(2.0) + math.log(volume)

    def pack(self, payload: bytes) -> NDArray[np.uint8]:
        """version (4 bits, MSB first) + payload (64 bits, MSB first) + zero pad -> k info bits."""
        code = self.code
        version = [(self.version >> (VERSION_BITS - 1 - i)) & 1 for i in range(VERSION_BITS)]
        data = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
        pad = code.k - VERSION_BITS - PAYLOAD_BITS
        return np.concatenate([np.array(version, np.uint8), data, np.zeros(pad, np.uint8)])

    def unpack(self, info: NDArray[np.uint8]) -> bytes | None:
        """The payload, or None when the version field or the zero pad does not match this layout."""
        version = int("".join(str(int(b)) for b in info[:VERSION_BITS]), 2)
        if version != self.version or info[VERSION_BITS + PAYLOAD_BITS :].any():
            return None
        return np.packbits(info[VERSION_BITS : VERSION_BITS + PAYLOAD_BITS]).tobytes()


@lru_cache(maxsize=8)
def _bch(m: int, t: int) -> BCH:
    return BCH(m, t)


# Registered layouts. A decoder tries each; old marks keep decoding. Layout 2 is layout 1 in the
# coarse frame with its own keyed sync chips, chips and assignment: the embedder writes it on
# smooth and flat images and layout 1 on the rest.
LAYOUTS: dict[int, Layout] = {
    1: Layout(version=1, bch_m=7, bch_t=9, check_bits=64),
    2: Layout(version=2, bch_m=7, bch_t=9, check_bits=64, frame=COARSE_SHORT),
    3: Layout(version=3, bch_m=7, bch_t=9, check_bits=64, bound=True),
    4: Layout(version=4, bch_m=7, bch_t=9, check_bits=64, frame=COARSE_SHORT, bound=True),
}
FINE_VERSION = 3  # photos and textures
COARSE_VERSION = 4  # smooth and flat images
LEGACY_VERSIONS = (1, 2)  # written before forgery resistance: read at the origin and the fitted offset only
MAC_BYTES = 8  # the check bits of a bound layout: HMAC-SHA256 truncated to 64 bits


@dataclass(frozen=True)
class KeyedTile:
    """The keyed material of one key and layout: sync chips, data chips and the bit assignment,
    each a ``(TILE_CELLS, TILE_CELLS)`` array indexed ``[row, column]``."""

    sync: NDArray[np.float32]  # +-1
    chips: NDArray[np.float32]  # +-1
    assign: NDArray[np.int64]  # bit index of every cell; payload bits first, then check bits
    layout: Layout

    def cells(self, bits: NDArray[np.uint8], gains: NDArray[np.float64] | None = None) -> NDArray[np.float32]:
        """Cell values for the coded ``bits`` (payload codeword + check bits), unit RMS when every
        bit's gain is 1; ``gains`` (one per bit) strengthen some bits and weaken others."""
        return self.data_cells(bits, gains) + self.sync_cells()

    def data_cells(self, bits: NDArray[np.uint8], gains: NDArray[np.float64] | None = None) -> NDArray[np.float32]:
        """The data part of :meth:`cells` alone (a bound layout multiplies it by the content field)."""
        signs = 1.0 - 2.0 * bits.astype(np.float32)  # bit 0 -> +1, bit 1 -> -1
        if gains is not None:
            signs = signs * gains.astype(np.float32)
        return (signs[self.assign] * self.chips / np.sqrt(1.0 + SYNC_WEIGHT**2)).astype(np.float32)

    def sync_cells(self) -> NDArray[np.float32]:
        """The sync part of :meth:`cells`: the same in every image marked with this key and layout."""
        return (SYNC_WEIGHT * self.sync / np.sqrt(1.0 + SYNC_WEIGHT**2)).astype(np.float32)


def _signs(material: bytes, count: int) -> NDArray[np.float32]:
    bits = np.unpackbits(np.frombuffer(material, dtype=np.uint8))[:count]
    return (1.0 - 2.0 * bits.astype(np.float32)).reshape(TILE_CELLS, TILE_CELLS)


def sync_chips(key: Key, version: int = 1) -> NDArray[np.float32]:
    """The sync chips of one layout: layout 1's are the key's ``image/sync`` material, a later
    layout's its own (``image/v2/sync``), so one frame's search never locks onto another's tile."""
    cells = TILE_CELLS * TILE_CELLS
    tag = "image/sync" if version == 1 else f"image/v{version}/sync"
    return _signs(key.derive(tag, length=cells // 8), cells)


def keyed_tile(key: Key, layout: Layout) -> KeyedTile:
    cells = TILE_CELLS * TILE_CELLS
    tag = f"image/v{layout.version}"
    chips = _signs(key.derive(f"{tag}/chips", length=cells // 8), cells)
    order_bytes = key.derive(f"{tag}/assign", length=4 * cells)
    ranks = np.frombuffer(order_bytes, dtype=">u4").astype(np.int64)
    order = np.lexsort((np.arange(cells), ranks))  # a keyed permutation of the cells
    assign = np.empty(cells, dtype=np.int64)
    assign[order] = np.arange(cells) % layout.data_bits
    sync = sync_chips(key, layout.version)
    return KeyedTile(sync=sync, chips=chips, assign=assign.reshape(TILE_CELLS, TILE_CELLS), layout=layout)


def mac_bits(key: Key, layout: Layout, payload: bytes) -> NDArray[np.uint8]:
    """The check bits of a bound layout: the first 64 bits (MSB first) of
    HMAC-SHA256(key's ``image/v3/mac`` sub-key, version byte || payload). Only the key's holder
    can make them, and they change with every payload and version."""
    mac = hmac.new(key.derive("image/v3/mac"), bytes([layout.version]) + payload, hashlib.sha256).digest()
    return np.unpackbits(np.frombuffer(mac[:MAC_BYTES], dtype=np.uint8))[: layout.check_bits]


def coded_bits(layout: Layout, payload: bytes, key: Key | None = None) -> NDArray[np.uint8]:
    """Payload codeword followed by the check bits: a keyed MAC in a bound layout (``key``
    needed), all zero in layouts 1 and 2 (their chips alone carry the key)."""
    codeword = layout.code.encode(layout.pack(payload))
    if layout.bound:
        if key is None:
            raise ConfigError(f"layout {layout.version} needs the key for its check bits")
        return np.concatenate([codeword, mac_bits(key, layout, payload)])
    return np.concatenate([codeword, np.zeros(layout.check_bits, np.uint8)])


def interp_matrix(coords: NDArray[np.float64], period: int) -> NDArray[np.float32]:
    """Periodic linear interpolation weights: ``(len(coords), period)``, two non-zeros a row."""
    base = np.floor(coords)
    frac = (coords - base).astype(np.float32)
    i0 = base.astype(np.int64) % period
    out = np.zeros((len(coords), period), dtype=np.float32)
    rows = np.arange(len(coords))
    out[rows, i0] += 1.0 - frac
    out[rows, (i0 + 1) % period] += frac
    return out


def render(cells: NDArray[np.float32], height: int, width: int, scale: float) -> NDArray[np.float32]:
    """The tile pattern at full resolution, ``(height, width)``: pixel centre ``x`` sits at canonical
    unit ``(x + 0.5) * scale - 0.5``; cell centres at multiples of ``CELL_UNITS``."""
    ys = ((np.arange(height) + 0.5) * scale - 0.5) / CELL_UNITS
    xs = ((np.arange(width) + 0.5) * scale - 0.5) / CELL_UNITS
    ky = interp_matrix(ys, TILE_CELLS)
    kx = interp_matrix(xs, TILE_CELLS)
    return np.asarray((ky @ cells) @ kx.T, dtype=np.float32)  # (H, 32) @ (32, 32) @ (32, W)


def unit_template(cells: NDArray[np.float32]) -> NDArray[np.float32]:
    """``cells`` rendered at one sample per canonical unit: ``(TILE_UNITS, TILE_UNITS)``."""
    coords = np.arange(TILE_UNITS, dtype=np.float64) / CELL_UNITS
    k = interp_matrix(coords, TILE_CELLS)
    return np.asarray((k @ cells) @ k.T, dtype=np.float32)
