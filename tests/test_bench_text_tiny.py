"""``run_text`` end to end on tiny random models saved to disk (seconds, not minutes): every
progress step is reported up to the total, and the paraphrase attack uses the suite's
``paraphraser`` model when one is given."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dojang.bench import TextSuite, run_text
from dojang.bench._text import build_text_attack
from dojang.cli import main
from dojang.text import attacks as T
from tests.helpers import fixed_key


@pytest.fixture(scope="module")
def model_dirs(tiny_model, tokenizer, tmp_path_factory) -> tuple[str, str]:
    """Two tiny models over the real vocabulary: the generator (the conftest's) and a paraphraser
    with other weights."""
    gen, para = tmp_path_factory.mktemp("gen"), tmp_path_factory.mktemp("para")
    tiny_model.save_pretrained(gen)
    tokenizer.save_pretrained(gen)
    other = type(tiny_model)(tiny_model.config).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in other.parameters():
            p.normal_(0, 0.05)
        other.lm_head.weight.mul_(60.0)
    other.save_pretrained(para)
    tokenizer.save_pretrained(para)
    return str(gen), str(para)


def _suite(gen: str, **kw: object) -> TextSuite:
    return TextSuite(
        scheme="kgw", prompts=1, max_new_tokens=24, human_texts=6, lengths=(8, 24), batch_size=2, model=gen,
        attacks=("none", "paraphrase", "delete 0.1 + swap 0.1", "emoji"), sweeps=(("delete", (0.0, 0.3)),), **kw,
    )  # fmt: skip


def test_progress_reaches_its_total(model_dirs) -> None:
    seen: list[tuple[str, int, int]] = []
    result = run_text(_suite(model_dirs[0]), key=fixed_key(3), progress=lambda s, d, t: seen.append((s, d, t)))
    totals = {t for _, _, t in seen}
    assert len(totals) == 1
    assert [d for _, d, _ in seen] == list(range(totals.pop() + 1))  # 0, 1, ..., total: none skipped, none missing
    assert [a.name for a in result.attacks][:3] == ["none", "paraphrase", "delete 0.1 + swap 0.1"]


def test_paraphrase_uses_the_paraphraser(model_dirs, tokenizer) -> None:
    from dojang.text.models import load_model

    gen, para = model_dirs
    result = run_text(_suite(gen, paraphraser=para), key=fixed_key(3))
    assert result.suite["paraphraser"] == para
    samples = dict(result.samples)
    marked = samples["marked answer (no attack)"]
    by = {p: T.paraphrase(model=load_model(p)[0], tokenizer=tokenizer, seed=1234, batch_size=2).many([marked])[0]
          for p in (gen, para)}  # fmt: skip
    assert by[gen] != by[para]  # the two models rewrite differently ...
    assert samples["paraphrase"] == by[para][:800]  # ... and the run used the paraphraser


def test_build_text_attack_paraphraser_defaults_to_the_model(tiny_model, tokenizer) -> None:
    args = dict(tokenizer=tokenizer, model=tiny_model, human_texts=["a b c"], seed=5, batch_size=2)
    same = build_text_attack((("paraphrase", ()),), **args, paraphraser=(tiny_model, tokenizer))
    default = build_text_attack((("paraphrase", ()),), **args)
    assert same("The river ran fast.") == default("The river ran fast.")


def test_cli_progress_lines_when_not_a_terminal(model_dirs, tmp_path: Path) -> None:
    gen, para = model_dirs
    suite = tmp_path / "s.toml"
    suite.write_text(
        f'[text]\nprompts = 1\nmax_new_tokens = 16\nhuman_texts = 4\nlengths = [16]\nmodel = "{gen}"\n'
        'attacks = ["none", "paraphrase"]\nsweeps = {}\n'
    )
    args = ["bench", "text", "--suite", str(suite), "--paraphraser", para, "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    steps = re.findall(r"^bench text: \[(\d+)/(\d+)\] (.+)$", result.stderr, re.M)
    assert [int(d) for d, _, _ in steps] == list(range(len(steps)))
    assert steps[-1][0] == steps[-1][1] and any(s == "attack paraphrase" for _, _, s in steps)
    assert (tmp_path / "out" / "report.html").is_file()
