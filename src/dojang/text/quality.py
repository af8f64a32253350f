"""Text quality measures for benchmarks: perplexity under a language model and distinct-n."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["distinct_n", "perplexity"]


def distinct_n(sequences: Sequence[Sequence[Any]], n: int) -> float:
    """Distinct n-grams over all n-grams of all sequences (tokens or words); 0.0 when there are
    none. Lower means more repetitive text."""
    if n < 1:
        raise ValueError("n must be >= 1")
    grams = [tuple(seq[i : i + n]) for seq in sequences for i in range(len(seq) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def perplexity(model: Any, tokenizer: Any, prompts: Sequence[str], answers: Sequence[Sequence[int]]) -> float:
    """Perplexity of the ``answers`` (token ids) following the rendered ``prompts``, under
    ``model``: exp of the mean negative log-likelihood per answer token. An oracle model must
    share the tokenizer the answers were made with (or pass answers re-tokenised by its own)."""
    import torch

    nll, count = 0.0, 0
    for prompt, ids in zip(prompts, answers, strict=True):
        if not ids:
            continue
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        if not p_ids:  # no context: score from the second token on
            p_ids, ids = [ids[0]], list(ids[1:])
            if not ids:
                continue
        x = torch.tensor([list(p_ids) + list(ids)])
        with torch.inference_mode():
            logits = model(x).logits[0, len(p_ids) - 1 : -1].float()
        nll += float(torch.nn.functional.cross_entropy(logits, torch.tensor(list(ids)), reduction="sum"))
        count += len(ids)
        del logits
    return math.exp(nll / count) if count else float("nan")
