"""``dojang bench image``: embed a mark in test images, attack them, detect, and measure quality.

Test images are scikit-image's samples, synthetic renders (flat graphics, gradients, text,
texture, a smooth 'AI render') or files. The null set is the unmarked originals put through
every attack; the same detector (exact p-values, geometric search on) scores both sides.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from dojang.bench._common import Progress, environment, need, no_progress
from dojang.bench._results import AttackResult, BenchResult, Curve, Example, NullResult
from dojang.bench._suite import ImageSuite, Step
from dojang.errors import ConfigError, DojangError
from dojang.image import SCHEME, ImageDetector, embed, psnr
from dojang.image import attacks as A
from dojang.keys import Key, generate_key

__all__ = ["build_image_attack", "image_quality", "load_test_image", "run_image", "synthetic_images"]

log = logging.getLogger(__name__)
SIZE_FACTORS = (0.25, 0.35, 0.5, 0.7, 1.0)  # downscales for detection against pixel count
AMPLIFY = 20.0


def synthetic_images(width: int = 768, height: int = 512) -> dict[str, Image.Image]:
    """Flat graphics, a smooth gradient, text on white, a texture and a smooth 'AI render'."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    flat = Image.new("RGB", (width, height), (236, 240, 244))
    d = ImageDraw.Draw(flat)
    d.rectangle((60, 60, 360, 300), fill=(33, 150, 243))
    d.ellipse((420, 120, 700, 400), fill=(255, 193, 7))
    d.polygon([(100, 460), (300, 330), (500, 470)], fill=(76, 175, 80))
    grad = np.stack([40 + 180 * xx / width, 90 + 120 * yy / height, 200 - 100 * xx / width], -1)
    gradient = Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8))
    text = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(text)
    try:
        font = ImageFont.load_default(size=28)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    lines = ["dojang: make AI content identifiable", "Seoul AI Business Pledge, 2024", "AI Basic Act, January 2026",
             "EU AI Act, Article 50", "0123456789 ABCDEFGHIJ abcdefghij"]  # fmt: skip
    for i, line in enumerate(lines):
        d.text((40, 40 + 60 * i), line, fill=(20, 20, 20), font=font)
    d.rectangle((40, 360, 720, 470), outline=(200, 30, 30), width=6)
    noise = rng.normal(0, 1, (height // 4, width // 4))
    tex = np.kron(noise, np.ones((4, 4)))
    tex_img = Image.fromarray(np.clip(128 + 45 * tex, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    canvas = np.stack([20 + 30 * yy / height, 25 + 20 * yy / height, 60 + 50 * yy / height], -1)
    for _ in range(9):  # soft light blobs over a dark gradient, the look of many generated images
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(40, 160)
        colour = rng.uniform(60, 255, 3)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        canvas = canvas * (1 - 0.7 * blob) + colour * 0.7 * blob
    render = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    return {"flat": flat, "gradient": gradient, "text": text, "texture": tex_img.convert("RGB"), "smooth-render": render}


def load_test_image(name: str, *, max_side: int = 512) -> Image.Image:
    """A scikit-image sample by name, ``synthetic:NAME``, or an image file; RGB, scaled down so
    that its longer side is at most ``max_side`` (but the shorter one stays >= 256 px)."""
    if name.startswith("synthetic:"):
        synth = synthetic_images()
        which = name.split(":", 1)[1]
        if which not in synth:
            raise ConfigError(f"images: unknown synthetic image {which!r}; choose from {', '.join(synth)}")
        img = synth[which]
    elif Path(name).suffix:
        try:
            with Image.open(name) as opened:
                img = opened.convert("RGB")
        except FileNotFoundError:
            raise ConfigError(f"images: {name}: file not found") from None
        except OSError as err:
            raise ConfigError(f"images: {name}: cannot read as an image ({err})") from None
    else:
        data = need("skimage.data")
        if name.startswith("_") or not callable(getattr(data, name, None)):
            raise ConfigError(f"images: {name!r} is neither a scikit-image sample, synthetic:NAME nor an image file")
        arr = getattr(data, name)()
        img = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("RGB")
    scale = max(max_side / max(img.size), 256 / min(img.size))  # never below the 256 px a mark needs
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    return img


_FACTORIES: dict[str, Callable[..., A.Attack]] = {
    "none": A.identity, "jpeg": A.jpeg, "webp": A.webp, "resize": lambda f: A.rescale(f, back=True),
    "resize_width": A.resize_width, "crop": A.crop, "rotate": A.rotate, "blur": A.blur, "noise": A.noise,
    "brightness": A.brightness, "contrast": A.contrast, "saturation": A.saturation, "gamma": A.gamma,
    "screenshot": A.screenshot, "mirror": A.mirror, "stretch": A.stretch, "pad": A.pad,
}  # fmt: skip


def build_image_attack(steps: tuple[Step, ...]) -> list[A.Attack]:
    """The attacks a parsed pipeline stands for ("standard" expands to the 26 standard attacks)."""
    if steps[0][0] == "standard":
        return A.standard()
    return [A.chain(*[_FACTORIES[name](*args) for name, args in steps])]


def image_quality(original: Image.Image, marked: Image.Image) -> dict[str, float]:
    """PSNR (dB), SSIM and mean CIEDE2000 colour difference (weight-free, perceptual)."""
    metrics, color = need("skimage.metrics"), need("skimage.color")
    a, b = np.asarray(original.convert("RGB")), np.asarray(marked.convert("RGB"))
    delta = color.deltaE_ciede2000(color.rgb2lab(a), color.rgb2lab(b))
    return {
        "psnr_db": psnr(a, b),
        "ssim": float(metrics.structural_similarity(a, b, channel_axis=2, data_range=255)),
        "ciede2000_mean": float(np.mean(delta)),
        "ciede2000_p99": float(np.percentile(delta, 99)),
    }


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _example(name: str, original: Image.Image, marked: Image.Image) -> Example:
    diff = np.asarray(marked, dtype=np.float32) - np.asarray(original, dtype=np.float32)
    amp = Image.fromarray(np.clip(128 + AMPLIFY * diff, 0, 255).astype(np.uint8))
    thumb = (min(original.width, 384), round(original.height * min(original.width, 384) / original.width))
    return Example(name, _png(original.resize(thumb)), _png(marked.resize(thumb)), _png(amp.resize(thumb)), AMPLIFY)


def _log10p(detector: ImageDetector, img: Image.Image) -> float:
    try:
        return detector.detect(img).log10_p_value
    except DojangError as err:  # too small to read after the attack: no evidence
        log.debug("no reading (%s)", err)
        return 0.0


def run_image(suite: ImageSuite, *, key: Key | None = None, progress: Progress = no_progress) -> BenchResult:
    """Run an image suite and return its typed result (write it with :func:`write_report`)."""
    t0 = time.perf_counter()
    key = key or generate_key()
    rng = np.random.default_rng(suite.seed)
    images = {name: load_test_image(name, max_side=suite.max_side) for name in suite.images}
    attack_list = [a for steps in suite.pipelines for a in build_image_attack(steps)]
    sweeps = [(name, values, [_FACTORIES[name](int(v) if name in ("jpeg", "webp") else v) for v in values])
              for name, values in suite.sweeps]  # fmt: skip
    detector = ImageDetector(keys=key, alpha=suite.alpha)
    plain_reader = ImageDetector(keys=key, search=False)  # which layout each marked image carries
    total = len(images) * (1 + 2 * len(attack_list) + sum(len(v) for _, v, _ in sweeps) + len(SIZE_FACTORS))
    done = 0

    def step(stage: str) -> None:
        nonlocal done
        done += 1
        progress(stage, done, total)

    marked_by: dict[str, Image.Image] = {}
    schemes: set[str] = set()  # the layouts the embedder chose (image/v1 on photos, image/v2 on smooth images)
    quality: dict[str, dict[str, float]] = {}
    examples = []
    for i, (name, img) in enumerate(images.items()):
        payload = rng.bytes(8)
        try:
            marked_by[name] = embed(img, key, payload)
        except DojangError as err:
            raise ConfigError(f"images: {name}: cannot be marked ({err})") from None
        schemes.add(plain_reader.detect(marked_by[name]).scheme)
        quality[name] = image_quality(img, marked_by[name])
        if i < suite.examples:
            examples.append(_example(name, img, marked_by[name]))
        step(f"embedding {name}")
    if quality:
        quality["mean"] = {k: float(np.mean([q[k] for q in quality.values()])) for k in next(iter(quality.values()))}

    marked_p: dict[str, list[float]] = {}
    null_p: dict[str, list[float]] = {}
    sizes: dict[str, list[int]] = {}
    for attack in attack_list:
        for name, img in images.items():
            attacked = attack(marked_by[name])
            marked_p.setdefault(attack.name, []).append(_log10p(detector, attacked))
            sizes.setdefault(attack.name, []).append(attacked.width * attacked.height)
            step(f"{attack.name}: marked {name}")
            null_p.setdefault(attack.name, []).append(_log10p(detector, attack(img)))
            step(f"{attack.name}: unmarked {name}")
    null_all = [p for ps in null_p.values() for p in ps]
    null = NullResult.build(null_all, ["unmarked images, attacked"] * len(null_all), suite.fprs)
    results = tuple(
        AttackResult.build(
            name, ps, null, suite.fprs, float(np.mean(sizes[name])),
            fpr_attacked_null=float(np.mean(np.asarray(null_p[name]) <= math.log10(suite.alpha))),
        )
        for name, ps in marked_p.items()
    )  # fmt: skip

    curves = []
    for name, values, attacks in sweeps:
        tpr = []
        for value, attack in zip(values, attacks, strict=True):
            hits = []
            for img_name, marked in marked_by.items():
                hits.append(_log10p(detector, attack(marked)) <= math.log10(suite.alpha))
                step(f"sweep {name} {value:g}: {img_name}")
            tpr.append(float(np.mean(hits)))
        label = {"jpeg": "JPEG quality", "crop": "fraction of each side kept", "rotate": "degrees"}.get(name, name)
        curves.append(Curve(name, label, tuple(float(v) for v in values), tuple(tpr), suite.alpha))

    pixels, size_tpr = [], []
    for factor in SIZE_FACTORS:
        hits, px = [], []
        for img_name, marked in marked_by.items():
            small = marked.resize((max(1, round(marked.width * factor)), max(1, round(marked.height * factor))),
                                  Image.Resampling.BICUBIC)  # fmt: skip
            hits.append(_log10p(detector, small) <= math.log10(suite.alpha))
            px.append(small.width * small.height)
            step(f"size x{factor:g}: {img_name}")
        pixels.append(float(np.mean(px)))
        size_tpr.append(float(np.mean(hits)))
    length = Curve("pixels", "pixels (image scaled down)", tuple(pixels), tuple(size_tpr), suite.alpha)
    scheme = " + ".join(sorted(schemes)) or SCHEME
    return BenchResult(
        modality="image", scheme=scheme, key_id=key.key_id, suite=suite.to_dict(), null=null, attacks=results,
        length=length, sweeps=tuple(curves), quality=quality, seconds=time.perf_counter() - t0,
        environment=environment(), examples=tuple(examples),
    )  # fmt: skip
