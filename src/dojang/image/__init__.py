"""Image watermarks: a keyed, invisible mark with a 64-bit payload that survives everyday edits.

>>> from dojang.image import embed, detect
>>> marked = embed(pil_image, key, payload="00112233445566ff")   # doctest: +SKIP
>>> detect(marked, key).payload.hex()                            # doctest: +SKIP
'00112233445566ff'

The mark is a periodic keyed tile in the luma channel, with a sync layer that finds it again
after crops, rotations, rescaling, mirroring and aspect-ratio changes; the payload is BCH-coded
in a versioned layout with a keyed MAC, and its data is bound to the image's own content, so a
verdict proves a payload that nobody can plant by averaging marked images or copying a mark;
every detection carries an exact false-positive probability. The format is written down in
``docs/spec/image.md``. Only numpy, scipy and Pillow are needed (no model weights).
"""

from dojang.image._api import (
    DEFAULT_ALPHA,
    MIN_DETECT_SIDE,
    MIN_EMBED_SIDE,
    SCHEME,
    Embedded,
    ImageDetector,
    detect,
    detect_file,
    embed,
    embed_file,
    parse_payload,
    psnr,
    random_payload,
)

__all__ = [
    "DEFAULT_ALPHA",
    "MIN_DETECT_SIDE",
    "MIN_EMBED_SIDE",
    "SCHEME",
    "Embedded",
    "ImageDetector",
    "detect",
    "detect_file",
    "embed",
    "embed_file",
    "parse_payload",
    "psnr",
    "random_payload",
]
