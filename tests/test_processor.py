"""The logits processor against closed forms: KGW's bias, distortion-free sampling for synthid
and gumbel, agreement with the detector's bits, and use inside model.generate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from dojang.errors import ConfigError
from dojang.text import GumbelConfig, KGWConfig, SynthIDConfig, TextDetector
from dojang.text._hash import context_hash, key_words
from dojang.text._scoring import seeds_and_values
from tests.helpers import fixed_key

V = 600  # a small vocabulary keeps many-row closed-form checks fast


def _contexts(rows: int, width: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (rows, width), generator=g)


def test_kgw_green_mask_matches_detector_bits() -> None:
    cfg = KGWConfig(delta=1e-9)  # no bias: we only read which tokens are green
    key = fixed_key(0)
    proc = cfg.build_processor(key, temperature=1.0, seed=0)
    ctx = _contexts(3)
    ctx_table, cand_table = proc._vocab_tables(V, torch.device("cpu"))
    seeds = proc._row_seeds(ctx, ctx_table)
    grid = torch.minimum(seeds.unsqueeze(1), ctx_table.unsqueeze(0))
    from dojang.text._hash import mix32

    green_torch = (mix32(grid ^ cand_table.unsqueeze(0)) < cfg.green_threshold).numpy()
    words = key_words(key, "kgw")
    for row in range(3):
        for cand in (0, 5, 77, 599):
            ids = np.concatenate([ctx[row].numpy(), [cand]]).astype(np.int64)
            _, u = seeds_and_values(ids, np.array([ids.size - 1]), cfg, words)
            assert bool(u[0] < cfg.green_threshold) == bool(green_torch[row, cand])


@pytest.mark.parametrize("seeding", ["selfhash", "lefthash", "minhash"])
def test_kgw_bias_matches_closed_form(seeding: str) -> None:
    delta, rows = 2.0, 4000
    cfg = KGWConfig(delta=delta, seeding=seeding, candidates=V)  # every token a candidate
    proc = cfg.build_processor(fixed_key(1), temperature=1.0, seed=123)
    ctx = _contexts(1).repeat(rows, 1)  # one context, many draws
    out = proc(ctx, torch.zeros(rows, V))
    chosen = out.argmax(-1)
    assert torch.all(out.isinf().sum(-1) == V - 1)  # one-hot rows
    ctx_table, cand_table = proc._vocab_tables(V, torch.device("cpu"))
    seed = proc._row_seeds(ctx[:1], ctx_table)
    from dojang.text._hash import mix32

    grid = torch.minimum(seed.unsqueeze(1), ctx_table.unsqueeze(0)) if seeding == "selfhash" else seed.unsqueeze(1)
    green = (mix32(grid ^ cand_table.unsqueeze(0)) < cfg.green_threshold)[0]
    g = int(green.sum())
    expected = g * math.exp(delta) / (g * math.exp(delta) + (V - g))  # softmax of uniform logits + delta
    observed = float(green[chosen].float().mean())
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / rows)
    assert abs(observed - cfg.effective_gamma) > 0.2  # clearly biased


@pytest.mark.parametrize(
    "cfg",
    [
        SynthIDConfig(layers=30, candidates=64),
        SynthIDConfig(layers=5, candidates=8),
        GumbelConfig(candidates=8),
        GumbelConfig(candidates=64, free_bits=3.0),
    ],
    ids=["synthid-64", "synthid-8-tail", "gumbel-8-tail", "gumbel-free-prefix"],
)
def test_distortion_free_over_contexts(cfg) -> None:
    """Averaged over keyed randomness (here: many random contexts), the sampled token follows
    the model's distribution exactly; the candidate-pooling tail keeps that true."""
    rows = 20000
    logits = torch.linspace(3.0, -3.0, V)  # a skewed distribution with a long tail
    probs = logits.double().softmax(-1).numpy()
    proc = cfg.build_processor(fixed_key(2), temperature=1.0, seed=5)
    out = proc(_contexts(rows, seed=9), logits.repeat(rows, 1))
    chosen = out.argmax(-1).numpy()
    # chi-square over the 10 most likely tokens and the rest pooled
    top = 10
    observed = np.bincount(np.minimum(chosen, top), minlength=top + 1)
    expected = np.concatenate([probs[:top], [probs[top:].sum()]])
    expected = expected / expected.sum() * rows
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_watermarked_choices_carry_the_mark() -> None:
    """The same processor's choices score high under the detector's statistic."""
    rows = 3000
    logits = torch.zeros(rows, V)
    for cfg in (SynthIDConfig(candidates=1024), GumbelConfig(candidates=1024)):  # no pooled tail
        proc = cfg.build_processor(fixed_key(3), temperature=1.0, seed=1)
        ctx = _contexts(rows, seed=4)
        chosen = proc(ctx, logits).argmax(-1)
        words = key_words(fixed_key(3), cfg.scheme)
        ids = torch.cat([ctx, chosen.unsqueeze(1)], 1).numpy().astype(np.int64)
        u = np.array([seeds_and_values(row, np.array([row.size - 1]), cfg, words)[1][0] for row in ids])
        mean = cfg.token_scores(u).mean()
        null_mean = cfg.layers / 2 if isinstance(cfg, SynthIDConfig) else 1.0
        assert mean > null_mean * 1.15


def test_free_prefix_gives_varied_answers_then_marks() -> None:
    """One prompt, one key: without a free prefix gumbel repeats itself; with one, answers vary."""
    logits = torch.linspace(2.0, -2.0, V).repeat(64, 1)
    ctx = _contexts(1).repeat(64, 1)
    fixed = GumbelConfig(candidates=1024).build_processor(fixed_key(4), seed=1)
    assert fixed(ctx, logits).argmax(-1).unique().numel() == 1
    free = GumbelConfig(candidates=1024, free_bits=4.0).build_processor(fixed_key(4), seed=1)
    first = free(ctx, logits).argmax(-1)
    assert first.unique().numel() > 10
    # after the free prefix is spent (entropy here is ~9 bits per step) every row is marked again
    nxt = torch.cat([ctx, first.unsqueeze(1)], 1)
    second = free(nxt, logits).argmax(-1)
    again = fixed(nxt, logits).argmax(-1)
    assert torch.equal(second, again)


def test_gumbel_is_deterministic_given_context() -> None:
    cfg = GumbelConfig(candidates=1024)  # every token a candidate: no tail draw needs noise
    ctx = _contexts(50, seed=11)
    logits = torch.randn(50, V, generator=torch.Generator().manual_seed(2))
    a = cfg.build_processor(fixed_key(4), seed=1)(ctx, logits).argmax(-1)
    b = cfg.build_processor(fixed_key(4), seed=999)(ctx, logits).argmax(-1)
    assert torch.equal(a, b)


def test_greedy_kgw_and_short_prompts() -> None:
    cfg = KGWConfig()
    proc = cfg.build_processor(fixed_key(5), temperature=0.0)
    ctx = torch.tensor([[7, 8]])  # shorter than the context width
    logits = torch.randn(1, V, generator=torch.Generator().manual_seed(0))
    out = proc(ctx, logits)
    assert out.isfinite().sum() == 1


def test_processor_validates_and_redacts() -> None:
    key = fixed_key(6)
    with pytest.raises(ConfigError):
        KGWConfig().build_processor(key, temperature=-1)
    with pytest.raises(ConfigError):
        KGWConfig().build_processor(key, top_p=1.5)
    with pytest.raises(ConfigError):
        KGWConfig().build_processor("not a key")  # type: ignore[arg-type]
    assert key._secret.hex() not in repr(KGWConfig().build_processor(key))


def test_top_k_and_top_p_restrict_sampling() -> None:
    logits = torch.linspace(5.0, -5.0, V).repeat(2000, 1)
    proc = KGWConfig(delta=0.0).build_processor(fixed_key(7), temperature=1.0, top_k=5, seed=0)
    assert int(proc(_contexts(2000), logits).argmax(-1).max()) < 5
    proc = KGWConfig(delta=0.0).build_processor(fixed_key(7), temperature=1.0, top_p=0.5, seed=0)
    p = logits[0].softmax(-1)
    cutoff = int((p.cumsum(-1) < 0.5).sum()) + 1
    assert int(proc(_contexts(2000), logits).argmax(-1).max()) < cutoff


def test_inside_model_generate_with_padding(tiny_model, tokenizer) -> None:
    """Batched, left-padded prompts through plain model.generate(logits_processor=[...]): each
    row's answer is detected, and generate's own sampling settings do not undo the choice."""
    key = fixed_key(8)
    proc = KGWConfig(delta=4.0).build_processor(key, temperature=1.0, seed=0)
    tokenizer.padding_side = "left"
    prompts = ["Hello", "A much longer prompt that needs no padding at all here", "Tell me"]
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = tiny_model.generate(
            **enc,
            max_new_tokens=60,
            min_new_tokens=60,
            do_sample=True,
            temperature=0.3,
            logits_processor=[proc],
            pad_token_id=tokenizer.pad_token_id,
        )
    width = enc["input_ids"].shape[1]
    det = TextDetector(keys=key, tokenizer=tokenizer, configs=[KGWConfig()])
    for row in out:
        result = det.detect_ids(row[width:].numpy())
        assert result.detected, result
    # the processor's bits are what the detector reads, also from a re-encoded text
    text = tokenizer.decode(out[0, width:], skip_special_tokens=True)
    assert det.detect(text).log_p_value < math.log(1e-4)


def test_context_hash_table_matches_numpy() -> None:
    proc = KGWConfig().build_processor(fixed_key(9))
    ctx_table, _ = proc._vocab_tables(V, torch.device("cpu"))
    words = key_words(fixed_key(9), "kgw")
    assert np.array_equal(ctx_table.numpy(), context_hash(np.arange(V, dtype=np.int64), words))


def test_free_prefix_restarts_for_each_generate_call() -> None:
    """A processor reused across calls (as generate_batch does per chunk) starts every answer
    with a fresh free prefix, whatever the prompt widths."""
    logits = torch.linspace(2.0, -2.0, V).repeat(64, 1)
    proc = GumbelConfig(candidates=1024, free_bits=4.0).build_processor(fixed_key(4), seed=1)
    short = _contexts(1, width=6).repeat(64, 1)
    first = proc(short, logits).argmax(-1)
    assert first.unique().numel() > 10
    longer = _contexts(1, width=40).repeat(64, 1)  # a later chunk with longer prompts
    assert proc(longer, logits).argmax(-1).unique().numel() > 10


def test_free_prefix_restarts_when_a_new_call_is_as_long_as_the_next_step() -> None:
    """A new call whose prompts are exactly one token longer than the previous call's last input
    looked like that call's next step (only the length was compared), so its answers skipped the
    free prefix. The processor now checks that the input extends the previous step's."""
    logits = torch.linspace(2.0, -2.0, V).repeat(64, 1)
    proc = GumbelConfig(candidates=1024, free_bits=4.0).build_processor(fixed_key(4), seed=1)
    prompt = _contexts(1, width=6).repeat(64, 1)
    for _ in range(12):  # one call, run past its free prefix
        step = proc(prompt, logits).argmax(-1)
        prompt = torch.cat([prompt, step.unsqueeze(1)], dim=1)
    fresh = _contexts(1, width=prompt.shape[1], seed=2).repeat(64, 1)  # another call, as long as the next step
    # identical rows: past the free prefix they would all take the same marked token
    assert proc(fresh, logits).argmax(-1).unique().numel() > 10
