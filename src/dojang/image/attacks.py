"""Everyday edits as small composable callables, for robustness tests and benchmarks.

An :class:`Attack` maps a PIL image to a PIL image and has a name; ``a + b`` chains two. The
``STANDARD`` list is the benchmark's attack suite; ``sweep`` builds strength sweeps.

>>> from dojang.image.attacks import jpeg, crop, chain
>>> edited = chain(crop(0.9), jpeg(75))(image)        # doctest: +SKIP
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


@dataclass(frozen=True)
class Attack:
    name: str
    fn: Callable[[Image.Image], Image.Image]

    def __call__(self, image: Image.Image) -> Image.Image:
        return self.fn(image)

    def __add__(self, other: Attack) -> Attack:
        return chain(self, other)


def chain(*attacks: Attack) -> Attack:
    def run(image: Image.Image) -> Image.Image:
        for attack in attacks:
            image = attack(image)
        return image

    return Attack(" + ".join(a.name for a in attacks), run)


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> Image.Image:
    buf = io.BytesIO()
    rgb = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    rgb.save(buf, fmt, **kwargs)
    out = Image.open(io.BytesIO(buf.getvalue()))
    out.load()
    return out


def identity() -> Attack:
    return Attack("none", lambda im: im)


def jpeg(quality: int) -> Attack:
    return Attack(f"jpeg {quality}", lambda im: _encode(im, "JPEG", quality=quality))


def webp(quality: int, *, method: int | None = None) -> Attack:
    """WebP at ``quality``; ``method`` (0 fast .. 6 thorough) is libwebp's effort, its default 4 when None."""
    if method is None:
        return Attack(f"webp {quality}", lambda im: _encode(im, "WEBP", quality=quality))
    return Attack(f"webp {quality} (method {method})", lambda im: _encode(im, "WEBP", quality=quality, method=method))


def rescale(factor: float, *, back: bool = False) -> Attack:
    def run(im: Image.Image) -> Image.Image:
        small = im.resize((max(1, round(im.width * factor)), max(1, round(im.height * factor))), Image.Resampling.BICUBIC)
        return small.resize(im.size, Image.Resampling.BICUBIC) if back else small

    return Attack(f"resize {factor:g}x" + (" and back" if back else ""), run)


def resize_width(width: int) -> Attack:
    return Attack(
        f"resize to {width} px wide",
        lambda im: im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.LANCZOS),
    )


def crop(fraction: float, *, cx: float = 0.5, cy: float = 0.5) -> Attack:
    """Keep ``fraction`` of each side; ``cx``/``cy`` place the window (0.5 = centre)."""

    def run(im: Image.Image) -> Image.Image:
        w, h = round(im.width * fraction), round(im.height * fraction)
        x0, y0 = round((im.width - w) * cx), round((im.height - h) * cy)
        return im.crop((x0, y0, x0 + w, y0 + h))

    where = "centre" if (cx, cy) == (0.5, 0.5) else "off-centre"
    return Attack(f"crop {fraction:.0%} {where}", run)


def rotate(degrees: float, *, expand: bool = False) -> Attack:
    return Attack(f"rotate {degrees:g} deg", lambda im: im.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=expand))


def mirror() -> Attack:
    """Left-right mirror (a mirrored selfie, a flipped repost)."""
    return Attack("mirror", lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def stretch(factor: float, *, axis: str = "height") -> Attack:
    """Resize one axis by ``factor`` and keep the other (an aspect-ratio change)."""
    if axis not in ("height", "width"):
        raise ValueError("axis must be 'height' or 'width'")

    def run(im: Image.Image) -> Image.Image:
        size = (
            (im.width, max(1, round(im.height * factor))) if axis == "height" else (max(1, round(im.width * factor)), im.height)
        )
        return im.resize(size, Image.Resampling.LANCZOS)

    return Attack(f"stretch {axis} x{factor:g}", run)


def pad(fraction: float, *, fill: tuple[int, int, int] = (255, 255, 255)) -> Attack:
    """Place the image, unscaled, in the middle of a canvas whose sides are its own over
    ``fraction`` (a screenshot, a meme band, square padding)."""

    def run(im: Image.Image) -> Image.Image:
        canvas = Image.new(im.mode, (round(im.width / fraction), round(im.height / fraction)), fill if im.mode == "RGB" else 255)
        canvas.paste(im, ((canvas.width - im.width) // 2, (canvas.height - im.height) // 2))
        return canvas

    return Attack(f"pad to {fraction:.0%}", run)


def blur(sigma: float) -> Attack:
    return Attack(f"blur sigma {sigma:g}", lambda im: im.filter(ImageFilter.GaussianBlur(sigma)))


def noise(sigma: float, *, seed: int = 0) -> Attack:
    """Gaussian noise with standard deviation ``sigma`` on the [0, 1] scale."""

    def run(im: Image.Image) -> Image.Image:
        arr = np.asarray(im).astype(np.float32)
        rng = np.random.default_rng(seed)
        out = arr + rng.normal(0.0, sigma * 255.0, arr.shape).astype(np.float32)
        return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), im.mode)

    return Attack(f"noise sigma {sigma:g}", run)


def brightness(factor: float) -> Attack:
    return Attack(f"brightness {factor - 1:+.0%}", lambda im: ImageEnhance.Brightness(im).enhance(factor))


def contrast(factor: float) -> Attack:
    return Attack(f"contrast {factor - 1:+.0%}", lambda im: ImageEnhance.Contrast(im).enhance(factor))


def saturation(factor: float) -> Attack:
    return Attack(f"saturation {factor - 1:+.0%}", lambda im: ImageEnhance.Color(im).enhance(factor) if im.mode != "L" else im)


def gamma(value: float) -> Attack:
    table = [min(255, round(255.0 * (i / 255.0) ** value)) for i in range(256)]

    def run(im: Image.Image) -> Image.Image:
        return im.point(table * (len(im.getbands())))

    return Attack(f"gamma {value:g}", run)


def screenshot() -> Attack:
    """Downscale 0.8x, a 3 px offset crop, JPEG 80: what a screenshot of a shared image does."""

    def run(im: Image.Image) -> Image.Image:
        small = im.resize((round(im.width * 0.8), round(im.height * 0.8)), Image.Resampling.BILINEAR)
        return _encode(small.crop((3, 3, small.width, small.height)), "JPEG", quality=80)

    return Attack("screenshot (0.8x + 3 px crop + jpeg 80)", run)


def standard() -> list[Attack]:
    """The standard image benchmark suite: 26 single edits, then combinations of two."""
    singles = [
        identity(),
        jpeg(90),
        jpeg(75),
        jpeg(50),
        webp(50),
        rescale(0.5, back=True),
        resize_width(512),
        crop(0.9),
        crop(0.75),
        crop(0.8, cx=0.1, cy=0.8),
        rotate(2),
        rotate(10),
        blur(1.0),
        noise(0.05),
        brightness(1.2),
        brightness(0.8),
        contrast(1.2),
        contrast(0.8),
        saturation(1.5),
        gamma(0.8),
        screenshot(),
    ]
    pairs = [
        crop(0.9) + jpeg(75),
        rotate(2) + jpeg(75),
        rescale(0.5, back=True) + brightness(1.2),
        crop(0.9) + noise(0.05),
        contrast(0.8) + jpeg(50),
    ]
    return singles + pairs


def sweeps() -> dict[str, list[tuple[float, Attack]]]:
    """Strength sweeps for robustness curves: JPEG quality, crop fraction, rotation angle."""
    return {
        "jpeg quality": [(q, jpeg(q)) for q in (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)],
        "crop fraction": [(f, crop(f)) for f in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)],
        "rotation degrees": [(d, rotate(d)) for d in (0, 1, 2, 5, 10, 15, 20, 30, 45)],
    }
