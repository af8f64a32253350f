"""Text watermarking: stamp tokens while a language model samples, detect from text alone."""

from dojang.text.config import (
    PRESETS,
    GumbelConfig,
    KGWConfig,
    SchemeConfig,
    SynthIDConfig,
    known_configs,
    preset,
    register,
    resolve,
    scheme_config,
    schemes,
)
from dojang.text.detect import TextDetector, normalize
from dojang.text.generate import Generation, generate, generate_batch

__all__ = [
    "PRESETS",
    "Generation",
    "GumbelConfig",
    "KGWConfig",
    "SchemeConfig",
    "SynthIDConfig",
    "TextDetector",
    "WatermarkLogitsProcessor",
    "detect",
    "generate",
    "generate_batch",
    "known_configs",
    "normalize",
    "preset",
    "register",
    "resolve",
    "scheme_config",
    "schemes",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # The processor imports torch and transformers: load it only when asked for.
    if name == "WatermarkLogitsProcessor":
        from dojang.text.processor import WatermarkLogitsProcessor

        return WatermarkLogitsProcessor
    raise AttributeError(f"module 'dojang.text' has no attribute {name!r}")


def detect(text: str, keys, *, tokenizer=None, prompt: str | None = None, **options):  # type: ignore[no-untyped-def]
    """Detect a dojang watermark in ``text`` under one key or a key ring; see :class:`TextDetector`.
    ``tokenizer`` defaults to the embedded model's."""
    if tokenizer is None:
        from dojang.text.models import load_tokenizer

        tokenizer = load_tokenizer()
    return TextDetector(keys=keys, tokenizer=tokenizer, **options).detect(text, prompt=prompt)
