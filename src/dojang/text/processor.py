"""The transformers adapter: a ``LogitsProcessor`` that stamps each sampled token.

The processor does the last sampling step itself and hands ``generate`` a one-hot row (0 for the
chosen token, -inf elsewhere), so whatever ``generate`` does afterwards (greedy, multinomial,
its own temperature or top-p) picks exactly that token. Temperature, top-k and top-p therefore
belong to the processor: ``dojang.text.generate`` passes them through, and a direct user of
``model.generate(..., logits_processor=[processor])`` gives them here.

Shapes: ``input_ids`` (batch, seq) int64, left-padded for batched prompts; ``scores`` (batch,
vocab) float. All math is vectorised over the batch and the vocabulary or candidate set.
"""

from __future__ import annotations

import logging
import math
import secrets

import torch
from transformers import LogitsProcessor

from dojang.errors import ConfigError
from dojang.keys import Key
from dojang.text._hash import MASK32, TAIL_TOKEN, candidate_hash, context_hash, fold_seed, key_words, mix32
from dojang.text.config import GumbelConfig, KGWConfig, SchemeConfig, SynthIDConfig

log = logging.getLogger(__name__)


class WatermarkLogitsProcessor(LogitsProcessor):
    """Stamps a dojang text watermark while ``model.generate`` samples.

    Build it with ``config.build_processor(key, temperature=..., top_p=..., seed=...)``.
    ``temperature=0`` means greedy decoding over the watermarked distribution (only ``kgw`` can
    mark greedy output). ``seed`` fixes the sampling noise for reproducible runs; the watermark
    itself depends only on the key and the context.
    """

    def __init__(
        self,
        *,
        config: SchemeConfig,
        key: Key,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(key, Key):
            raise ConfigError("the processor needs a dojang Key (see dojang.keys.load_key)")
        if temperature < 0 or not math.isfinite(temperature):
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise ConfigError(f"top_p must lie in (0, 1], got {top_p}")
        self.config = config
        self.key_id = key.key_id
        self._words = key_words(key, config.scheme)
        self.temperature = float(temperature)
        self.top_k = top_k
        self.top_p = top_p
        self._seed = seed if seed is not None else secrets.randbits(63)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._tables: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        # Free-prefix state: bits of entropy sampled so far in each row of the current generate run.
        self._free_bits = float(config.free_bits)
        self._spent: torch.Tensor | None = None
        self._last_ids: torch.Tensor | None = None  # the previous step's input, to tell a new call from the next step

    def __repr__(self) -> str:
        return (
            f"WatermarkLogitsProcessor(scheme={self.config.scheme!r}, key_id={self.key_id!r}, "
            f"temperature={self.temperature}, top_k={self.top_k}, top_p={self.top_p})"
        )

    # -- helpers -------------------------------------------------------------------------------
    def _generator(self, device: torch.device) -> torch.Generator:
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self._seed)
            self._generators[device] = gen
        return gen

    def _vocab_tables(self, vocab: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Context and candidate hashes of every token id, cached per vocabulary and device."""
        cached = self._tables.get((vocab, device))
        if cached is None:
            ids = torch.arange(vocab, dtype=torch.int64, device=device)
            cached = (context_hash(ids, self._words), candidate_hash(ids, self._words))
            self._tables[(vocab, device)] = cached
        return cached

    def _row_seeds(self, input_ids: torch.Tensor, ctx_table: torch.Tensor) -> torch.Tensor:
        """(batch,) seed of each row's last h tokens; for selfhash the context part only."""
        h = self.config.context_width
        ctx = input_ids[:, -h:].to(torch.int64)
        if ctx.shape[1] < h:  # a prompt shorter than the context: pad on the left with id 0
            ctx = torch.nn.functional.pad(ctx, (h - ctx.shape[1], 0))
        hashes = ctx_table[ctx.clamp(0, ctx_table.shape[0] - 1)]
        if self.config.seeding == "lefthash":
            return fold_seed(hashes, self._words)
        return hashes.min(dim=1).values

    def _warp(self, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float()
        if self.temperature > 0:
            logits = logits / self.temperature
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -math.inf)
        if self.top_p is not None and self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            sorted_p = sorted_logits.softmax(-1)
            drop_sorted = sorted_p.cumsum(-1) - sorted_p >= self.top_p  # mass before a token; keeps the first
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            logits = logits.masked_fill(drop, -math.inf)
        return logits

    def _sample(self, logits: torch.Tensor, top_ids: torch.Tensor | None = None) -> torch.Tensor:
        """One exact draw from softmax(logits) per row, in two stages: first among the likely
        tokens ``top_ids`` and the pooled rest, then (rarely) inside the rest. A full-vocabulary
        multinomial costs ~10 ms per step here; this costs well under one."""
        if self.temperature == 0:
            return logits.argmax(dim=-1)
        if top_ids is None:
            top_ids = logits.topk(min(self.config.candidates, logits.shape[-1]), dim=-1).indices
        pick = torch.multinomial(_pooled(logits, top_ids), 1, generator=self._generator(logits.device)).squeeze(1)
        return self._resolve(logits, top_ids, pick)

    def _resolve(self, logits: torch.Tensor, top_ids: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
        """Token ids for picks among ``top_ids`` (index k = the pooled rest, drawn from again)."""
        k = top_ids.shape[1]
        chosen = top_ids.gather(1, pick.clamp(max=k - 1).unsqueeze(1)).squeeze(1)
        return self._draw_tail(logits, top_ids, pick == k, chosen)

    def _draw_tail(
        self, logits: torch.Tensor, top_ids: torch.Tensor, from_tail: torch.Tensor, chosen: torch.Tensor
    ) -> torch.Tensor:
        """Rows in ``from_tail`` draw again from softmax(logits) outside ``top_ids``."""
        if bool(from_tail.any()):
            rest = logits[from_tail].softmax(dim=-1).scatter(1, top_ids[from_tail], 0.0)
            ok = rest.sum(-1) > 0  # float round-off can leave a "tail" with no mass: keep the top pick
            if bool(ok.any()):
                drawn = torch.multinomial(rest[ok], 1, generator=self._generator(logits.device)).squeeze(1)
                rows = from_tail.nonzero().squeeze(1)[ok]
                chosen[rows] = drawn
        return chosen

    # -- the step ------------------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        vocab = scores.shape[-1]
        ctx_table, cand_table = self._vocab_tables(vocab, scores.device)
        seeds = self._row_seeds(input_ids, ctx_table)  # (batch,)
        logits = self._warp(scores)
        cfg = self.config
        if isinstance(cfg, KGWConfig):
            chosen = self._kgw_step(logits, seeds, ctx_table, cand_table, cfg)
        elif isinstance(cfg, (SynthIDConfig, GumbelConfig)):
            chosen = self._candidate_step(logits, seeds, cand_table, cfg)
        else:  # pragma: no cover - new schemes must add their step here
            raise ConfigError(f"no generation step for scheme {cfg.scheme!r}")
        if self._free_bits > 0:
            chosen = self._free_prefix(input_ids, logits, chosen)
        out = torch.full_like(scores, -math.inf)
        out.scatter_(1, chosen.unsqueeze(1), 0.0)
        return out  # type: ignore[return-value]

    def _free_prefix(self, input_ids: torch.Tensor, logits: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Rows whose answer has not yet spent ``free_bits`` of entropy take a plain sample."""
        batch, length = input_ids.shape
        last = self._last_ids
        if (
            self._spent is None or last is None or last.shape != (batch, length - 1) or not torch.equal(input_ids[:, :-1], last)
        ):  # not the next step of the same run: a new generate call starts its answers afresh
            self._spent = torch.zeros(batch, dtype=torch.float64, device=logits.device)
        self._last_ids = input_ids
        free = self._spent < self._free_bits
        if not bool(free.any()):
            return chosen
        probs = logits.softmax(dim=-1)
        entropy = -(probs * torch.log2(probs.clamp_min(1e-30))).sum(-1).double()
        self._spent = self._spent + torch.where(free, entropy, torch.zeros_like(entropy))
        plain = self._sample(logits)
        return torch.where(free, plain, chosen)

    def _kgw_step(
        self,
        logits: torch.Tensor,
        seeds: torch.Tensor,
        ctx_table: torch.Tensor,
        cand_table: torch.Tensor,
        cfg: KGWConfig,
    ) -> torch.Tensor:
        k = min(cfg.candidates, logits.shape[-1])
        top_ids = logits.topk(k, dim=-1).indices  # (batch, k): only these can be sampled in practice
        if cfg.seeding == "selfhash":  # the candidate itself joins the minimum
            seed_grid = torch.minimum(seeds.unsqueeze(1), ctx_table[top_ids])  # (batch, k)
        else:
            seed_grid = seeds.unsqueeze(1)  # (batch, 1)
        green = mix32(seed_grid ^ cand_table[top_ids]) < cfg.green_threshold  # (batch, k)
        biased = logits.scatter_add(1, top_ids, green.to(logits.dtype) * cfg.delta)
        return self._sample(biased, top_ids)

    def _candidate_step(
        self,
        logits: torch.Tensor,
        seeds: torch.Tensor,
        cand_table: torch.Tensor,
        cfg: SynthIDConfig | GumbelConfig,
    ) -> torch.Tensor:
        if self.temperature == 0:
            return logits.argmax(dim=-1)
        top_ids = logits.topk(min(cfg.candidates, logits.shape[-1]), dim=-1).indices  # (batch, k)
        q = _pooled(logits, top_ids).double()  # (batch, k+1); index k is the pooled tail
        q = q / q.sum(-1, keepdim=True)
        tail_hash = mix32(torch.tensor(TAIL_TOKEN ^ self._words[2], dtype=torch.int64, device=seeds.device))
        cand = torch.cat([cand_table[top_ids], tail_hash.expand(seeds.shape[0], 1)], dim=1)
        u = mix32(seeds.unsqueeze(1) ^ cand)  # (batch, k+1)
        gen = self._generator(logits.device)
        if isinstance(cfg, SynthIDConfig):
            for layer in range(cfg.layers):
                g = ((u >> layer) & 1).double()
                q = q * (1.0 + g - (q * g).sum(-1, keepdim=True))
            pick = torch.multinomial(q.clamp_min(0.0), 1, generator=gen).squeeze(1)
        else:
            r = u.double() / float(MASK32 + 1)
            pick = torch.where(q > 0, torch.log(r) / q, torch.full_like(q, -math.inf)).argmax(dim=-1)
        return self._resolve(logits, top_ids, pick)


def _pooled(logits: torch.Tensor, top_ids: torch.Tensor) -> torch.Tensor:
    """(batch, k+1): softmax(logits) at ``top_ids`` and, last, the pooled mass of every other token."""
    top_p = (logits.gather(1, top_ids) - logits.logsumexp(dim=-1, keepdim=True)).exp()
    tail = (1.0 - top_p.sum(-1, keepdim=True)).clamp_min(0.0)
    return torch.cat([top_p, tail], dim=1)
