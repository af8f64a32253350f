"""Provenance benchmark: what stamping costs (time, bytes) and how often durable credentials come back.

For each test image and format it stamps (watermark + signed C2PA manifest + store entry), then
measures: stamp and verify time, the bytes the manifest adds (thumbnail off, dojang's default,
beside c2pa's default with the thumbnail on), the share of everyday edits after which `verify`
still answers ``recovered``, and false recoveries when a mark is copied onto another picture
(must be 0). Usage: python benchmarks/provenance_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from image_bench import bench_key, load_images

from dojang.bench._tables import Report, run_meta
from dojang.image import attacks, embed
from dojang.provenance import (
    IMAGE_MATCH_BITS,
    ManifestSigner,
    SQLiteStore,
    ai_image_manifest,
    hamming,
    image_fingerprint,
    init_dev_chain,
    read_manifest,
    sign_asset,
    stamp_bytes,
    verify_bytes,
)

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EDITS = {
    "jpeg90": attacks.jpeg(90),
    "jpeg75": attacks.jpeg(75),
    "jpeg50": attacks.jpeg(50),
    "webp80": attacks.webp(80),
    "resize50%": attacks.rescale(0.5),
    "crop90%": attacks.crop(0.9),
    "screenshot": attacks.screenshot(),
    "brightness+10%": attacks.brightness(1.1),
}


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, fmt, **({"quality": 92} if fmt != "PNG" else {}))
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 photos + 2 synthetic images")
    parser.add_argument("--out", default=None, help="write the tables as JSON here (docs/benchmarks/provenance-bench.json)")
    args = parser.parse_args()
    images = {n: im.convert("RGB") for n, im in load_images(args.quick).items() if min(im.size) >= 256}
    key = bench_key(1)
    with tempfile.TemporaryDirectory() as tmp:
        chain = init_dev_chain(Path(tmp) / "certs")
        signer = ManifestSigner.from_files(str(chain.chain), str(chain.signing_key))
        trust = chain.root.read_text()
        store = SQLiteStore(Path(tmp) / "store.sqlite3")
        times: dict[str, list[float]] = defaultdict(list)
        overhead: dict[str, list[int]] = defaultdict(list)
        thumb_overhead: dict[str, list[int]] = defaultdict(list)
        stamped: dict[str, tuple[bytes, str]] = {}
        for name, im in images.items():
            src = _png(im)
            for fmt, mime in FORMATS.items():
                t0 = time.perf_counter()
                signed, info = stamp_bytes(src, fmt, key=key, signer=signer, store=store, generator="bench-gen", title=name)
                times[f"stamp {fmt}"].append(time.perf_counter() - t0)
                plain = _encode(Image.open(io.BytesIO(signed)), fmt) if fmt == "PNG" else None
                # Bytes the manifest adds: signed file minus the same marked pixels signed with nothing.
                marked = Image.open(io.BytesIO(signed))
                base = io.BytesIO()
                if fmt == "PNG":
                    base.write(plain or b"")
                else:
                    marked.save(base, fmt, quality=95, **({"subsampling": 0} if fmt == "JPEG" else {}))
                t0 = time.perf_counter()
                manifest = ai_image_manifest(
                    title=name,
                    generator="bench-gen",
                    payload=bytes.fromhex(info.content_id),
                    when="2026-01-01T00:00:00Z",
                    key_id=key.key_id,
                )
                resigned, _ = sign_asset(base.getvalue(), mime, manifest, signer)
                times[f"sign only {fmt}"].append(time.perf_counter() - t0)
                with_thumb, _ = sign_asset(base.getvalue(), mime, manifest, signer, thumbnail=True)
                overhead[fmt].append(len(resigned) - len(base.getvalue()))
                thumb_overhead[fmt].append(len(with_thumb) - len(base.getvalue()))
                t0 = time.perf_counter()
                view = read_manifest(signed, mime, trust_pem=trust)
                times[f"read+validate {fmt}"].append(time.perf_counter() - t0)
                assert view is not None and view.state == "trusted"
                if fmt == "JPEG":
                    stamped[name] = (signed, info.content_id)
        # Durable credentials after everyday edits.
        recovered: dict[str, list[bool]] = defaultdict(list)
        misses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for signed, cid in stamped.values():
            im = Image.open(io.BytesIO(signed)).convert("RGB")
            for edit_name, edit in EDITS.items():
                data = _encode(edit(im), "JPEG")
                t0 = time.perf_counter()
                v = verify_bytes(data, keys=key, trust_pem=trust, store=store)
                times["verify (key + store)"].append(time.perf_counter() - t0)
                ok = v.state == "recovered" and v.recovered_from is not None and v.recovered_from["content_id"] == cid
                recovered[edit_name].append(ok)
                if not ok:
                    why = (
                        "mark not read"
                        if v.watermark is None or v.watermark.payload is None
                        else ("fingerprint too far" if "different picture" in v.reason else v.reason)
                    )
                    misses[edit_name][why] += 1
        # Copy attack: the very same mark on each other picture.
        false_recoveries = tries = 0
        names = list(stamped)
        cross: list[int] = []
        for i, a in enumerate(names):
            _, cid = stamped[a]
            b = names[(i + 1) % len(names)]
            forged = embed(images[b], key, cid, check_existing=False)
            v = verify_bytes(_encode(forged, "PNG"), keys=key, trust_pem=trust, store=store)
            tries += 1
            false_recoveries += v.state == "recovered"
            cross.append(hamming(image_fingerprint(images[a]), image_fingerprint(images[b])))

    report = Report()
    report.text(f"{len(images)} images (scikit-image photographs and synthetic images), JPEG, PNG and WebP.")
    steps = [[step, f"{statistics.median(ts):.3f}", f"{max(ts):.3f}"] for step, ts in times.items()]
    report.table(["step", "median s", "max s"], steps)
    report.table(
        ["format", "manifest bytes added (thumbnail off, default)", "with c2pa's thumbnail on"],
        [[fmt, f"{statistics.median(overhead[fmt]):,.0f}", f"{statistics.median(thumb_overhead[fmt]):,.0f}"] for fmt in FORMATS],
    )
    report.table(
        ["edit after stamping (then saved as JPEG 92)", "recovered", "why the others were not"],
        [
            [edit_name, f"{sum(ok)}/{len(ok)}", ", ".join(f"{k}: {n}" for k, n in misses[edit_name].items())]
            for edit_name, ok in recovered.items()
        ],
    )
    report.text(
        f"Copy attack (same key and content id on another picture): {false_recoveries}/{tries} false recoveries; "
        f"fingerprint distance between those pictures: min {min(cross)}, median {statistics.median(cross)} "
        f"(threshold {IMAGE_MATCH_BITS})."
    )
    print(report.markdown())
    if args.out:
        meta = run_meta("python benchmarks/provenance_bench.py " + " ".join(sys.argv[1:]))
        Path(args.out).write_text(json.dumps({"report": report.blocks, "meta": meta}, indent=1))


if __name__ == "__main__":
    main()
