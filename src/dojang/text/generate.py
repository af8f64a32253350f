"""The one-call path: prompts in, watermarked answers out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

from dojang.errors import ConfigError, InputError
from dojang.keys import Key
from dojang.text.config import SchemeConfig, resolve
from dojang.text.detect import normalize

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Generation:
    """One answer: its text (NFC), the generated token ids and the rendered prompt it followed."""

    text: str
    token_ids: tuple[int, ...]
    prompt: str


def render_prompts(tokenizer: Any, prompts: Sequence[str], *, chat: bool) -> list[str]:
    """Apply the model's chat template (when it has one and ``chat`` is on)."""
    if chat and getattr(tokenizer, "chat_template", None):
        return [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            for p in prompts
        ]
    return list(prompts)


def generate_batch(
    prompts: Sequence[str],
    *,
    key: Key | None,
    scheme: str | SchemeConfig | None = "default",
    model: Any = None,
    tokenizer: Any = None,
    max_new_tokens: int = 200,
    min_new_tokens: int = 0,
    temperature: float = 0.7,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    batch_size: int = 8,
    chat: bool = True,
    logits_processors: Sequence[Any] = (),
) -> list[Generation]:
    """Generate an answer to each prompt, stamped with ``scheme`` under ``key``.

    ``key=None`` generates without a watermark (same sampling settings): the baseline for
    quality and speed comparisons. ``model``/``tokenizer`` default to the embedded model.
    Batches of ``batch_size`` prompts are left-padded and generated together. ``min_new_tokens``
    holds back the end-of-sequence token (benchmarks use it for fixed-length answers).
    ``logits_processors``: transformers ``LogitsProcessor``s that run before the watermark's
    (benchmarks use one to force tokens); the watermark processor then samples from what they
    leave, so a token they force is stamped like any other.
    """
    import torch

    from dojang.text.models import load_model

    if isinstance(prompts, str):
        raise InputError("prompts must be a list of strings; use generate() for one prompt")
    if not prompts:
        return []
    if any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise InputError("every prompt must be a non-empty string")
    if max_new_tokens < 1:
        raise ConfigError("max_new_tokens must be >= 1")
    if batch_size < 1:
        raise ConfigError("batch_size must be >= 1")
    if model is None:
        model, default_tok = load_model()
        tokenizer = tokenizer or default_tok
    elif tokenizer is None:
        raise ConfigError("pass the tokenizer that belongs to the model")
    processors = list(logits_processors)
    if key is not None:
        if scheme is None:
            raise ConfigError("a key needs a scheme or preset to stamp with")
        config = resolve(scheme)
        processors.append(config.build_processor(key, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed))
    elif seed is not None:
        torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rendered = render_prompts(tokenizer, prompts, chat=chat)
    out: list[Generation] = []
    for i in range(0, len(rendered), batch_size):
        chunk = rendered[i : i + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling: dict[str, Any]
        if key is not None or temperature == 0:  # with a key the processor samples: generate takes its one-hot choice
            sampling = {"do_sample": False, "logits_processor": processors}
        else:
            sampling = {"do_sample": True, "temperature": temperature, "top_k": top_k or 0, "top_p": top_p or 1.0,
                        "logits_processor": processors}  # fmt: skip
        with torch.inference_mode():
            seqs = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
        width = enc["input_ids"].shape[1]
        for row, prompt in zip(seqs, chunk, strict=True):
            new = row[width:].tolist()
            eos = tokenizer.eos_token_id
            if eos is not None and eos in new:
                new = new[: new.index(eos)]
            text = normalize(tokenizer.decode(new, skip_special_tokens=True))
            out.append(Generation(text=text, token_ids=tuple(new), prompt=prompt))
        del seqs
    return out


@overload
def generate(prompt: str, **kwargs: Any) -> str: ...
@overload
def generate(prompt: Sequence[str], **kwargs: Any) -> list[str]: ...
def generate(prompt: str | Sequence[str], **kwargs: Any) -> str | list[str]:
    """Watermarked answer(s) to ``prompt`` (one string or a list); see :func:`generate_batch`."""
    if isinstance(prompt, str):
        return generate_batch([prompt], **kwargs)[0].text
    return [g.text for g in generate_batch(list(prompt), **kwargs)]
