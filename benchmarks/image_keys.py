"""dojang's image benchmark over several keys: the same 21 images and 26 attacks as
``image_bench.py``, marked and read with keys 1..N, so that key-dependent results (crops of pure
textures) are not one key's luck. Prints per key the misses at FPR 1e-6 and the photos' PSNR,
then per attack the TPR over all keys.

    .venv/bin/python benchmarks/image_keys.py --keys 4 --workers 2   # ~6 minutes on 2 cores

Each key runs in its own process (``--workers`` at a time); the readings use the full search, as
``dojang image detect`` does.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import image_bench as ib

ALPHA_LOG10 = -6.0


def run_key(index: int) -> dict:
    """Embed every image with ``bench_key(index)``, apply every attack, read: log10 p per reading."""
    from dojang.image import _codec, _io, attacks
    from dojang.image._api import embed_pixels

    key = ib.bench_key(index)
    suite = attacks.standard()
    reads: dict[str, dict[str, float]] = {}
    psnr: dict[str, float] = {}
    for name, img in ib.load_images(False).items():
        marked_px = embed_pixels(_io.from_pil(img), key, ib.PAYLOAD, check_existing=False).pixels
        marked = marked_px.to_pil()
        psnr[name] = ib.psnr(img, marked)
        for attack in suite:
            px = _io.from_pil(attack(marked))
            if min(px.height, px.width) < 128:
                continue
            reading = _codec.read_key(_codec.prepare(px.luma()), key, search=True)
            reads.setdefault(attack.name, {})[name] = reading.log_p_value / math.log(10)
    return {"key": index, "reads": reads, "psnr": psnr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=4, help="keys 1..N (default 4)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="bench-out/image_keys.json")
    args = parser.parse_args()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_key, range(1, args.keys + 1)))
    print(f"# dojang over {args.keys} keys: 21 images x 26 attacks each, detected at p <= 1e-6\n")
    print("| key | misses | photo PSNR mean (min) | photos under 38 dB |")
    print("|---|---|---|---|")
    per_attack: dict[str, list[bool]] = defaultdict(list)
    for res in results:
        flat = [(a, n, lp) for a, row in res["reads"].items() for n, lp in row.items()]
        for a, _, lp in flat:
            per_attack[a].append(lp <= ALPHA_LOG10)
        photos = {n: p for n, p in res["psnr"].items() if n not in ib.SYNTHETIC}
        low = ", ".join(f"{n} {p:.1f}" for n, p in photos.items() if p < 38.0) or "none"
        misses = sum(lp > ALPHA_LOG10 for _, _, lp in flat)
        mean = statistics.mean(photos.values())
        print(f"| {res['key']} | {misses} of {len(flat)} | {mean:.2f} ({min(photos.values()):.1f}) | {low} |")
    print("\n| attack | TPR@1e-6 over all keys |")
    print("|---|---|")
    for attack, hits in per_attack.items():
        print(f"| {attack} | {statistics.mean(hits):.2f} |")
    total = [h for hits in per_attack.values() for h in hits]
    mean_tpr = statistics.mean(statistics.mean(h) for h in per_attack.values())
    print(f"| **mean** | {mean_tpr:.3f} ({sum(not h for h in total)} misses of {len(total)}) |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
