"""``dojang bench text``: generate marked and unmarked answers with a local model, attack them,
detect, and measure quality.

The null set is the shipped human corpus (English and Korean, several genres, each text cut to
``human_tokens`` tokens) plus the unmarked answers of the same model to the same prompts. Marked
and null texts are scored by the same detector, the one a user runs: the suite's scheme under
the run's key, span scan on.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from dojang.bench._common import Progress, environment, no_progress
from dojang.bench._results import AttackResult, BenchResult, Curve, NullResult
from dojang.bench._suite import Step, TextSuite
from dojang.errors import InputError
from dojang.keys import Key, generate_key
from dojang.text import TextDetector, generate_batch, resolve
from dojang.text import attacks as T
from dojang.text.corpus import load_human_corpus
from dojang.text.generate import render_prompts
from dojang.text.quality import distinct_n, perplexity

__all__ = ["PROMPTS", "build_text_attack", "run_text"]

log = logging.getLogger(__name__)

PROMPTS = (
    "Write a short story about a lighthouse keeper.",
    "Explain how vaccines work.",
    "Describe your favourite city and why you love it.",
    "What is the history of tea?",
    "Give advice to a new programmer.",
    "Why is the sky blue?",
    "Describe a rainy afternoon in a small town.",
    "How do bees make honey?",
    "Write a letter to your future self.",
    "What are the benefits of regular exercise?",
    "Explain the rules of chess to a beginner.",
    "Tell me about the Roman Empire.",
    "How does a computer work?",
    "Write a poem about autumn leaves.",
    "What makes a good leader?",
    "Describe the ocean at night.",
)
EMOJI_NOTE = (
    "expected failure: the answer was generated with an emoji after every word and the emoji were then deleted; "
    "every hash context that held an emoji is gone"
)
EMOJI_ROWS = {  # attack name -> (row name, what the note says of how the emoji got there)
    "emoji": ("emoji (generate with emoji, then remove)", "the model was asked for them"),
    "emoji-forced": ("emoji-forced (an emoji forced after every word, then removed)",
                     "a compliant model was simulated: an emoji was forced at every word end during generation"),
}  # fmt: skip


def build_text_attack(steps: tuple[Step, ...], *, tokenizer: Any, model: Any, human_texts: list[str], seed: int,
                      batch_size: int = 16, paraphraser: tuple[Any, Any] | None = None) -> T.TextAttack:  # fmt: skip
    """The attack a parsed pipeline stands for (``emoji`` and ``emoji-forced`` are whole-run
    attacks: see run_text).
    ``paraphraser``: (model, tokenizer) that ``paraphrase`` rewrites with (default: ``model``)."""
    para_model, para_tok = paraphraser or (model, tokenizer)
    made = []
    for name, args in steps:
        if name == "none":
            made.append(T.identity())
        elif name == "substitute":
            made.append(T.substitute_tokens(args[0], tokenizer=tokenizer, seed=seed))
        elif name in ("delete", "insert", "swap"):
            made.append({"delete": T.delete_words, "insert": T.insert_words, "swap": T.swap_words}[name](args[0], seed=seed))
        elif name == "copy_paste":
            made.append(T.copy_paste(args[0], human_texts=human_texts, seed=seed))
        elif name == "paraphrase":
            made.append(T.paraphrase(model=para_model, tokenizer=para_tok, seed=seed, batch_size=batch_size))
        elif name == "case":
            made.append(T.case(args[0]))
        elif name in ("whitespace", "homoglyphs", "zero_width", "fullwidth"):
            made.append(getattr(T, name)(args[0], seed=seed))
        elif name == "nfd":
            made.append(T.nfd())
        else:
            raise InputError(f"attack {name!r} cannot be built here")
    return made[0] if len(made) == 1 else T.chain(*made)


def _log10p(detector: TextDetector, text: str) -> tuple[float, int]:
    try:
        d = detector.detect(text)
    except InputError:  # the attack left nothing to score: no evidence
        return 0.0, 0
    return d.log10_p_value, d.tokens_scored


def _emoji_row(
    forced: bool, prompts: list[str], detector: TextDetector, null: NullResult, suite: TextSuite,
    settings: dict[str, Any], *, key: Key, config: Any,
) -> tuple[AttackResult, str, str]:  # fmt: skip
    """The emoji attack's row (an expected failure): generate marked answers to the emoji prompt,
    asked for (``forced`` False) or forced by :class:`EmojiAfterWords`, remove the emoji,
    detect. Returns the row and the first answer before and after removal."""
    extra = []
    if forced:
        from dojang.bench._emoji import EmojiAfterWords

        extra.append(EmojiAfterWords(tokenizer=settings["tokenizer"]))
    gens = generate_batch([T.emoji_prompt(p) for p in prompts], key=key, scheme=config, logits_processors=extra,
                          **settings)  # fmt: skip
    raw = [g.text for g in gens]
    attacked = T.remove_emoji().many(raw)
    scored = [_log10p(detector, t) for t in attacked]
    # per word the reader sees: the words left after removal (an emoji is not a word)
    per_word = sum(T.emoji_count(r) for r in raw) / max(sum(len(a.split()) for a in attacked), 1)
    name, how = EMOJI_ROWS["emoji-forced" if forced else "emoji"]
    before = [_log10p(detector, r) for r in raw]
    alpha = min(suite.fprs)
    note = (f"{EMOJI_NOTE}; {how}; {per_word:.2f} emoji per word; TPR before removal "
            f"{np.mean(np.asarray([b[0] for b in before]) <= math.log10(alpha)):.2f} "
            f"({np.mean([b[1] for b in before]):.1f} tokens scored)")  # fmt: skip
    row = AttackResult.build(name, [s[0] for s in scored], null, suite.fprs, float(np.mean([s[1] for s in scored])),
                             expected_failure=True, note=note)  # fmt: skip
    return row, raw[0], attacked[0]


def run_text(
    suite: TextSuite, *, key: Key | None = None, scheme: str | None = None, progress: Progress = no_progress
) -> BenchResult:
    """Run a text suite (``scheme`` overrides the suite's) and return its typed result."""
    from dojang.text.models import load_model

    t0 = time.perf_counter()
    key = key or generate_key()
    scheme = scheme or suite.scheme
    config = resolve(scheme)
    alpha = min(suite.fprs)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(suite.prompts)]
    # model, marked, unmarked, null set; one per attack and per sweep; length curve, quality
    total = 4 + len(suite.pipelines) + len(suite.sweeps) + 2
    done = 0

    def step(stage: str) -> None:
        nonlocal done
        done += 1
        progress(stage, done, total)

    progress("loading the model", 0, total)
    model, tok = load_model(suite.model)
    paraphraser = None  # loaded before generating, so that a bad path fails in seconds
    if suite.paraphraser is not None and any(name == "paraphrase" for steps in suite.pipelines for name, _ in steps):
        paraphraser = load_model(suite.paraphraser)
    step("model loaded")
    settings = dict(model=model, tokenizer=tok, max_new_tokens=suite.max_new_tokens, temperature=suite.temperature,
                    seed=suite.seed, batch_size=suite.batch_size)  # fmt: skip
    marked = generate_batch(prompts, key=key, scheme=config, **settings)
    step(f"generated {len(marked)} marked answers")
    unmarked = generate_batch(prompts, key=None, **settings)
    step(f"generated {len(unmarked)} unmarked answers")

    detector = TextDetector(keys=key, tokenizer=tok, configs=[config], alpha=alpha)
    whole = TextDetector(keys=key, tokenizer=tok, configs=[config], alpha=alpha, scan=False)
    rng = np.random.default_rng(suite.seed)
    corpus = load_human_corpus()
    pick = rng.choice(len(corpus), size=min(suite.human_texts, len(corpus)), replace=False)
    null_ids, sources = [], []
    for i in sorted(pick):
        ids = tok(corpus[i].text, add_special_tokens=False)["input_ids"][: suite.human_tokens]
        if ids:
            null_ids.append(ids)
            sources.append(f"human {corpus[i].lang} {corpus[i].genre}")
    null_ids += [list(g.token_ids) for g in unmarked if g.token_ids]
    sources += ["unmarked generations"] * (len(null_ids) - len(sources))
    null_lp = [detector.detect_ids(ids).log10_p_value for ids in null_ids]
    test_lp = [d.log10_p_value for d in whole.detect_batch(null_ids)]
    null = NullResult.build(null_lp, sources, suite.fprs, test_log10_p=test_lp)
    step(f"scored {len(null_ids)} unmarked texts")

    human_pool = [t.text for t in load_human_corpus(langs=["en"], genres=["news", "fiction"])]
    context = dict(tokenizer=tok, model=model, human_texts=human_pool, seed=suite.seed, batch_size=suite.batch_size,
                   paraphraser=paraphraser)  # fmt: skip
    marked_texts = [g.text for g in marked]
    unmarked_texts = [g.text for g in unmarked]
    results, samples = [], []
    for steps in suite.pipelines:
        if steps[0][0] in ("emoji", "emoji-forced"):
            forced = steps[0][0] == "emoji-forced"
            row, as_generated, removed = _emoji_row(forced, prompts, detector, null, suite, settings, key=key,
                                                    config=config)  # fmt: skip
            results.append(row)
            label = "emoji-forced" if forced else "emoji"
            samples.append((f"{label}: the answer as generated", as_generated))
            samples.append((f"{label}: after removal", removed))
            step(f"{label} attack")
            continue
        attack = build_text_attack(steps, **context)
        attacked = attack.many(marked_texts)
        scored = [_log10p(detector, t) for t in attacked]
        fpr_null = None
        if all(name != "paraphrase" for name, _ in steps):  # a model attack on the null set too would double its cost
            null_after = [_log10p(detector, t)[0] for t in attack.many(unmarked_texts)]
            fpr_null = float(np.mean(np.asarray(null_after) <= math.log10(alpha)))
        results.append(AttackResult.build(attack.name, [s[0] for s in scored], null, suite.fprs,
                                          float(np.mean([s[1] for s in scored])), fpr_attacked_null=fpr_null))  # fmt: skip
        if attack.name != "none":
            samples.append((attack.name, attacked[0]))
        step(f"attack {attack.name}")

    curves = []
    for name, values in suite.sweeps:
        tpr = []
        for v in values:
            attack = build_text_attack(((name, (v,)),), **context)
            lp = [_log10p(detector, t)[0] for t in attack.many(marked_texts)]
            tpr.append(float(np.mean(np.asarray(lp) <= math.log10(alpha))))
        curves.append(Curve(name, f"{name} fraction", tuple(float(v) for v in values), tuple(tpr), alpha))
        step(f"sweep {name}")

    lengths = sorted(set(suite.lengths))
    length_tpr = []
    for n in lengths:
        lp = [detector.detect_ids(list(g.token_ids[:n])).log10_p_value for g in marked]
        length_tpr.append(float(np.mean(np.asarray(lp) <= math.log10(alpha))))
    length = Curve("tokens", "answer tokens", tuple(float(n) for n in lengths), tuple(length_tpr), alpha)
    step("detection against length")

    oracle_model, oracle_tok = (model, tok) if suite.oracle is None else load_model(suite.oracle)
    rendered = render_prompts(oracle_tok, prompts, chat=True)
    quality: dict[str, dict[str, float]] = {}
    for label, gens in (("marked", marked), ("unmarked", unmarked)):
        answers = [oracle_tok(g.text, add_special_tokens=False)["input_ids"] for g in gens]
        quality[label] = {
            "perplexity": perplexity(oracle_model, oracle_tok, rendered, answers),
            "distinct_1": distinct_n([g.token_ids for g in gens], 1),
            "distinct_2": distinct_n([g.token_ids for g in gens], 2),
            "mean_tokens": float(np.mean([len(g.token_ids) for g in gens])),
        }
    step("quality")
    samples.insert(0, ("marked answer (no attack)", marked_texts[0]))
    return BenchResult(
        modality="text", scheme=config.scheme if scheme in (config.scheme,) else f"{scheme} ({config.scheme})",
        key_id=key.key_id, suite={**suite.to_dict(), "scheme": scheme}, null=null, attacks=tuple(results), length=length,
        sweeps=tuple(curves), quality=quality, seconds=time.perf_counter() - t0, environment=environment(),
        samples=tuple((label, text[:800]) for label, text in samples),
    )  # fmt: skip
