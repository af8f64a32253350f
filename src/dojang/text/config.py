"""Scheme configurations: frozen dataclasses that validate themselves and build the runtime
objects (a transformers logits processor, a detector). One registry maps scheme names to
config classes; named presets sit on top of it.

The statistics each scheme scores with (docs/spec/text.md, section 4):

* ``kgw``: a token is green when u < floor(gamma * 2**32); the count of green tokens among n
  scored tokens is Binomial(n, gamma') under the null, gamma' = floor(gamma * 2**32) / 2**32.
* ``synthid``: the low ``layers`` bits of u are the tournament g-values; their sum over n tokens
  is Binomial(n * layers, 1/2) under the null.
* ``gumbel``: a token scores -log(1 - u / 2**32); the sum over n tokens is stochastically below
  Gamma(n, 1) under the null, so the gamma tail is exact up to a conservative rounding.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from dojang.errors import ConfigError
from dojang.stats import log_binom_sf, log_gamma_sf
from dojang.text._hash import N32

if TYPE_CHECKING:
    from dojang.keys import Key, KeyRing
    from dojang.text.detect import TextDetector
    from dojang.text.processor import WatermarkLogitsProcessor

SEEDINGS = ("selfhash", "lefthash", "minhash")

_REGISTRY: dict[str, type[SchemeConfig]] = {}
C = TypeVar("C", bound="type[SchemeConfig]")


def register(name: str) -> Callable[[C], C]:
    """Class decorator: make a config class available under ``name``."""

    def wrap(cls: C) -> C:
        cls.scheme = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return wrap


def schemes() -> tuple[str, ...]:
    """Names of the registered schemes."""
    return tuple(_REGISTRY)


def scheme_config(name: str, **params: Any) -> SchemeConfig:
    """The config of scheme ``name`` with ``params`` over its defaults."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown scheme {name!r}; choose one of {', '.join(_REGISTRY)}") from None
    try:
        return cls(**params)
    except TypeError as err:
        raise ConfigError(f"scheme {name!r}: {err}") from None


@dataclass(frozen=True, kw_only=True)
class SchemeConfig(ABC):
    """Common parameters: how many previous tokens seed the hash, and how they are combined.

    ``candidates`` (generation only): each step reshapes the distribution over the ``candidates``
    most likely tokens; the rest keep their probabilities (kgw) or are pooled into one tail
    candidate (synthid, gumbel), which keeps the cost per step independent of the vocabulary.

    ``free_bits`` (generation only): each answer starts with unwatermarked tokens until their
    entropy adds up to this many bits, so that one prompt under one key still yields varied
    answers with schemes that are deterministic given the context (gumbel). Those tokens are
    sampled from the model's own distribution; detection simply finds no mark in them.
    """

    scheme: ClassVar[str]
    allowed_seedings: ClassVar[tuple[str, ...]] = SEEDINGS

    context_width: int = 4
    seeding: str = "selfhash"
    allow_narrow_context: bool = False
    free_bits: float = 0.0
    candidates: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.candidates <= 65536:
            raise ConfigError(f"{self.scheme}: candidates must lie in [1, 65536], got {self.candidates}")
        if not 0.0 <= self.free_bits <= 64.0:
            raise ConfigError(f"{self.scheme}: free_bits must lie in [0, 64], got {self.free_bits}")
        if self.seeding not in self.allowed_seedings:
            raise ConfigError(f"{self.scheme}: seeding must be one of {', '.join(self.allowed_seedings)}, got {self.seeding!r}")
        if not isinstance(self.context_width, int) or self.context_width < 1:
            raise ConfigError(f"{self.scheme}: context_width must be a positive integer")
        if self.context_width > 16:
            raise ConfigError(f"{self.scheme}: context_width above 16 leaves too little to score")
        if self.context_width == 1 and not self.allow_narrow_context:
            raise ConfigError(
                f"{self.scheme}: context_width=1 makes the key easy to steal from a few thousand "
                "outputs; pass allow_narrow_context=True if you accept that"
            )

    # -- detection ---------------------------------------------------------------------------
    @abstractmethod
    def token_scores(self, u: NDArray[np.int64]) -> NDArray[np.float64]:
        """Per-token score from the 32-bit hash values ``u`` of the scored tokens."""

    @abstractmethod
    def log_tail(self, total: NDArray[np.float64], n_tokens: NDArray[np.int64]) -> NDArray[np.float64]:
        """log P(score sum >= total | n_tokens tokens, no watermark)."""

    @property
    @abstractmethod
    def null_moments(self) -> tuple[float, float]:
        """Mean and standard deviation of one token's score without the watermark."""

    def identity(self) -> tuple[Any, ...]:
        """What detection depends on; generation-only parameters are left out."""
        return (self.scheme, self.context_width, self.seeding)

    # -- building ----------------------------------------------------------------------------
    def build_processor(self, key: Key, **sampling: Any) -> WatermarkLogitsProcessor:
        """A transformers logits processor that stamps this scheme under ``key``.

        ``sampling``: ``temperature``, ``top_k``, ``top_p``, ``seed`` (see the processor)."""
        from dojang.text.processor import WatermarkLogitsProcessor

        return WatermarkLogitsProcessor(config=self, key=key, **sampling)

    def build_detector(self, keys: Key | KeyRing | Iterable[Key], tokenizer: Any, **options: Any) -> TextDetector:
        """A detector for this scheme alone (no correction for other schemes)."""
        from dojang.text.detect import TextDetector

        return TextDetector(keys=keys, tokenizer=tokenizer, configs=[self], **options)

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, **asdict(self)}


@register("kgw")
@dataclass(frozen=True, kw_only=True)
class KGWConfig(SchemeConfig):
    """Red/green lists (Kirchenbauer et al. 2023): add ``delta`` to the logits of the green
    fraction ``gamma`` of the vocabulary. Selfhash with h=4 is the reliability paper's choice."""

    gamma: float = 0.25
    delta: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.gamma < 1.0:
            raise ConfigError(f"kgw: gamma must lie strictly between 0 and 1, got {self.gamma}")
        if not 0.0 <= self.delta <= 20.0:
            raise ConfigError(f"kgw: delta must lie in [0, 20], got {self.delta}")

    @property
    def green_threshold(self) -> int:
        """u < this is green."""
        return math.floor(self.gamma * N32)

    @property
    def effective_gamma(self) -> float:
        return self.green_threshold / N32

    @property
    def null_moments(self) -> tuple[float, float]:
        g = self.effective_gamma
        return g, math.sqrt(g * (1.0 - g))

    def token_scores(self, u: NDArray[np.int64]) -> NDArray[np.float64]:
        return (u < self.green_threshold).astype(np.float64)

    def log_tail(self, total: NDArray[np.float64], n_tokens: NDArray[np.int64]) -> NDArray[np.float64]:
        return log_binom_sf(np.rint(total).astype(np.int64), n_tokens, self.effective_gamma)

    def identity(self) -> tuple[Any, ...]:
        return (*super().identity(), self.green_threshold)


@dataclass(frozen=True, kw_only=True)
class _CandidateScheme(SchemeConfig):
    """Schemes that reshape the whole next-token distribution. They treat the ``candidates``
    most likely tokens one by one and pool the rest into one 'tail' candidate, which keeps the
    sampling exactly distortion-free."""

    # Every context gets its own seed: a seed shared by many positions (minhash) would make these
    # schemes pick the same tokens again and again.
    allowed_seedings: ClassVar[tuple[str, ...]] = ("lefthash",)
    seeding: str = "lefthash"


@register("synthid")
@dataclass(frozen=True, kw_only=True)
class SynthIDConfig(_CandidateScheme):
    """Tournament sampling (Dathathri et al., Nature 2024) with ``layers`` binary g-values per
    token; distortion-free for every single step."""

    layers: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.layers <= 32:
            raise ConfigError(f"synthid: layers must lie in [1, 32], got {self.layers}")

    @property
    def null_moments(self) -> tuple[float, float]:
        return self.layers / 2.0, math.sqrt(self.layers) / 2.0

    def token_scores(self, u: NDArray[np.int64]) -> NDArray[np.float64]:
        bits = np.zeros(u.shape, dtype=np.int64)
        for layer in range(self.layers):
            bits += (u >> layer) & 1
        return bits.astype(np.float64)

    def log_tail(self, total: NDArray[np.float64], n_tokens: NDArray[np.int64]) -> NDArray[np.float64]:
        return log_binom_sf(np.rint(total).astype(np.int64), np.asarray(n_tokens) * self.layers, 0.5)

    def identity(self) -> tuple[Any, ...]:
        return (*super().identity(), self.layers)


@register("gumbel")
@dataclass(frozen=True, kw_only=True)
class GumbelConfig(_CandidateScheme):
    """Gumbel-max / exponential-minimum sampling (Aaronson 2022): pick argmax r_x^(1/p_x) with
    keyed uniforms r; distortion-free, and deterministic given the context."""

    @property
    def null_moments(self) -> tuple[float, float]:
        return 1.0, 1.0

    def token_scores(self, u: NDArray[np.int64]) -> NDArray[np.float64]:
        # -log(1 - u/2^32) with 1 - u/2^32 in {1/2^32, ..., 1}: stochastically below Exp(1).
        return -np.log((N32 - u.astype(np.float64)) / N32)

    def log_tail(self, total: NDArray[np.float64], n_tokens: NDArray[np.int64]) -> NDArray[np.float64]:
        return log_gamma_sf(total, n_tokens)


PRESETS: dict[str, SchemeConfig] = {
    # Highest power per token measured here, and each answer is sampled from the model's own
    # distribution; the free prefix keeps repeated prompts from repeating answers.
    "default": GumbelConfig(context_width=4, seeding="lefthash", free_bits=6.0),
    # A narrow min-hash context survives heavy token substitution.
    "robust": KGWConfig(gamma=0.25, delta=3.0, context_width=2, seeding="minhash"),
    # Tournament sampling: distortion-free and fully random (no two answers alike).
    "distortion-free": SynthIDConfig(layers=30, context_width=4, seeding="lefthash"),
}

# What `--scheme NAME` selects: the scheme's recommended configuration.
SCHEME_DEFAULTS: dict[str, SchemeConfig] = {
    # The reliability paper's recommendation: selfhash over h = 4.
    "kgw": KGWConfig(gamma=0.25, delta=2.0, context_width=4, seeding="selfhash"),
    "synthid": PRESETS["distortion-free"],
    "gumbel": PRESETS["default"],
}


def preset(name: str) -> SchemeConfig:
    """A named preset: ``default``, ``robust`` or ``distortion-free``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def resolve(scheme_or_preset: str | SchemeConfig) -> SchemeConfig:
    """A config from a config, a scheme name or a preset name."""
    if isinstance(scheme_or_preset, SchemeConfig):
        return scheme_or_preset
    if scheme_or_preset in SCHEME_DEFAULTS:
        return SCHEME_DEFAULTS[scheme_or_preset]
    if scheme_or_preset in PRESETS:
        return PRESETS[scheme_or_preset]
    raise ConfigError(
        f"unknown scheme or preset {scheme_or_preset!r}; schemes: {', '.join(SCHEME_DEFAULTS)}; presets: {', '.join(PRESETS)}"
    )


def known_configs() -> tuple[SchemeConfig, ...]:
    """Every distinct configuration a detector tries when not told the scheme."""
    seen: dict[tuple[Any, ...], SchemeConfig] = {}
    for cfg in (*PRESETS.values(), *SCHEME_DEFAULTS.values()):
        seen.setdefault(cfg.identity(), cfg)
    return tuple(seen.values())


def config_from_dict(data: dict[str, Any]) -> SchemeConfig:
    params = dict(data)
    name = params.pop("scheme", None)
    if not isinstance(name, str):
        raise ConfigError("a scheme config needs a 'scheme' name")
    allowed = {f.name for f in fields(_REGISTRY.get(name, SchemeConfig))} if name in _REGISTRY else set()
    unknown = set(params) - allowed
    if name in _REGISTRY and unknown:
        raise ConfigError(f"scheme {name!r}: unknown parameters {', '.join(sorted(unknown))}")
    return scheme_config(name, **params)
