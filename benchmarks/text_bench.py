"""Text watermark benchmark: dojang's schemes beside transformers' built-in KGW, same process,
same prompts, same default model. Prints markdown tables and writes bench-out/text_bench.json.

    .venv/bin/python benchmarks/text_bench.py            # the full run reported in the README
    .venv/bin/python benchmarks/text_bench.py --quick    # a smoke run (minutes)

Sections: honest false positives on the shipped human corpus (+ unwatermarked generations),
detection power against length, quality (perplexity, distinct-n), generation and detection
speed, robustness to token substitution, and the span scan on pasted answers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dojang.bench._tables import Report, md_table, run_meta
from dojang.bench._text import PROMPTS
from dojang.keys import Key
from dojang.keys._keys import _key_id_for
from dojang.text import TextDetector, generate_batch, known_configs
from dojang.text.models import load_model

PROMPTS_EN = list(PROMPTS)  # the workbench's English prompts: one list for both
PROMPTS_KO = [
    "서울의 역사에 대해 설명해 주세요.",
    "비 오는 날에 대한 짧은 이야기를 써 주세요.",
    "건강한 식습관에 대해 알려 주세요.",
    "한국의 전통 음식에 대해 설명해 주세요.",
    "가을에 대한 시를 한국어로 써 주세요.",
    "컴퓨터가 어떻게 작동하는지 한국어로 설명해 주세요.",
    "좋은 친구란 어떤 사람인가요? 한국어로 답해 주세요.",
    "바다에 대한 짧은 글을 한국어로 써 주세요.",
]
REPETITIVE_PROMPTS = [
    "List the numbers from 1 to 60, separated by commas.",
    "Write the word 'hello' thirty times.",
    "Write a shopping list of twenty items, one per line.",
    "Print a multiplication table for 7 from 1 to 20.",
]
LENGTHS = (25, 50, 100, 200)
ALPHAS = (1e-2, 1e-3, 1e-4)
SCHEMES = {  # label -> scheme or preset name
    "default (gumbel)": "default",
    "distortion-free (synthid)": "distortion-free",
    "kgw (selfhash h=4)": "kgw",
    "robust (kgw minhash h=2)": "robust",
}
TF_LABEL = "transformers KGW (lefthash h=1)"


def bench_key(i: int) -> Key:
    import hashlib

    secret = hashlib.sha256(f"dojang-bench-key-{i}".encode()).digest()
    return Key(key_id=_key_id_for(secret), _secret=secret)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Run:
    label: str
    temperature: float
    token_ids: list[list[int]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    seconds: float = 0.0


def load_corpus() -> list[dict]:
    from dataclasses import asdict

    from dojang.text.corpus import load_human_corpus

    return [asdict(t) for t in load_human_corpus()]


# ---------------------------------------------------------------------------------------------
def tf_processor_and_detector(model):
    from transformers import WatermarkDetector, WatermarkingConfig

    cfg = WatermarkingConfig()  # its defaults: gamma 0.25, bias 2.0, lefthash, context width 1
    return cfg, WatermarkDetector(model_config=model.config, device="cpu", watermarking_config=cfg)


def tf_p_values(detector, docs: list[list[int]]) -> np.ndarray:
    out = []
    for ids in docs:
        if len(ids) < 3:
            out.append(1.0)
            continue
        res = detector(torch.tensor([ids]), return_dict=True)
        out.append(float(res.p_value[0]))
    return np.asarray(out)


def generate_run(label, scheme, key, model, tok, prompts, temperature, new_tokens, tf_cfg=None) -> Run:
    run = Run(label, temperature)
    t0 = time.perf_counter()
    if tf_cfg is not None:
        tok.padding_side = "left"
        from dojang.text.generate import render_prompts

        rendered = render_prompts(tok, prompts, chat=True)
        for i in range(0, len(rendered), 8):
            enc = tok(rendered[i : i + 8], return_tensors="pt", padding=True, add_special_tokens=False)
            torch.manual_seed(1000 + i)
            with torch.inference_mode():
                out = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    watermarking_config=tf_cfg,
                    pad_token_id=tok.pad_token_id,
                )
            for row in out[:, enc["input_ids"].shape[1] :]:
                run.token_ids.append(row.tolist())
                run.texts.append(tok.decode(row, skip_special_tokens=True))
    else:
        gens = generate_batch(
            prompts,
            key=key,
            scheme=scheme,
            model=model,
            tokenizer=tok,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            temperature=temperature,
            seed=1234,
            batch_size=8,
        )
        run.token_ids = [list(g.token_ids) for g in gens]
        run.texts = [g.text for g in gens]
    run.seconds = time.perf_counter() - t0
    return run


def perplexity_and_distinct(model, tok, prompts, run: Run) -> tuple[float, float, float]:
    from dojang.text.generate import render_prompts

    nll, count = 0.0, 0
    for prompt, ids in zip(render_prompts(tok, prompts, chat=True), run.token_ids, strict=True):
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        x = torch.tensor([p_ids + ids])
        with torch.inference_mode():
            logits = model(x).logits[0, len(p_ids) - 1 : -1].float()
        nll += float(torch.nn.functional.cross_entropy(logits, torch.tensor(ids), reduction="sum"))
        count += len(ids)
    grams1 = [t for ids in run.token_ids for t in ids]
    grams2 = [pair for ids in run.token_ids for pair in itertools.pairwise(ids)]
    return math.exp(nll / max(count, 1)), len(set(grams1)) / max(len(grams1), 1), len(set(grams2)) / max(len(grams2), 1)


def power_rows(run: Run, p_of) -> tuple[list[object], dict]:
    """TPR at each alpha and length, and the median tokens until p <= 1e-3."""
    row: list[object] = [run.label, run.temperature]
    detail = {}
    for n in LENGTHS:
        p = np.asarray([p_of(ids[:n]) for ids in run.token_ids])
        for a in ALPHAS:
            detail[f"tpr@{a:g}/{n}"] = float(np.mean(p <= a))
    longest = max(len(ids) for ids in run.token_ids)
    for a in ALPHAS:
        row.append(float(np.mean(np.asarray([p_of(ids[:longest]) for ids in run.token_ids]) <= a)))
    row.append(detail["tpr@0.001/50"])
    firsts = []
    for ids in run.token_ids:
        first = math.inf
        for n in range(10, len(ids) + 1, 5):
            if p_of(ids[:n]) <= 1e-3:
                first = n
                break
        firsts.append(first)
    med = statistics.median(firsts)
    row.append(med if math.isfinite(med) else "> 200")
    detail["median_tokens_to_1e-3"] = med
    return row, detail


def substitute(ids: list[int], frac: float, rng: np.random.Generator, vocab: int) -> list[int]:
    arr = np.asarray(ids).copy()
    where = rng.random(arr.size) < frac
    arr[where] = rng.integers(0, vocab, size=int(where.sum()))
    return arr.tolist()


# ---------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--korean", action="store_true", help="only the Korean power section")
    ap.add_argument("--speed", action="store_true", help="only generation speed, five alternating rounds")
    args = ap.parse_args()
    if args.korean:
        korean(Path(args.out), quick=args.quick)
        return
    if args.speed:
        speed_only(rounds=2 if args.quick else 5)
        return
    started = time.perf_counter()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    n_prompts = 4 if args.quick else 16
    new_tokens = 60 if args.quick else 200
    n_keys = 1 if args.quick else 3
    out_dir = Path(args.out)
    out_dir.mkdir(exist_ok=True)
    results: dict = {}
    model, tok = load_model()
    vocab = len(tok)
    key = bench_key(0)
    tf_cfg, tf_det = tf_processor_and_detector(model)
    prompts = PROMPTS_EN[:n_prompts]
    report: list[str] = []
    blocks = Report()  # the same report as data, in results["report"]

    # -- generation: every scheme at two temperatures ------------------------------------------
    runs: list[Run] = []
    for temperature in (0.7, 1.0):
        for label, scheme in SCHEMES.items():
            log(f"generating {label} T={temperature}")
            runs.append(generate_run(label, scheme, key, model, tok, prompts, temperature, new_tokens))
        log(f"generating {TF_LABEL} T={temperature}")
        runs.append(generate_run(TF_LABEL, None, None, model, tok, prompts, temperature, new_tokens, tf_cfg=tf_cfg))
        log(f"generating unwatermarked T={temperature}")
        runs.append(generate_run("unwatermarked", None, None, model, tok, prompts, temperature, new_tokens))
    log("generating low-temperature and repetitive unwatermarked answers")
    low = generate_run("unwatermarked T=0.3", None, None, model, tok, prompts, 0.3, new_tokens)
    rep = generate_run("unwatermarked repetitive", None, None, model, tok, REPETITIVE_PROMPTS, 0.7, new_tokens)

    # -- 1. honest false positives -------------------------------------------------------------
    corpus = [] if args.quick else load_corpus()
    if args.quick:
        corpus = load_corpus()[::20]
    log(f"tokenising {len(corpus)} human texts")
    human_ids = [tok(d["text"], add_special_tokens=False)["input_ids"] for d in corpus]
    gen_null = [ids for r in runs if r.label == "unwatermarked" for ids in r.token_ids] + low.token_ids + rep.token_ids
    null_docs = human_ids + gen_null
    fpr_rows = []
    groups = {
        "all": list(range(len(null_docs))),
        "human en": [i for i, d in enumerate(corpus) if d["lang"] == "en"],
        "human ko": [i for i, d in enumerate(corpus) if d["lang"] == "ko"],
        "code + repetitive": [i for i, d in enumerate(corpus) if d["genre"] in ("code", "repetitive")],
        "generated (T 0.3-1.0, repetitive)": list(range(len(human_ids), len(null_docs))),
    }
    p_by_key = []
    t0 = time.perf_counter()
    for k in range(n_keys):
        det = TextDetector(keys=bench_key(100 + k), tokenizer=tok)  # every preset, span scan on
        p_by_key.append(np.asarray([det.detect_ids(ids).p_value if len(ids) else 1.0 for ids in null_docs]))
    scan_seconds = time.perf_counter() - t0
    p_all = np.stack(p_by_key)
    for name, idx in groups.items():
        if not idx:
            continue
        sub = p_all[:, idx]
        fpr_rows.append(
            [f"dojang, {name}", sub.size, float(np.mean(sub <= 1e-2)), float(np.mean(sub <= 1e-3)), float(np.mean(sub <= 1e-4))]
        )
    n_tf = min(len(null_docs), 300 if args.quick else 1500)
    tf_idx = np.random.default_rng(0).choice(len(null_docs), size=n_tf, replace=False)
    log(f"transformers detector on {n_tf} null texts")
    t0 = time.perf_counter()
    tf_p = tf_p_values(tf_det, [null_docs[i] for i in tf_idx])
    tf_seconds = time.perf_counter() - t0
    tf_tokens = sum(len(null_docs[i]) for i in tf_idx)
    fpr_rows.append(
        [
            f"{TF_LABEL}, random subset",
            n_tf,
            float(np.mean(tf_p <= 1e-2)),
            float(np.mean(tf_p <= 1e-3)),
            float(np.mean(tf_p <= 1e-4)),
        ]
    )
    results["fpr"] = fpr_rows
    report.append(
        blocks.text("### Honest false positives (p <= alpha on unwatermarked text)")
        + "\n\n"
        + blocks.table(["detector, texts", "tests", "FPR @1e-2", "FPR @1e-3", "FPR @1e-4"], fpr_rows)
    )
    log("\n" + report[-1])

    # -- 2. power ------------------------------------------------------------------------------
    det_all = TextDetector(keys=key, tokenizer=tok)  # as a user runs it: every preset, span scan
    power_table, power_detail = [], {}
    for run in runs:
        if run.label == "unwatermarked":
            continue
        if run.label == TF_LABEL:
            row, detail = power_rows(run, lambda ids: float(tf_p_values(tf_det, [ids])[0]))
        else:
            row, detail = power_rows(run, lambda ids: det_all.detect_ids(ids).p_value)
        power_table.append(row)
        power_detail[f"{run.label} T={run.temperature}"] = detail
    results["power"] = power_detail
    report.append(
        blocks.text(f"### Detection power ({len(prompts)} prompts x {new_tokens} new tokens)")
        + "\n\n"
        + blocks.table(
            [
                "scheme",
                "T",
                f"TPR@1e-2 ({new_tokens})",
                f"TPR@1e-3 ({new_tokens})",
                f"TPR@1e-4 ({new_tokens})",
                "TPR@1e-3 (50)",
                "median tokens to p<=1e-3",
            ],
            power_table,
        )
    )
    length_rows = []
    for name, d in power_detail.items():
        length_rows.append([name] + [d[f"tpr@0.001/{n}"] for n in LENGTHS])
    report.append(
        blocks.text("TPR at FPR 1e-3 by answer length:")
        + "\n\n"
        + blocks.table(["scheme", *[f"{n} tok" for n in LENGTHS]], length_rows)
    )
    log("\n" + report[-2] + "\n\n" + report[-1])

    # -- 3. quality ----------------------------------------------------------------------------
    quality = []
    for run in runs:
        ppl, d1, d2 = perplexity_and_distinct(model, tok, prompts, run)
        quality.append([run.label, run.temperature, ppl, d1, d2])
    results["quality"] = quality
    report.append(
        blocks.text("### Quality (perplexity of the answers under the model; distinct-n over all answers)")
        + "\n\n"
        + blocks.table(["scheme", "T", "perplexity", "distinct-1", "distinct-2"], quality)
    )
    log("\n" + report[-1])

    # -- 4. speed ------------------------------------------------------------------------------
    speed_prompts = PROMPTS_EN[:8]
    speed_tokens = 24 if args.quick else 64
    timings: dict[str, list[float]] = {}
    for rep_i in range(2 if args.quick else 3):
        for label, scheme in [("unwatermarked", None), *SCHEMES.items(), (TF_LABEL, None)]:
            log(f"speed {label} round {rep_i}")
            run = generate_run(
                label,
                scheme,
                key if scheme else None,
                model,
                tok,
                speed_prompts,
                0.7,
                speed_tokens,
                tf_cfg=tf_cfg if label == TF_LABEL else None,
            )
            timings.setdefault(label, []).append(run.seconds)
    base = min(timings["unwatermarked"])
    speed_rows = [[label, len(speed_prompts), speed_tokens, min(ts), min(ts) / base] for label, ts in timings.items()]
    results["speed"] = speed_rows
    # detection throughput on one core
    torch.set_num_threads(1)
    flat = [ids for ids in human_ids if len(ids) > 8]
    n_tok = sum(len(x) for x in flat)
    one = TextDetector(keys=key, tokenizer=tok, configs=["default"], scan=False)
    t0 = time.perf_counter()
    one.detect_batch(flat)
    batch_rate = n_tok / (time.perf_counter() - t0)
    every = TextDetector(keys=key, tokenizer=tok, scan=False)
    t0 = time.perf_counter()
    every.detect_batch(flat)
    every_rate = n_tok / (time.perf_counter() - t0)
    null_tokens = n_keys * sum(len(x) for x in null_docs)
    scan_rate = null_tokens / scan_seconds
    tf_rate = tf_tokens / tf_seconds
    det_rows = [
        ["dojang batch, one scheme, no scan", n_tok, batch_rate, batch_rate / tf_rate],
        [f"dojang batch, all {len(known_configs())} presets, no scan", n_tok, every_rate, every_rate / tf_rate],
        [f"dojang per document, all {len(known_configs())} presets + span scan", null_tokens, scan_rate, scan_rate / tf_rate],
        [TF_LABEL + " detector", tf_tokens, tf_rate, 1.0],
    ]
    results["detection_speed"] = det_rows
    report.append(
        blocks.text("### Speed\n\nGeneration, batch of 8, fixed length, best of runs (watermarked / unwatermarked):")
        + "\n\n"
        + blocks.table(["scheme", "batch", "new tokens", "seconds", "ratio"], speed_rows)
        + "\n\n"
        + blocks.text("Detection throughput on one core (token ids in, verdicts out):")
        + "\n\n"
        + blocks.table(["detector", "tokens", "tokens/s", "x transformers"], det_rows)
    )
    log("\n" + report[-1])

    # -- 5. robustness -------------------------------------------------------------------------
    rng = np.random.default_rng(7)
    rob_rows = []
    draws = 3
    for run in runs:
        if run.temperature != 0.7 or run.label == "unwatermarked":
            continue
        row: list[object] = [run.label]
        for frac in (0.1, 0.2, 0.3):
            if run.label == TF_LABEL:
                ps = [
                    float(tf_p_values(tf_det, [substitute(ids, frac, rng, vocab)])[0])
                    for ids in run.token_ids
                    for _ in range(draws)
                ]
            else:
                ps = [
                    det_all.detect_ids(substitute(ids, frac, rng, vocab)).p_value for ids in run.token_ids for _ in range(draws)
                ]
            row.append(float(np.mean(np.asarray(ps) <= 1e-2)))
        rob_rows.append(row)
        if run.label in SCHEMES:  # as a deployment that knows its scheme detects: that preset alone, whole document
            own = TextDetector(keys=key, tokenizer=tok, configs=[SCHEMES[run.label]], scan=False)
            own_row: list[object] = [run.label + ", its own detector (--scheme, --no-scan)"]
            for frac in (0.1, 0.2, 0.3):
                ps = [own.detect_ids(substitute(ids, frac, rng, vocab)).p_value for ids in run.token_ids for _ in range(draws)]
                own_row.append(float(np.mean(np.asarray(ps) <= 1e-2)))
            rob_rows.append(own_row)
    results["robustness"] = rob_rows
    report.append(
        blocks.text(
            f"### Robustness: TPR at FPR 1e-2 after random token substitution (T=0.7, {new_tokens} tokens, "
            f"{len(prompts)} answers x {draws} draws)"
        )
        + "\n\n"
        + blocks.table(["scheme", "10%", "20%", "30%"], rob_rows)
    )
    log("\n" + report[-1])

    # -- 6. span scan --------------------------------------------------------------------------
    scan_rows = []
    human_pool = [ids for ids, d in zip(human_ids, corpus, strict=True) if d["lang"] == "en" and len(ids) >= 110]
    for run in runs:
        if run.label in ("unwatermarked", TF_LABEL):
            continue
        hits_scan, hits_whole, trials = 0, 0, 0
        for j, ids in enumerate(run.token_ids):
            marked = ids[20:70]
            if len(marked) < 50:
                continue
            for r in range(3 if args.quick else 8):
                h = human_pool[(j * 8 + r) % len(human_pool)]
                h2 = human_pool[(j * 8 + r + 1) % len(human_pool)]
                doc = h[:100] + marked + h2[:100]
                with_scan = TextDetector(keys=key, tokenizer=tok, alpha=1e-2)
                hits_scan += with_scan.detect_ids(doc).detected
                hits_whole += TextDetector(keys=key, tokenizer=tok, alpha=1e-2, scan=False).detect_ids(doc).detected
                trials += 1
        scan_rows.append([run.label, run.temperature, trials, hits_whole / max(trials, 1), hits_scan / max(trials, 1)])
    results["span_scan"] = scan_rows
    report.append(
        blocks.text("### A 50-token marked passage pasted into 200 tokens of human text (FPR 1e-2)")
        + "\n\n"
        + blocks.table(["scheme", "T", "trials", "TPR whole-document test", "TPR with span scan"], scan_rows)
    )
    log("\n" + report[-1])

    text = "\n\n".join(report)
    print(text)
    (out_dir / "text_bench.md").write_text(text + "\n")
    results["report"] = blocks.blocks
    command = "python benchmarks/text_bench.py" + (" --quick" if args.quick else "")
    results["meta"] = {**run_meta(command), "seconds": round(time.perf_counter() - started, 1)}
    (out_dir / "text_bench.json").write_text(json.dumps(results, indent=1, default=str))
    sample = {r.label + f" T={r.temperature}": r.texts[0][:400] for r in runs}
    (out_dir / "text_bench_samples.json").write_text(json.dumps(sample, indent=1, ensure_ascii=False))


def speed_only(*, rounds: int) -> None:
    """Generation time, batch 8 x 64 tokens, every preset and transformers' KGW against no
    watermark, in alternating rounds (best and median)."""
    model, tok = load_model()
    key = bench_key(0)
    tf_cfg, _ = tf_processor_and_detector(model)
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for label, scheme in [("unwatermarked", None), *SCHEMES.items(), (TF_LABEL, None)]:
            run = generate_run(
                label,
                scheme,
                key if scheme else None,
                model,
                tok,
                PROMPTS_EN[:8],
                0.7,
                64,
                tf_cfg=tf_cfg if label == TF_LABEL else None,
            )
            times.setdefault(label, []).append(run.seconds)
    best0, med0 = min(times["unwatermarked"]), statistics.median(times["unwatermarked"])
    rows = [
        [label, 8, 64, min(ts), min(ts) / best0, statistics.median(ts), statistics.median(ts) / med0]
        for label, ts in times.items()
    ]
    print(
        md_table(
            [
                "scheme",
                "batch",
                "new tokens",
                f"best of {rounds} (s)",
                "ratio (best)",
                f"median of {rounds} (s)",
                "ratio (median)",
            ],
            rows,
        )
    )


def korean(out_dir: Path, *, quick: bool) -> None:
    """Power on Korean answers: the tokenizer spends ~3 byte-level tokens per Hangul syllable."""
    out_dir.mkdir(exist_ok=True)
    model, tok = load_model()
    key = bench_key(0)
    prompts = PROMPTS_KO[: 2 if quick else 8]
    new_tokens = 60 if quick else 200
    det = TextDetector(keys=key, tokenizer=tok)
    partial_cache: dict[int, bool] = {}

    def is_partial(i: int) -> bool:  # a token that is not whole UTF-8 characters on its own
        if i not in partial_cache:
            partial_cache[i] = "\ufffd" in tok.decode([i])
        return partial_cache[i]

    rows = []
    for label, scheme in [
        ("default (gumbel)", "default"),
        ("robust (kgw minhash h=2)", "robust"),
        ("distortion-free (synthid)", "distortion-free"),
        ("kgw (selfhash h=4)", "kgw"),
        ("unwatermarked", None),
    ]:
        log(f"korean {label}")
        run = generate_run(label, scheme, key if scheme else None, model, tok, prompts, 0.7, new_tokens)
        hangul = np.mean([sum("\uac00" <= ch <= "\ud7a3" for ch in t) / max(len(t.strip()), 1) for t in run.texts])
        partial = np.mean([np.mean([is_partial(i) for i in ids]) for ids in run.token_ids])
        p = np.asarray([det.detect(t).p_value if t.strip() else 1.0 for t in run.texts])
        row, _ = power_rows(run, lambda ids: det.detect_ids(ids).p_value)
        rows.append(
            [label, len(run.texts), float(hangul), float(partial), float(np.mean(p <= 1e-3)), float(np.mean(p <= 1e-4)), row[-1]]
        )
    blocks = Report()
    blocks.text(f"### Korean ({len(prompts)} Korean prompts x {new_tokens} tokens, T=0.7)")
    table = blocks.table(
        [
            "scheme (T=0.7, Korean prompts)",
            "answers",
            "Hangul share of text",
            "partial-UTF-8 tokens",
            "TPR@1e-3 (text)",
            "TPR@1e-4 (text)",
            "median tokens to p<=1e-3",
        ],
        rows,
    )
    print(table)
    (out_dir / "text_bench_korean.md").write_text(table + "\n")
    meta = run_meta("python benchmarks/text_bench.py --korean" + (" --quick" if quick else ""))
    (out_dir / "text_bench_korean.json").write_text(json.dumps({"report": blocks.blocks, "meta": meta}, indent=1, default=str))


if __name__ == "__main__":
    main()
