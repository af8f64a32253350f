"""Geometry the image reader must survive: mirrors, aspect-ratio changes, brightness and contrast,
the image placed in a larger canvas (padding, a meme band, a screenshot) and perspective.

Marks ``--count`` photos (scikit-image's natural pictures resized to ``--width`` px wide, the size
of a wallpaper or a feed image) under one key, applies every transform below and reads each with
the default detector (full search). Where AugLy 1.0 is installed (``pip install augly``), its own
transforms (``hflip``, ``pad_square``, ``meme_format``, ``overlay_onto_screenshot``,
``perspective_transform``) run too, beside dojang's implementations. It prints, per transform, how
many marked images read ``detected`` at FPR 1e-6 and the median detect time, then the detect time
on the unmarked originals (which pay for the whole search), and writes the figures as JSON.

    python benchmarks/image_geometry.py --out docs/benchmarks/image-geometry.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from PIL import Image, ImageDraw

from dojang.image import ImageDetector, _io, attacks
from dojang.image._api import embed_pixels
from dojang.keys import Key
from dojang.keys._keys import _key_id_for

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "coins",
    "moon",
    "clock",
    "brick",
    "grass",
    "gravel",
)  # fmt: skip (cat is chelsea)
AUGLY_DEFAULTS = ("blur", "brightness", "color_jitter", "contrast", "crop", "encoding_quality", "grayscale", "opacity",
                  "pixelization", "random_noise", "rotate", "saturation", "scale", "sharpen", "vflip")  # fmt: skip
PAYLOAD = bytes.fromhex("0123456789abcdef")
ALPHA = 1e-6


def bench_key() -> Key:
    secret = bytes([0xB7, 1]) * 16
    return Key(key_id=_key_id_for(secret), _secret=secret)


def photos(count: int, width: int) -> dict[str, Image.Image]:
    import skimage.data as skdata

    out = {}
    for name in PHOTOS[:count]:
        arr = getattr(skdata, name)()
        img = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("RGB")
        out[name] = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    return out


def _level(factor: float, kind: str) -> Callable[[Image.Image], Image.Image]:
    def run(im: Image.Image) -> Image.Image:
        a = np.asarray(im, dtype=np.float32)
        a = a * factor if kind == "brightness" else (a - a.mean()) * factor + a.mean()
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))

    return run


def meme_band(band: float) -> Callable[[Image.Image], Image.Image]:
    """A white caption band ``band`` times the image's height above it, with black text."""

    def run(im: Image.Image) -> Image.Image:
        top = round(im.height * band)
        canvas = Image.new("RGB", (im.width, im.height + top), (255, 255, 255))
        canvas.paste(im, (0, top))
        draw = ImageDraw.Draw(canvas)
        for i, word in enumerate(("WHEN THE MODEL", "SAYS IT IS REAL")):
            draw.text((im.width // 8, top // 4 + i * top // 3), word, fill=(0, 0, 0), font_size=max(10, top // 4))
        return canvas

    return run


def screenshot(fraction: float) -> Callable[[Image.Image], Image.Image]:
    """The image at ``fraction`` of a feed screenshot's width, among grey UI blocks and text lines."""

    def run(im: Image.Image) -> Image.Image:
        w = round(im.width / fraction)
        h = round(im.height / fraction)
        canvas = Image.new("RGB", (w, h), (240, 242, 245))
        draw = ImageDraw.Draw(canvas)
        x0, y0 = (w - im.width) // 2, (h - im.height) // 2
        draw.rectangle((x0 - 16, 8, x0 + im.width + 16, h - 8), fill=(255, 255, 255))
        for row in range(24, y0 - 12, 22):
            draw.text((x0, row), "Shared a picture with the group" if row % 44 else "12 min ago", fill=(60, 60, 60))
        draw.rectangle((0, 0, w, 40), fill=(59, 89, 152))
        canvas.paste(im, (x0, y0))
        return canvas

    return run


def perspective(sigma: float, seed: int | None) -> Callable[[Image.Image], Image.Image]:
    """Corners moved by Gaussian displacements of ``sigma`` px, drawn as AugLy's
    ``perspective_transform`` draws them (``RandomState(seed)``; AugLy's default seed is 42, the
    same corners for every image); ``seed=None``: other corners for every image, seeded by its size."""

    def run(im: Image.Image) -> Image.Image:
        w, h = im.size
        rng = np.random.RandomState(seed if seed is not None else (w * 7919 + h) % 2**31)
        src = [(0, 0), (w, 0), (w, h), (0, h)]
        dst = [(rng.normal(x, sigma), rng.normal(y, sigma)) for x, y in src]
        # PIL maps each output pixel (dst) to an input one (src): solve for those 8 coefficients
        rows, rhs = [], []
        for (x, y), (u, v) in zip(dst, src, strict=True):
            rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
            rhs += [u, v]
        coeffs = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
        return im.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BICUBIC)

    return run


def transforms(with_augly: bool) -> list[tuple[str, Callable[[Image.Image], Image.Image]]]:
    out: list[tuple[str, Callable[[Image.Image], Image.Image]]] = [
        ("none", lambda im: im),
        ("mirror", attacks.mirror()),
        ("stretch height x0.8", attacks.stretch(0.8)),
        ("stretch height x1.25", attacks.stretch(1.25)),
        ("stretch width x0.8", attacks.stretch(0.8, axis="width")),
        ("brightness +30 %", _level(1.3, "brightness")),
        ("brightness -30 %", _level(0.7, "brightness")),
        ("contrast +30 %", _level(1.3, "contrast")),
        ("contrast -30 %", _level(0.7, "contrast")),
        ("pad to 80 %", attacks.pad(0.8)),
        ("pad to 50 %", attacks.pad(0.5)),
        ("pad to 30 %", attacks.pad(0.3)),
        ("pad to 50 %, black", attacks.pad(0.5, fill=(0, 0, 0))),
        ("meme band 30 %", meme_band(0.3)),
        ("screenshot 60 %", screenshot(0.6)),
        ("perspective sigma 50 (AugLy's seed 42)", perspective(50.0, 42)),
        ("perspective sigma 50 (a seed per image)", perspective(50.0, None)),
    ]
    if with_augly:
        import augly.image as imaugs

        out += [
            ("augly hflip", imaugs.hflip),
            ("augly pad_square", imaugs.pad_square),
            ("augly meme_format", imaugs.meme_format),
            ("augly overlay_onto_screenshot", imaugs.overlay_onto_screenshot),
            ("augly perspective_transform", imaugs.perspective_transform),
        ]
        # AugLy's everyday edits at their default settings
        out += [(f"augly {name}", getattr(imaugs, name)) for name in AUGLY_DEFAULTS]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=12, help=f"photos (at most {len(PHOTOS)})")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--only", default="", help="comma-separated substrings: run only transforms whose name has one")
    parser.add_argument("--out", default="bench-out/image-geometry.json")
    args = parser.parse_args()
    try:
        import augly.image  # noqa: F401

        with_augly = True
    except ImportError:
        with_augly = False
    key = bench_key()
    detector = ImageDetector(keys=key, alpha=ALPHA)
    images = photos(args.count, args.width)
    marked = {}
    for name, img in images.items():
        marked[name] = embed_pixels(_io.from_pil(img), key, PAYLOAD, check_existing=False).pixels.to_pil()
    rows = []
    wanted = [s for s in args.only.split(",") if s]
    for tname, fn in transforms(with_augly):
        if wanted and not any(s in tname for s in wanted):
            continue
        hits, times, logs = 0, [], []
        try:
            fn(next(iter(marked.values())).copy())
        except Exception as exc:  # AugLy 1.0 calls Pillow APIs that Pillow 10 removed (meme_format)
            print(f"{tname:32s} not run: {type(exc).__name__}: {exc}")
            rows.append({"transform": tname, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for img in marked.values():
            edited = fn(img.copy()).convert("RGB")
            buf = io.BytesIO()
            edited.save(buf, "PNG")
            t0 = time.perf_counter()
            det = detector.detect_bytes(buf.getvalue())
            times.append(time.perf_counter() - t0)
            ok = det.verdict == "detected" and det.payload == PAYLOAD
            hits += ok
            logs.append(round(det.log10_p_value, 1) if det.log10_p_value is not None else 0.0)
        rows.append({"transform": tname, "detected": hits, "images": len(marked), "median_s": statistics.median(times),
                     "log10_p": logs})  # fmt: skip
        print(f"{tname:32s} {hits:3d}/{len(marked):<3d} median {statistics.median(times) * 1000:7.0f} ms", flush=True)
    unmarked = []
    for img in images.values():
        t0 = time.perf_counter()
        det = detector.detect(img)
        unmarked.append(time.perf_counter() - t0)
        assert det.verdict != "detected"
    median, worst = statistics.median(unmarked) * 1000, max(unmarked) * 1000
    print(f"{'unmarked (whole search)':32s}         median {median:7.0f} ms, max {worst:.0f} ms")
    out = {
        "command": "python benchmarks/image_geometry.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores",
        "augly": with_augly,
        "alpha": ALPHA,
        "rows": rows,
        "unmarked_median_s": statistics.median(unmarked),
        "unmarked_max_s": max(unmarked),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
