"""Golden vectors for the image format: the keyed material, the BCH code and the payload layout
stay bit-identical, and an image marked by each format version keeps decoding (docs/spec/image.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dojang.image import _codec, _content, _sync, detect, embed
from dojang.image._io import from_pil
from dojang.image._pattern import LAYOUTS, KeyedTile, coded_bits, keyed_tile, mac_bits
from dojang.keys import Key
from dojang.keys._keys import _key_id_for

ROOT = Path(__file__).parents[1]
VECTORS = json.loads((ROOT / "docs/spec/image_vectors.json").read_text())
SECRET = bytes.fromhex(VECTORS["secret_hex"])
KEY = Key(key_id=_key_id_for(SECRET), _secret=SECRET)
PAYLOAD = bytes.fromhex(VECTORS["payload_hex"])


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _assert_tile_pinned(tile: KeyedTile, want: dict[str, Any]) -> None:
    assert [int(v) for v in tile.sync[0]] == want["sync_first_row"]
    assert [int(v) for v in tile.chips[0]] == want["chips_first_row"]
    assert [int(v) for v in tile.assign[0]] == want["assign_first_row"]
    assert _sha(tile.sync.astype(np.int8)) == want["sha256_sync_int8"]
    assert _sha(tile.chips.astype(np.int8)) == want["sha256_chips_int8"]
    assert _sha(tile.assign.astype("<i2")) == want["sha256_assign_int16"]


def test_keyed_material_and_code_are_pinned() -> None:
    assert KEY.key_id == VECTORS["key_id"]
    layout = LAYOUTS[1]
    assert hex(layout.code.generator) == VECTORS["bch_generator_hex"]
    assert "".join(str(int(b)) for b in layout.pack(PAYLOAD)) == VECTORS["info_bits"]
    assert "".join(str(int(b)) for b in coded_bits(layout, PAYLOAD)) == VECTORS["coded_bits"]
    _assert_tile_pinned(keyed_tile(KEY, layout), VECTORS)


def test_layout_2_keyed_material_is_pinned() -> None:
    """Layout 2 has its own sync chips, chips and assignment (derived under ``image/v2``), in the
    128-unit frame; layout 1's stay as they were."""
    want = VECTORS["v2"]
    layout = LAYOUTS[2]
    code = layout.code
    assert want["layout"] == {"version": 2, "frame": 128, "bch_n": code.n, "bch_k": code.k, "bch_t": code.t, "check_bits": 64}
    assert layout.frame == 128 and "".join(str(int(b)) for b in layout.pack(PAYLOAD)) == want["info_bits"]
    _assert_tile_pinned(keyed_tile(KEY, layout), want)


@pytest.mark.parametrize("version", [3, 4])
def test_format_v3_keyed_material_mac_and_field_are_pinned(version: int) -> None:
    """Format v3 (layouts 3 and 4): own keyed tiles, the MAC check bits, the content field's
    keyed points and its values on the golden source (spec section 7)."""
    want = VECTORS[f"v{version}"]
    layout = LAYOUTS[version]
    assert layout.bound and want["layout"]["version"] == version and want["layout"]["frame"] == layout.frame
    assert "".join(str(int(b)) for b in layout.pack(PAYLOAD)) == want["info_bits"]
    assert "".join(str(int(b)) for b in mac_bits(KEY, layout, PAYLOAD)) == want["mac_bits"]
    assert "".join(str(int(b)) for b in coded_bits(layout, PAYLOAD, KEY)) == want["coded_bits"]
    _assert_tile_pinned(keyed_tile(KEY, layout), want)
    points, weights = _content.bind_kernel(KEY, layout)
    assert [list(p) for p in points] == want["bind_points"] and [int(w) for w in weights] == want["bind_weights"]
    luma = from_pil(Image.open(ROOT / "tests/data/image_golden_source.png")).luma()
    field = _content.content_field(_codec._frame_luma(_sync.to_canonical(luma), layout.frame), (points, weights))
    assert list(field.shape) == want["field_shape"]
    for r, c, value in want["field_samples"]:
        assert float(field[r, c]) == pytest.approx(value, abs=2e-3)


def test_the_mac_changes_with_payload_version_and_key() -> None:
    base = mac_bits(KEY, LAYOUTS[3], PAYLOAD)
    assert not np.array_equal(base, mac_bits(KEY, LAYOUTS[3], bytes(8)))
    assert not np.array_equal(base, mac_bits(KEY, LAYOUTS[4], PAYLOAD))
    other = Key(key_id=_key_id_for(bytes(32)), _secret=bytes(32))
    assert not np.array_equal(base, mac_bits(other, LAYOUTS[3], PAYLOAD))


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_golden_image_decodes(version: int) -> None:
    path = VECTORS["golden_image"] if version == 1 else VECTORS[f"v{version}"]["golden_image"]
    marked = Image.open(ROOT / path)
    result = detect(marked, KEY, search=False)
    assert result.detected and result.payload == PAYLOAD and result.p_value < 1e-20
    assert result.scheme == f"image/v{version}"
    if version in (1, 2):  # marks made before forgery resistance still read, and say so
        assert result.reason is not None and "predates forgery resistance" in result.reason
    else:
        assert result.reason is None and result.to_dict()["payload_verified"] is True
    assert detect(marked, KEY).payload == PAYLOAD  # and with the search on


def test_embedder_reproduces_the_golden_image() -> None:
    """Re-marking the source gives the same pixels, up to float rounding across platforms (the
    embedder image follows the strength policy; the frozen golden image pins the format)."""
    source = Image.open(ROOT / "tests/data/image_golden_source.png")
    again = np.asarray(embed(source, KEY, PAYLOAD)).astype(int)
    golden = np.asarray(Image.open(ROOT / VECTORS["embedder_image"])).astype(int)
    diff = np.abs(again - golden)
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01
