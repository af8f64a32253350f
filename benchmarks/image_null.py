"""False positives of the image reader on unmarked images, with the full search.

Draws ``--count`` unmarked images (random crops, 30-100 % of the short side, of the scikit-image
pictures, mirrored at random, resized to 256..1024 px on the short side, some re-encoded as JPEG),
reads each under a fresh random key with the default detector (geometric search on), and prints
the verdicts, the smallest p-values, how many fall under 0.001 / 0.01 / 0.05 / 0.1 and a
Kolmogorov-Smirnov test against the uniform distribution (the p-values of a valid test are
uniform or larger: a one-sided test, ``alternative="greater"`` on the empirical CDF, says whether
they are too small). The reported p-value is 1 wherever no payload verifies, so it is mostly 1;
the MAC statistic itself, read at the origin in layout 3, is exact, and its two-sided KS test
against the uniform distribution is printed too. Writes the figures to ``--out`` as JSON.

    python benchmarks/image_null.py --count 2000 --workers 2 --out bench-out/image-null.json
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from dojang.bench._tables import run_meta

SOURCES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "immunohistochemistry",
           "moon", "retina", "cat", "clock", "cell", "brick", "grass", "gravel", "page", "text", "horse", "logo")  # fmt: skip


def _image(index: int, seed: int) -> np.ndarray:
    import skimage.data as skdata
    from PIL import Image

    rng = np.random.default_rng([seed, index])
    arr = getattr(skdata, SOURCES[index % len(SOURCES)])()
    img = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("RGB")
    side = int(min(img.size) * rng.uniform(0.3, 1.0))
    w = min(img.width, int(side * rng.uniform(1.0, 1.6)))
    x0, y0 = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - side + 1))
    img = img.crop((x0, y0, x0 + w, y0 + side))
    short = int(rng.integers(256, 1025))
    img = img.resize((round(img.width * short / img.height), short), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(50, 96)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(img)


def _read(job: tuple[int, int]) -> tuple[float, str, bool, float, float]:
    from dojang.image import ImageDetector, _codec, _io, _sync
    from dojang.image._pattern import LAYOUTS
    from dojang.keys import generate_key

    index, seed = job
    image = _image(index, seed)
    key = generate_key()
    t = time.perf_counter()
    result = ImageDetector(keys=key).detect(image)
    seconds = time.perf_counter() - t
    frame = _codec._Frame.of(_codec.prepare(_io.from_array(image).luma()), key, LAYOUTS[3])
    mac = frame.read(_sync.Alignment(1.0, 0.0)).log_p_mac
    return result.log10_p_value, result.verdict.value, bool(result.keyed_pattern_seen), seconds, mac


def main() -> None:
    from scipy import stats

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    started = time.time()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_read, [(i, args.seed) for i in range(args.count)], chunksize=8))
    log10p = np.array([r[0] for r in rows])
    p = 10.0**log10p
    verdicts = {v: sum(r[1] == v for r in rows) for v in ("detected", "inconclusive", "not_detected")}
    # p-values of 1 (no payload verified anywhere) are ties at the top: the KS test of validity asks
    # whether small p-values are too frequent, so the statistic is the largest excess of the
    # empirical CDF over the uniform one.
    ks = stats.kstest(p, "uniform", alternative="greater")
    mac = np.exp([r[4] for r in rows])
    out = {
        "count": args.count, "seed": args.seed, "verdicts": verdicts,
        "keyed_pattern_seen": sum(r[2] for r in rows),
        "smallest_log10_p": sorted(round(float(x), 2) for x in log10p)[:5],
        "under": {str(a): int((p <= a).sum()) for a in (1e-6, 1e-3, 0.01, 0.05, 0.1)},
        "ks_greater_statistic": float(ks.statistic), "ks_greater_p": float(ks.pvalue),
        "mac_origin_ks_p": float(stats.kstest(mac, "uniform").pvalue),
        "mac_origin_under": {str(a): int((mac <= a).sum()) for a in (0.001, 0.01, 0.05, 0.1, 0.5)},
        "seconds_per_image": {"mean": float(np.mean([r[3] for r in rows])), "max": float(np.max([r[3] for r in rows]))},
        "machine": f"{platform.machine()}, {platform.python_version()}", "wall_seconds": round(time.time() - started, 1),
        "meta": run_meta("python benchmarks/image_null.py " + " ".join(sys.argv[1:])),
    }  # fmt: skip
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
