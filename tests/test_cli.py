"""The command line: contract flags and JSON keys, and one clear line for every bad input."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from dojang.cli import main
from dojang.keys import load_key
from tests.conftest import HUMAN_EN
from tests.helpers import one_error_line, tiny_answer

CONTRACT_KEYS = {"verdict", "p_value", "tokens_scored", "scheme", "key_id", "spans"}


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def keyfile(runner, tmp_path):
    path = tmp_path / "key.json"
    result = runner.invoke(main, ["keygen", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_keygen_writes_0600_and_prints_only_the_id(runner, keyfile) -> None:
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    key = load_key(keyfile)
    assert key._secret.hex() not in keyfile.read_text().replace(key._secret.hex(), "", 1)  # once, in the file


def test_keygen_refuses_overwrite(runner, keyfile) -> None:
    before = keyfile.read_text()
    line = one_error_line(runner.invoke(main, ["keygen", "-o", str(keyfile)]))
    assert "exists" in line
    assert keyfile.read_text() == before


def test_detect_json_contract_on_marked_and_human_text(runner, keyfile, tmp_path, tiny_model, tokenizer) -> None:
    key = load_key(keyfile)
    gen = tiny_answer(key, tiny_model, tokenizer, seed=4, tokens=120)
    marked = tmp_path / "marked.txt"
    marked.write_text(gen.text, encoding="utf-8")
    result = runner.invoke(main, ["text", "detect", "--key", str(keyfile), "--json", str(marked)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= CONTRACT_KEYS
    assert data["verdict"] == "detected"
    assert data["key_id"] == key.key_id
    assert data["scheme"] == "gumbel"
    assert key._secret.hex() not in result.output
    human = runner.invoke(main, ["text", "detect", "--key", str(keyfile), "--json"], input=HUMAN_EN)
    assert json.loads(human.stdout)["verdict"] == "not_detected"
    readable = runner.invoke(main, ["text", "detect", "--key", str(keyfile), str(marked)])
    assert readable.exit_code == 0
    assert "detected" in readable.stdout and key.key_id in readable.stdout


def test_detect_key_ring(runner, keyfile, tmp_path) -> None:
    other = tmp_path / "other.json"
    runner.invoke(main, ["keygen", "-o", str(other)])
    result = runner.invoke(main, ["text", "detect", "--key", str(other), "--key", str(keyfile), "--json"], input=HUMAN_EN)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["verdict"] == "not_detected"


@pytest.mark.parametrize(
    ("setup", "expect"),
    [
        ("missing_key", "key file not found"),
        ("malformed_key", "not a dojang key file"),
        ("not_utf8", "not UTF-8"),
        ("empty", "empty"),
        ("unknown_scheme", "unknown scheme"),
        ("missing_file", "file not found"),
    ],
)
def test_detect_bad_input_gives_one_line(runner, keyfile, tmp_path, setup: str, expect: str) -> None:
    args = ["text", "detect", "--key", str(keyfile)]
    text_file = tmp_path / "in.txt"
    text_file.write_text(HUMAN_EN)
    if setup == "missing_key":
        args = ["text", "detect", "--key", str(tmp_path / "nope.json"), str(text_file)]
    elif setup == "malformed_key":
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        args = ["text", "detect", "--key", str(bad), str(text_file)]
    elif setup == "not_utf8":
        text_file.write_bytes(b"caf\xe9 au lait " * 10)
        args.append(str(text_file))
    elif setup == "empty":
        text_file.write_text("  \n")
        args.append(str(text_file))
    elif setup == "unknown_scheme":
        args += ["--scheme", "rot13", str(text_file)]
    elif setup == "missing_file":
        args.append(str(tmp_path / "absent.txt"))
    line = one_error_line(runner.invoke(main, args))
    assert expect in line
    assert line.startswith("dojang: error:")


def test_generate_rejects_unknown_scheme_before_loading_a_model(runner, keyfile) -> None:
    line = one_error_line(runner.invoke(main, ["text", "generate", "--key", str(keyfile), "--scheme", "nope", "hi"]))
    assert "unknown scheme" in line


def test_generate_rejects_bad_model_path(runner, keyfile, tmp_path) -> None:
    line = one_error_line(
        runner.invoke(main, ["text", "generate", "--key", str(keyfile), "--model", str(tmp_path / "none"), "hi"])
    )
    assert "not a model directory" in line
