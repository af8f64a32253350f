"""The emoji attack's simulated compliant model: a ``LogitsProcessor`` that forces an emoji after
every word while the watermarked answer is generated.

Small models ignore "put an emoji after every word", so the bench forces what a compliant model
would write. It runs *before* dojang's watermark processor in the same list: at a word's end it
masks the logits to the next token of one emoji (" 🙂" is one token of the default vocabulary,
" 🌟" three byte-level tokens), and the watermark processor, which does the final sampling, has
that token as its only candidate. The emoji are later deleted by ``attacks.remove_emoji``.

*A word has ended* when the model puts at least half of its next-token probability (on the
scores this processor receives) on tokens that start with white space (a space, tab or new
line) or on the end-of-sequence token, and the answer has written a word (a token with a letter
or digit) since its last emoji: the emoji then goes before that token, as in "sea 🙂 is" or
"sea. 🙂 The". So there is at most one emoji per word, none before the first. Between emoji the
model may not write emoji (or partial UTF-8 characters) of its own: its tokens are words.

Shapes: ``input_ids`` (batch, seq) int64; ``scores`` (batch, vocab) float.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from dojang.errors import ConfigError
from dojang.text.attacks import emoji_count

__all__ = ["EMOJI_PALETTE", "EmojiAfterWords"]

EMOJI_PALETTE = ("🙂", "🌟", "🔥", "🎉", "👍")  # cycled per row; one or three tokens each in the default vocabulary


class EmojiAfterWords(LogitsProcessor):
    """Force an emoji (cycling through ``emoji``) after every word of each row.

    State per row: the token ids of the emoji being written and how many are out. The state
    belongs to one ``generate`` call: a call whose ``input_ids`` do not extend the previous
    call's by one token starts afresh (as ``generate_batch`` does for each batch).
    """

    def __init__(self, *, tokenizer: Any, emoji: Sequence[str] = EMOJI_PALETTE, threshold: float = 0.5) -> None:
        if not emoji or any(not isinstance(e, str) or not e.strip() for e in emoji):
            raise ConfigError("give at least one emoji")
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must lie in (0, 1], got {threshold}")
        self.threshold = threshold
        self.sequences = [tuple(tokenizer(" " + e, add_special_tokens=False)["input_ids"]) for e in emoji]
        if any(not seq for seq in self.sequences):
            raise ConfigError("an emoji encodes to no tokens with this tokenizer")
        # (vocab,) bool: the tokens that start with white space, and the end-of-sequence token;
        # and the tokens that hold an emoji or a partial UTF-8 character (the model's own emoji)
        text = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        starts = [t[:1].isspace() for t in text]
        if tokenizer.eos_token_id is not None:
            starts[tokenizer.eos_token_id] = True
        self._word_start = torch.tensor(starts, dtype=torch.bool)
        self._own_emoji = torch.tensor([emoji_count(t) > 0 or "\ufffd" in t for t in text], dtype=torch.bool)
        self._wordy = [any(ch.isalnum() for ch in t) for t in text]  # a token that writes (part of) a word
        self._prev: torch.Tensor | None = None
        self._rows: list[_Row] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch = input_ids.shape[0]
        prev = self._prev
        fresh = (
            prev is None
            or prev.shape[0] != batch
            or prev.shape[1] + 1 != input_ids.shape[1]
            or not torch.equal(prev.to(input_ids.device), input_ids[:, :-1])
        )
        if fresh:  # a new generate call (or a new batch): no word written yet in any row
            self._rows = [_Row() for _ in range(batch)]
        self._prev = input_ids.detach().clone()
        vocab = scores.shape[-1]
        # the model writes words only: its own emoji would make every token a "word start"
        out = scores.masked_fill(_fit(self._own_emoji, vocab, scores.device), -math.inf)
        probs = out.float().softmax(dim=-1)
        word_end = (probs * _fit(self._word_start, vocab, scores.device)).sum(-1) >= self.threshold  # (batch,)
        for r, row in enumerate(self._rows):
            last = None if fresh else int(input_ids[r, -1])
            wordy = last is not None and last < len(self._wordy) and self._wordy[last]
            token = row.next(last, wordy, bool(word_end[r]), self.sequences)
            if token is not None:  # the emoji's next token is the row's only candidate
                out[r] = -math.inf
                out[r, token] = 0.0
        return out  # type: ignore[return-value]


def _fit(mask: torch.Tensor, vocab: int, device: torch.device) -> torch.Tensor:
    """``mask`` cut or padded (False) to ``vocab`` entries: a model's logits may be wider than
    its tokenizer's vocabulary."""
    mask = mask[:vocab].to(device)
    return torch.nn.functional.pad(mask, (0, vocab - mask.shape[0])) if mask.shape[0] < vocab else mask


class _Row:
    """One row's progress: ``pending`` ids of the emoji being written; ``wrote_word`` once the
    row has written a token with a letter or digit since its last emoji (or since it began)."""

    __slots__ = ("count", "expected", "pending", "wrote_word")

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.expected: int | None = None  # the token this processor forced at the last step
        self.wrote_word = False
        self.count = 0  # emoji begun in this row: picks the next one from the palette

    def next(self, last: int | None, wordy: bool, word_end: bool, sequences: list[tuple[int, ...]]) -> int | None:
        """The token to force now, or None. ``last``: the row's last token (None at the first
        step); ``wordy``: it holds a letter or digit; ``word_end``: the word-end rule holds now."""
        if last is not None and self.expected is None:  # the model's own token
            self.wrote_word = self.wrote_word or wordy
        elif last is not None and last != self.expected:  # the row stopped (padding): give up
            self.pending = []
        self.expected = None
        if not self.pending and word_end and self.wrote_word:
            self.pending = list(sequences[self.count % len(sequences)])
            self.count += 1
            self.wrote_word = False
        if self.pending:
            self.expected = self.pending.pop(0)
        return self.expected
