"""Scan throughput on this machine: items per second per core for text (200-token documents)
and images (1 MP), the scoring function alone and the local and Ray engines end to end, beside
a naive per-document loop and transformers' WatermarkDetector on the same documents.

    python benchmarks/scan_bench.py [--docs 20000] [--repeat 10] [--images 16] [--no-ray] [--no-reference]

Text documents are 200-token slices of the shipped human corpus (English and Korean, shuffled);
the detector scores every token of every document whether it is marked or not, so marked
documents would cost the same. Prints a Markdown table; numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dojang.bench._tables import Report, run_meta
from dojang.keys import generate_key
from dojang.scan import Item, Scorer, scan
from dojang.scan._score import default_tokenizer_json


def text_docs(n: int, tokenizer) -> list[str]:  # type: ignore[no-untyped-def]
    import gzip
    import json
    from importlib import resources

    path = resources.files("dojang") / "data" / "human_corpus.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    docs: list[str] = []
    for enc in tokenizer.encode_batch_fast(texts, add_special_tokens=False):
        ids = enc.ids
        docs.extend(tokenizer.decode(ids[i : i + 200]) for i in range(0, len(ids) - 199, 200))
        if len(docs) >= n:
            break
    rng = np.random.default_rng(0)
    return [docs[i] for i in rng.permutation(len(docs))[:n]]  # English and Korean mixed


def rate(n: int, seconds: float) -> str:
    r = n / seconds
    return f"{r:,.0f}" if r >= 10 else f"{r:.2f}"


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=10, help="engines: the documents this many times over")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--out", default=None, help="write the table as JSON here (docs/benchmarks/scan-bench.json)")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    cores = os.cpu_count() or 1
    spec = default_tokenizer_json()
    tok = Tokenizer.from_str(spec)
    key = generate_key()
    docs = text_docs(args.docs, tok)
    rows: list[tuple[str, str, str, str]] = []  # (what, items, items/s, items/s per core)

    def add(what: str, n: int, seconds: float, cores_used: int) -> None:
        rows.append((what, f"{n:,}", rate(n, seconds), rate(n, seconds * cores_used)))
        print(f"  {what}: {n / seconds:,.0f} items/s ({cores_used} core(s))", flush=True)

    load = os.getloadavg()[0]
    print(f"text: {len(docs)} documents of 200 tokens; {cores} cores; load average {load:.1f}", flush=True)
    sub = docs[:5000]
    # -- stages, one core ---------------------------------------------------------------------
    _, s = timed(lambda: tok.encode_batch_fast(sub, add_special_tokens=False))
    add("stage: Rust tokenizer (encode_batch_fast)", len(sub), s, 1)
    from dojang.scan._tokenize import FastEncoder, compiled

    added = [t.content for t in tok.get_added_tokens_decoder().values()]
    py = FastEncoder(tok, added)
    py._fast = None  # the Python pre-split and word cache (the path without a C compiler)
    py.encode(docs[-500:])  # a worker's cache is warm after its first shard; warm it on other documents
    _, s = timed(lambda: py.encode(sub))
    add("stage: scan tokenizer, Python (pre-split + word cache)", len(sub), s, 1)
    fast = compiled()
    if fast is None:
        print("  the compiled loops (dojang.scan._fast) are not built: no compiled rows")
    else:
        enc = FastEncoder(tok, added)
        _, s = timed(lambda: enc.encode_flat(sub))
        add("stage: scan tokenizer, compiled, cold cache", len(sub), s, 1)
        _, s = timed(lambda: enc.encode_flat(sub))
        add("stage: scan tokenizer, compiled, warm cache", len(sub), s, 1)
    from dojang.scan._score import Rows, whole_document_rows
    from dojang.text import TextDetector

    ids = py.encode(sub)
    arrays = [np.asarray(x, dtype=np.int64) for x in ids]
    flat, lengths = np.concatenate(arrays), np.asarray([a.size for a in arrays], dtype=np.int64)
    for label, configs in (("all 4 scheme configs", None), ("one scheme (--scheme default)", ["default"])):
        det = TextDetector(keys=key, tokenizer=tok, configs=configs, alpha=1e-9, scan=False)
        _, s = timed(lambda det=det: det.detect_batch(arrays))
        add(f"stage: whole-document test, numpy, {label}", len(sub), s, 1)
        if fast is not None:
            out = Rows(len(sub))
            at = np.arange(len(sub))
            _, s = timed(lambda det=det, out=out, at=at: whole_document_rows(det, fast, flat, lengths, out, at))
            add(f"stage: whole-document test, compiled, {label}", len(sub), s, 1)
    # -- the scoring function, one core ------------------------------------------------------------
    from dojang.scan._score import _runtime

    items = [Item(str(i), "text", d) for i, d in enumerate(docs)]
    for label, schemes in (("all schemes", ()), ("--scheme default", ("default",))):
        scorer = Scorer(keys=key, tokenizer_json=spec, schemes=schemes)
        scorer.score_table(items[-100:])
        _, s = timed(lambda scorer=scorer: scorer.score_table(items))
        add(f"scoring function, {label}, first pass", len(items), s, 1)
        _, s = timed(lambda scorer=scorer: scorer.score_table(items))
        add(f"scoring function, {label}, warm cache", len(items), s, 1)
    scorer = Scorer(keys=key, tokenizer_json=spec, canonical=True)
    scorer.score_table(items)
    _, s = timed(lambda: scorer.score_table(items))
    add("scoring function, all schemes, --canonical, warm cache", len(items), s, 1)
    scorer = Scorer(keys=key, tokenizer_json=spec)
    rt = _runtime(scorer)
    rt._text_detector()
    rt._fast = None
    rt._encode = FastEncoder(rt._tokenizer, added)
    rt._encode._fast = None
    rt._encode = rt._encode.encode_flat
    scorer.score_table(items[-100:])
    _, s = timed(lambda: scorer.score_table(items))
    add("scoring function, all schemes, without the compiled loops", len(items), s, 1)
    scorer = Scorer(keys=key, tokenizer_json=spec, spans=True)
    _, s = timed(lambda: scorer.score(items[:1000]))
    add("scoring function, all schemes, --spans", 1000, s, 1)
    # -- references ----------------------------------------------------------------------------------
    if not args.no_reference:
        from dojang.text.models import load_tokenizer

        hf_tok = load_tokenizer()
        naive = TextDetector(keys=key, tokenizer=hf_tok, alpha=1e-9)
        _, s = timed(lambda: [naive.detect(d) for d in docs[:300]])
        add("reference: naive loop of TextDetector.detect (spans on)", 300, s, 1)
        try:
            add_transformers_reference(docs[:20], hf_tok, add)  # ~1 document/s here
        except Exception as err:  # the reference is optional; say why it is missing
            print(f"  transformers WatermarkDetector reference skipped: {err}")
    # -- engines end to end --------------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        # Two sizes: the run's own rate includes fixed costs (spawning workers, building each
        # worker's tokenizer and tables, the final concatenation; ~3 s here), the difference
        # between the two runs is the steady rate a long scan settles at.
        sizes = {}
        for reps in (args.repeat, 4 * args.repeat):
            src = Path(tmp) / f"docs-{reps}.parquet"
            pq.write_table(pa.table({"text": docs * reps}), src)
            sizes[reps] = src
        n, n4 = len(docs) * args.repeat, len(docs) * 4 * args.repeat
        print(f"engines: {n:,} and {n4:,} documents ({len(docs):,} distinct, repeated)", flush=True)

        def run(src: Path, out: Path, **kw) -> float:  # type: ignore[no-untyped-def]
            return timed(lambda: scan([str(src)], key, out=out, rows_per_shard=20_000, **kw))[1]

        for label, schemes in (("all schemes", ()), ("--scheme default", ("default",))):
            s1 = run(sizes[args.repeat], Path(tmp) / f"local-{len(schemes)}-a.parquet", schemes=schemes)
            s4 = run(sizes[4 * args.repeat], Path(tmp) / f"local-{len(schemes)}-b.parquet", schemes=schemes)
            add(f"local engine, {cores} processes, {label} (Parquet in and out), whole run", n, s1, cores)
            add(f"local engine, {cores} processes, {label}, steady rate (runs of {n4:,} minus {n:,})", n4 - n, s4 - s1, cores)
        if not args.no_ray:
            import ray

            _, startup = timed(lambda: ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False))
            print(f"  ray start-up: {startup:.1f} s", flush=True)
            s1 = run(sizes[args.repeat], Path(tmp) / "ray-a.parquet", engine="ray")
            s4 = run(sizes[4 * args.repeat], Path(tmp) / "ray-b.parquet", engine="ray")
            add(f"Ray engine, local instance of {cores} CPUs, all schemes (warm), whole run", n, s1, cores)
            add(f"Ray engine, {cores} CPUs, all schemes, steady rate (runs of {n4:,} minus {n:,})", n4 - n, s4 - s1, cores)
        # -- images ------------------------------------------------------------------------------------
        img_dir = Path(tmp) / "images"
        make_images(img_dir, key, args.images)
        print(f"images: {args.images} of 1 MP (half marked)", flush=True)
        for search in (True, False):
            scorer = Scorer(keys=key, image_search=search)
            files = sorted(img_dir.iterdir())
            its = [Item(str(f), "image", f.read_bytes()) for f in files]
            res, s = timed(lambda scorer=scorer, its=its: scorer.score(its))
            hits = sum(r.verdict == "detected" for r in res)
            add(f"images: scoring function, search {'on' if search else 'off'} ({hits} detected)", len(its), s, 1)
        _, s = timed(lambda: scan([str(img_dir)], key, out=Path(tmp) / "img.parquet", images_per_shard=4))
        add(f"images: local engine, {cores} processes, search on", args.images, s, cores)
        if not args.no_ray:
            _, s = timed(lambda: scan([str(img_dir)], key, out=Path(tmp) / "img-ray.parquet", engine="ray", images_per_shard=4))
            add(f"images: Ray engine, {cores} CPUs, search on", args.images, s, cores)
            ray.shutdown()
    report = Report()
    report.text(
        f"Text: {len(docs):,} distinct 200-token documents of the shipped human corpus, one key, rate 1e-9; the engine rows"
        f' scan them {args.repeat}x and {4 * args.repeat}x over (Parquet in and out): "whole run" includes the fixed costs,'
        f' "steady rate" divides the extra documents by the extra time. Images: {args.images} of 1 MP, half marked.'
        f" {cores} cores; load average {load:.1f} at the start."
    )
    report.table(["what", "items", "items/s", "items/s per core"], [list(r) for r in rows])
    print()
    print(report.markdown())
    if args.out:
        meta = run_meta("python benchmarks/scan_bench.py " + " ".join(sys.argv[1:]))
        Path(args.out).write_text(json.dumps({"report": report.blocks, "meta": meta}, indent=1))


def add_transformers_reference(docs: list[str], hf_tok, add) -> None:  # type: ignore[no-untyped-def]
    """transformers' own KGW detector (lefthash h=1, its defaults) on the same documents."""
    import torch
    from transformers import AutoConfig, WatermarkDetector, WatermarkingConfig

    from dojang.text.models import default_model_dir

    config = AutoConfig.from_pretrained(default_model_dir())
    detector = WatermarkDetector(
        model_config=config, device="cpu", watermarking_config=WatermarkingConfig(), ignore_repeated_ngrams=True
    )
    batch = [torch.tensor(hf_tok(d, add_special_tokens=False)["input_ids"])[None, :200] for d in docs]
    _, s = timed(lambda: [detector(b) for b in batch])
    add("reference: transformers WatermarkDetector (KGW, one scheme)", len(docs), s, 1)


def make_images(folder: Path, key, n: int) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image
    from skimage import data

    from dojang.image import embed

    folder.mkdir(parents=True)
    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    for i in range(n):
        img = Image.fromarray(sources[i % len(sources)]).resize((1000, 1000), Image.LANCZOS)
        if i % 2 == 0:
            img = embed(img, key, f"{i:016x}")
        img.save(folder / f"img{i:03d}.png")


if __name__ == "__main__":
    main()
