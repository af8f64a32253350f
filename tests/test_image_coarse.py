"""Layout 2: the mark in the coarse (128-unit) frame, for smooth and flat images (docs/spec/image.md,
sections 2 and 4). WebP's smoothing takes most of a mark with 4 px cells from flat areas; cells
twice as wide keep it at a lighter strength."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from dojang.bench._image import synthetic_images
from dojang.errors import InputError
from dojang.image import _codec, attacks, detect, embed
from dojang.image._api import embed_pixels, psnr
from dojang.image._io import from_pil
from dojang.image._pattern import LAYOUTS, keyed_tile, sync_chips
from tests.helpers import fixed_key

skdata = pytest.importorskip("skimage.data")
PAYLOAD = bytes.fromhex("a5c3f00f1e2d3c4b")


@pytest.fixture(scope="module")
def text() -> Image.Image:
    return synthetic_images()["text"]


def test_the_embedder_picks_the_frame_by_content() -> None:
    images = synthetic_images()
    for name in ("flat", "gradient", "text", "smooth-render"):
        assert embed_pixels(from_pil(images[name]), fixed_key(1), PAYLOAD).version == 4, name
    for photo in (Image.fromarray(skdata.camera()), Image.fromarray(skdata.brick()), images["texture"]):
        assert embed_pixels(from_pil(photo), fixed_key(1), PAYLOAD).version == 3


def test_coarse_cells_survive_webp_on_text(text: Image.Image) -> None:
    """Text on white under WebP 50: the fine layout's mark is lost (p about 0.04 for this key),
    the coarse one reads at 1e-6 or better, at the same 45 dB."""
    key = fixed_key(1)
    log10p, quality = {}, {}
    for version in (1, 2):
        marked = embed_pixels(from_pil(text), key, PAYLOAD, version=version)
        quality[version] = marked.psnr
        log10p[version] = detect(attacks.webp(50)(marked.pixels.to_pil()), key).log_p_value / math.log(10)
    assert quality[2] >= 45.0 and quality[1] >= 45.0
    assert log10p[2] <= -6.0, log10p
    assert log10p[2] <= log10p[1] - 3.0, log10p


def test_a_coarse_mark_is_found_after_crops_and_rotation() -> None:
    flat = synthetic_images()["flat"]
    key = fixed_key(2)
    out = embed(flat, key, PAYLOAD)
    for attack in (attacks.crop(0.75), attacks.rotate(10.0), attacks.crop(0.8, cx=0.4, cy=0.6), attacks.resize_width(512)):
        result = detect(attack(out), key)
        assert result.detected and result.payload == PAYLOAD and result.scheme == "image/v4", attack.name


def test_smooth_images_keep_45_db_in_the_coarse_frame() -> None:
    """The coarse layout's smoother pattern is held to 45 dB as measured on the result (the cap
    predicts it before the informed gains, the colour clipping and the rounding)."""
    images = synthetic_images()
    for index in (1, 2, 3, 4):
        for name in ("text", "flat"):
            marked = embed_pixels(from_pil(images[name]), fixed_key(index), PAYLOAD)
            assert marked.version == 4 and marked.psnr >= 45.0, (name, index, marked.psnr)
            assert psnr(marked.pixels.colour, np.asarray(images[name])) == pytest.approx(marked.psnr)


def test_each_layout_has_its_own_keyed_material() -> None:
    key = fixed_key(1)
    one, two = keyed_tile(key, LAYOUTS[1]), keyed_tile(key, LAYOUTS[2])
    assert np.array_equal(one.sync, sync_chips(key))  # layout 1's sync chips are unchanged
    for a, b in ((one.sync, two.sync), (one.chips, two.chips)):
        assert abs(float(np.mean(a * b))) < 0.1  # unrelated +-1 sequences
    assert not np.array_equal(one.assign, two.assign)


def test_marks_never_stack_across_layouts(text: Image.Image) -> None:
    key = fixed_key(3)
    marked = embed(text, key, PAYLOAD)
    with pytest.raises(InputError, match="already carries"):
        embed(marked, key, PAYLOAD)
    fine = embed_pixels(from_pil(text), key, PAYLOAD, version=1).pixels
    with pytest.raises(InputError, match="already carries"):
        embed_pixels(fine, key, PAYLOAD, version=2)


def test_reading_both_layouts_keeps_the_correction() -> None:
    """Every alignment is read with one layout and at most ``MAX_READINGS`` are read in all, so a
    reading carries the same factor however many layouts are read: its p-value is its
    alignment's own, times 22."""
    gradient = synthetic_images()["gradient"]
    key = fixed_key(5)
    marked = embed_pixels(from_pil(gradient), key, PAYLOAD).pixels
    for image, search in ((marked, False), (from_pil(attacks.crop(0.75)(marked.to_pil())), True), (from_pil(gradient), True)):
        prep = _codec.prepare(image.luma())
        best = _codec.read_key(prep, key, search=search)
        assert not best.mirrored and not best.flipped and best.stretch == 1.0 and best.window == 1.0
        own = _codec._Frame.of(prep, key, best.layout).read(best.alignment).log_p
        assert best.log_p_value == pytest.approx(min(0.0, own + math.log(_codec.MAX_READINGS)))
    # 8 alignments of the bound layouts, 4 of them mirrored back, 2 flipped back, 2 aspect ratios,
    # 2 windows, and layouts 1 and 2 at the origin and their fitted offsets
    assert _codec.MAX_ALIGNMENTS == 8 and _codec.MAX_READINGS == 22
