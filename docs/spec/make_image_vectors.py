"""Regenerate docs/spec/image_vectors.json and the golden images (tests/data/image_golden_v*.png).

Run only when the image format changes on purpose (a new layout version): the tests pin these
values and decode the golden image, so that marks made by one version stay readable by every
later one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from dojang.image import embed
from dojang.image._api import embed_pixels
from dojang.image._io import from_pil
from dojang.image import _codec, _content
from dojang.image._pattern import LAYOUTS, KeyedTile, coded_bits, keyed_tile, mac_bits
from dojang.keys import Key
from dojang.keys._keys import _key_id_for

TEST_SECRET = bytes(range(32))  # a public test vector, never a usable default
PAYLOAD = bytes.fromhex("0123456789abcdef")
ROOT = Path(__file__).parents[2]


def golden_source() -> Image.Image:
    """A deterministic 384x256 test picture (smooth shading, edges, a little texture)."""
    yy, xx = np.mgrid[0:256, 0:384].astype(np.float64)
    base = 120 + 60 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 40 * (xx / 384.0)
    edges = np.where((xx - 190) ** 2 + (yy - 130) ** 2 < 70**2, 50.0, 0.0)
    texture = 6.0 * np.sin(xx * 1.3) * np.sin(yy * 0.9)
    luma = base + edges + texture
    rgb = np.stack([luma * 1.05, luma * 0.95, luma * 0.8], -1)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _tile_vectors(tile: KeyedTile) -> dict[str, object]:
    """The keyed material of one tile: first rows and digests of the sync chips, chips and assignment."""
    return {
        "sync_first_row": [int(v) for v in tile.sync[0]],
        "chips_first_row": [int(v) for v in tile.chips[0]],
        "assign_first_row": [int(v) for v in tile.assign[0]],
        "sha256_sync_int8": _sha(tile.sync.astype(np.int8)),
        "sha256_chips_int8": _sha(tile.chips.astype(np.int8)),
        "sha256_assign_int16": _sha(tile.assign.astype("<i2")),
    }


def _layout_vectors(key: Key, version: int) -> dict[str, object]:
    """A later layout's keyed material (its code and bits are layout 1's where they are the same)."""
    layout = LAYOUTS[version]
    tile = keyed_tile(key, layout)
    out: dict[str, object] = {
        "layout": {
            "version": version,
            "frame": layout.frame,
            "bch_n": layout.code.n,
            "bch_k": layout.code.k,
            "bch_t": layout.code.t,
            "check_bits": layout.check_bits,
        },
        "info_bits": "".join(str(int(b)) for b in layout.pack(PAYLOAD)),
        **_tile_vectors(tile),
        "golden_image": f"tests/data/image_golden_v{version}.png",
    }
    if layout.bound:  # format v3: the MAC check bits and the content field's keyed points
        points, weights = _content.bind_kernel(key, layout)
        luma = from_pil(golden_source()).luma()
        field = _content.content_field(_codec._frame_luma(_codec._sync.to_canonical(luma), layout.frame), (points, weights))
        out.update(
            mac_bits="".join(str(int(b)) for b in mac_bits(key, layout, PAYLOAD)),
            coded_bits="".join(str(int(b)) for b in coded_bits(layout, PAYLOAD, key)),
            bind_points=[list(p) for p in points],
            bind_weights=[int(w) for w in weights],
            # the golden source's content field at the identity, in its canonical frame: a few values (luma levels)
            field_shape=list(field.shape),
            field_samples=[[r, c, round(float(field[r, c]), 3)] for r, c in ((0, 0), (10, 20), (64, 100), (field.shape[0] - 1, field.shape[1] - 1))],
        )
    return out


def main() -> None:
    key = Key(key_id=_key_id_for(TEST_SECRET), _secret=TEST_SECRET)
    layout = LAYOUTS[1]
    tile = keyed_tile(key, layout)
    info = layout.pack(PAYLOAD)
    bits = coded_bits(layout, PAYLOAD)
    out = {
        "secret_hex": TEST_SECRET.hex(),
        "key_id": key.key_id,
        "payload_hex": PAYLOAD.hex(),
        "layout": {"version": 1, "bch_n": layout.code.n, "bch_k": layout.code.k, "bch_t": layout.code.t, "check_bits": 64},
        "bch_generator_hex": hex(layout.code.generator),
        "info_bits": "".join(str(int(b)) for b in info),
        "coded_bits": "".join(str(int(b)) for b in bits),
        **_tile_vectors(tile),
        "golden_image": "tests/data/image_golden_v1.png",
        "embedder_image": "tests/data/image_golden_embedder.png",
        "v2": _layout_vectors(key, 2),
        "v3": _layout_vectors(key, 3),
        "v4": _layout_vectors(key, 4),
    }
    (ROOT / "docs/spec/image_vectors.json").write_text(json.dumps(out, indent=1) + "\n")
    golden_source().save(ROOT / "tests/data/image_golden_source.png")
    # A golden image is written once per format version and then frozen: marked bytes of that
    # version must decode forever. The embedder image follows the embedder's strength policy,
    # which may change within a version (it pins the embedder's determinism, not the format).
    # Layouts 1 and 2 were written by the embedder of their time; layouts 3 and 4 (format v3) by
    # today's. The embedder image shows which layout the embedder picks for the source.
    px = from_pil(golden_source())
    for version in LAYOUTS:
        golden = ROOT / f"tests/data/image_golden_v{version}.png"
        if not golden.exists():
            embed_pixels(px, key, PAYLOAD, version=version).pixels.to_pil().save(golden)
    embed(golden_source(), key, PAYLOAD).save(ROOT / "tests/data/image_golden_embedder.png")


if __name__ == "__main__":
    main()
