from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tokenizer():
    """The default model's real tokenizer (converted from the GGUF once and cached)."""
    from dojang.text.models import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    """A tiny randomly initialised Llama over the real vocabulary, its logits scaled so that
    next-token distributions look like a language model's (~3 bits of entropy, 99.8% of the
    mass in the 256 likeliest tokens); fast enough for many generations."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(60.0)
    return model


@pytest.fixture()
def key():
    """A fixed key: with a fresh random key every run, a verdict near the threshold changed from run
    to run (a marked 110-token text of the tiny model once went undetected in a full test run)."""
    from tests.helpers import fixed_key

    return fixed_key(21)


@pytest.fixture()
def rng():
    return np.random.default_rng(12345)


HUMAN_EN = (
    "The committee met on Tuesday to review the budget for the coming year. Members raised concerns "
    "about the cost of repairing the old bridge, which has been closed to heavy traffic since the spring "
    "floods. After a long discussion, they agreed to ask the county for a second inspection before any "
    "contract is signed. The mayor said she expected a decision by the end of the month, and thanked the "
    "volunteers who had kept the riverside path open during the repairs. Local businesses, she added, had "
    "suffered from the detour, and the council would look at ways to support them through the winter."
)
HUMAN_KO = (
    "어제 오후 시청에서 열린 회의에서 위원들은 내년도 예산안을 검토했다. 봄철 홍수 이후 대형 차량의 통행이 "
    "금지된 낡은 다리의 보수 비용을 두고 여러 의견이 나왔다. 긴 논의 끝에 위원회는 계약을 맺기 전에 군청에 "
    "두 번째 안전 점검을 요청하기로 했다. 시장은 이달 말까지 결정이 나올 것이라고 말하며, 공사 기간 동안 "
    "강변 산책로를 지켜 준 자원봉사자들에게 감사를 전했다."
)
