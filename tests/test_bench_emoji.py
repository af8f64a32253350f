"""The emoji attack's simulated compliant model (``EmojiAfterWords``): an emoji after every word,
forced before dojang's watermark processor, which still does the sampling; removal gives back
the words; both emoji rows are expected failures in results.json."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pytest
import torch

from dojang.bench import TextSuite, run_text, write_report
from dojang.bench._emoji import EMOJI_PALETTE, EmojiAfterWords
from dojang.text import attacks as T
from dojang.text import generate_batch, resolve
from dojang.text.processor import WatermarkLogitsProcessor
from tests.helpers import fixed_key


def _scores(vocab: int, token: int, mass: float = 20.0) -> torch.Tensor:
    """(1, vocab) logits with (almost) all the probability on ``token``."""
    out = torch.zeros(1, vocab)
    out[0, token] = mass
    return out


def test_state_machine_writes_each_emoji_whole_once_per_word_end(tokenizer) -> None:
    word = tokenizer(" the", add_special_tokens=False)["input_ids"]
    inner = tokenizer("ing", add_special_tokens=False)["input_ids"]
    assert len(word) == 1 and len(inner) == 1
    star = tokenizer(" 🌟", add_special_tokens=False)["input_ids"]
    assert len(star) == 3  # a byte-level emoji of three tokens: the per-row state has to carry it
    dot = tokenizer(".", add_special_tokens=False)["input_ids"]
    proc = EmojiAfterWords(tokenizer=tokenizer, emoji=("🌟",))
    vocab = len(tokenizer)
    ids = torch.tensor([[5, 6, 7]])
    picked = []
    # the model keeps wanting " the" (a word start) except when it wants "ing" and "."
    wants = [word[0], inner[0], *[word[0]] * 7, dot[0], word[0]]
    for want in wants:
        out = proc(ids, _scores(vocab, want))
        choice = int(out[0].argmax())
        if choice != want:  # forced: one candidate only
            assert torch.isinf(out[0]).sum() == vocab - 1
        picked.append(choice)
        ids = torch.cat([ids, torch.tensor([[choice]])], dim=1)
    # no emoji before the first word; "ing" continues a word; a whole emoji before the next word
    # start, then the word itself (never two emoji in a row); no emoji after "." alone
    assert picked == [word[0], inner[0], *star, word[0], *star, dot[0], word[0]]


def test_a_new_generate_call_starts_afresh(tokenizer) -> None:
    word = tokenizer(" the", add_special_tokens=False)["input_ids"][0]
    proc = EmojiAfterWords(tokenizer=tokenizer, emoji=("🌟",))
    vocab = len(tokenizer)
    ids = torch.tensor([[5, 6, 7]])
    proc(ids, _scores(vocab, word))
    ids = torch.cat([ids, torch.tensor([[word]])], dim=1)
    assert int(proc(ids, _scores(vocab, word))[0].argmax()) != word  # mid-answer: an emoji begins
    # another batch whose prompt is one token longer, but not a continuation: no emoji at its start
    other = torch.tensor([[9, 9, 9, 9, 9]])
    assert int(proc(other, _scores(vocab, word))[0].argmax()) == word


@pytest.mark.parametrize("scheme", ["default", "kgw", "synthid", "robust"])
def test_the_watermark_processor_samples_the_forced_token(scheme: str) -> None:
    vocab = 500
    processor = resolve(scheme).build_processor(fixed_key(1), temperature=0.7, seed=3)
    assert isinstance(processor, WatermarkLogitsProcessor)
    gen = torch.Generator().manual_seed(0)
    for step in range(8):  # the default preset starts with a free (unwatermarked) prefix
        ids = torch.randint(0, vocab, (4, 6 + step), generator=gen)
        scores = torch.full((4, vocab), -math.inf)
        forced = torch.randint(0, vocab, (4,), generator=gen)
        scores[torch.arange(4), forced] = 0.0
        out = processor(ids, scores)
        assert torch.equal(out.argmax(dim=-1), forced)
        assert torch.isinf(out).sum(-1).tolist() == [vocab - 1] * 4


def _palette_runs(ids: list[int], sequences: list[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], list[int]]:
    """Split generated ids into the emoji written (palette sequences) and the other tokens."""
    palette = {t for seq in sequences for t in seq}
    runs: list[tuple[int, ...]] = []
    words: list[int] = []
    i = 0
    while i < len(ids):
        if ids[i] in palette:
            match = next((s for s in sequences if tuple(ids[i : i + len(s)]) == s), None)
            tail = len(ids) - i < max(map(len, sequences))
            assert match is not None or tail, ids[i:]  # an emoji is whole unless the budget cut it
            match = match or tuple(ids[i:])
            runs.append(match)
            i += len(match)
        else:
            words.append(ids[i])
            i += 1
    return runs, words


@pytest.mark.parametrize("scheme", ["default", "kgw"])
def test_forced_generation_puts_an_emoji_after_every_word(tiny_model, tokenizer, scheme: str) -> None:
    proc = EmojiAfterWords(tokenizer=tokenizer)
    prompts = ["Why is the sky blue?", "How do bees make honey?", "Tell me about tea."]
    gens = generate_batch(prompts, key=fixed_key(2), scheme=scheme, model=tiny_model, tokenizer=tokenizer,
                          max_new_tokens=40, seed=5, batch_size=2, logits_processors=[proc])  # fmt: skip
    starts = proc._word_start
    for g in gens:
        runs, _ = _palette_runs(list(g.token_ids), proc.sequences)
        ids = list(g.token_ids)
        palette = {t for seq in proc.sequences for t in seq}
        assert runs and [r for r in runs if len(r) == len(proc.sequences[0])]  # emoji were written
        # every word start after the first token follows an emoji (the tiny model's distributions
        # are flat, so the word-end rule and the sampled token can disagree: allow a few misses)
        followed = [ids[i - 1] in palette for i in range(1, len(ids)) if bool(starts[ids[i]]) and ids[i] not in palette]
        assert followed and sum(followed) >= 0.75 * len(followed), (sum(followed), len(followed))
        # never two emoji in a row, and the palette is cycled in order
        whole = [r for r in runs if r in proc.sequences]
        assert whole == [proc.sequences[k % len(EMOJI_PALETTE)] for k in range(len(whole))]


def test_removal_gives_back_the_visible_words(tiny_model, tokenizer) -> None:
    proc = EmojiAfterWords(tokenizer=tokenizer)
    gens = generate_batch(["Describe the ocean at night.", "Why is the sky blue?"], key=fixed_key(2), scheme="kgw",
                          model=tiny_model, tokenizer=tokenizer, max_new_tokens=40, seed=9, batch_size=2,
                          logits_processors=[proc])  # fmt: skip
    for g in gens:
        _, words = _palette_runs(list(g.token_ids), proc.sequences)
        assert T.emoji_count(g.text) > 0
        cleaned = T.remove_emoji()(g.text)
        assert T.emoji_count(cleaned) == 0 and "\ufffd" not in cleaned
        # the same words (spacing before punctuation is tidied, so compare without it)
        visible = tokenizer.decode(words, skip_special_tokens=True)
        assert cleaned.replace(" ", "") == "".join(visible.split()).replace(" ", "")


def test_both_emoji_rows_are_expected_failures_in_results_json(tiny_model, tokenizer, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    tiny_model.save_pretrained(gen)
    tokenizer.save_pretrained(gen)
    suite = TextSuite(scheme="kgw", prompts=2, max_new_tokens=24, human_texts=6, lengths=(24,), batch_size=2,
                      model=str(gen), attacks=("none", "emoji", "emoji-forced"), sweeps=())  # fmt: skip
    result = run_text(suite, key=fixed_key(3))
    json_path, html_path = write_report(result, tmp_path / "out")
    rows = {a["name"]: a for a in json.loads(json_path.read_text())["attacks"]}
    forced = rows["emoji-forced (an emoji forced after every word, then removed)"]
    asked = rows["emoji (generate with emoji, then remove)"]
    assert forced["expected_failure"] is True and asked["expected_failure"] is True
    assert rows["none"]["expected_failure"] is False
    assert "emoji per word" in forced["note"] and "forced" in forced["note"]
    per_word = float(forced["note"].split(" emoji per word")[0].rsplit("; ", 1)[1])
    assert per_word > 0.5  # the simulation really wrote emoji (the asked-for row may not)
    page = html_path.read_text()
    for name in (forced["name"], asked["name"]):
        assert f'<tr class="xfail"><td>{html.escape(name)}</td>' in page
