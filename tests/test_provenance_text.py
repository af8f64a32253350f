"""C2PA manifests carried inside a text (c2pa-text's variation-selector wrapper), with real signing
and real validation by c2pa-python and certificates made in the run: trusted with the anchor, one
edited character -> invalid, wrapper stripped -> the watermark and the store, a manifest moved onto
another text -> invalid, a damaged wrapper -> a clear answer."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from dojang.cli import main
from dojang.errors import ProvenanceError
from dojang.provenance import (
    TEXT_SOFT_BINDING_ALG,
    ManifestSigner,
    SQLiteStore,
    init_dev_chain,
    read_text_manifest,
    record_text,
    sign_text,
    verify,
    verify_bytes,
)
from dojang.provenance._textmanifest import strip_wrappers
from tests.conftest import HUMAN_EN
from tests.helpers import fixed_key, one_error_line, tiny_answer

pytest.importorskip("c2pa")
c2pa_text = pytest.importorskip("c2pa_text")
VERIFY_KEYS = {"state", "ai_generated", "signer", "signed_at", "actions", "watermark", "recovered_from", "validation_codes"}
AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model, tokenizer):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("ptext")
    chain = init_dev_chain(root / "certs")
    key = fixed_key(7)
    gen = tiny_answer(key, tiny_model, tokenizer, seed=11, tokens=200)
    store = SQLiteStore(root / "store.sqlite3")
    entry = record_text(store, gen.text, key_id=key.key_id, scheme="default", model="tiny-test-model")
    signer = ManifestSigner.from_files(str(chain.chain), str(chain.signing_key))
    t0 = time.perf_counter()
    signed = sign_text(gen.text, signer=signer, generator="tiny-test-model 1.0", key_id=key.key_id, scheme="default")
    sign_s = time.perf_counter() - t0
    return {
        "root": root,
        "chain": chain,
        "trust": chain.root.read_text(),
        "key": key,
        "text": gen.text,
        "store": store,
        "entry": entry,
        "signer": signer,
        "signed": signed,
        "sign_s": sign_s,
    }


def _verify(env, text: str, *, trust: bool = True, keys: bool = True, store: bool = True, tokenizer=None):  # type: ignore[no-untyped-def]
    return verify_bytes(
        text.encode("utf-8"),
        keys=env["key"] if keys else None,
        trust_pem=env["trust"] if trust else None,
        store=env["store"] if store else None,
        tokenizer=tokenizer,
    )


def _assert_invalid(v, *codes: str, said: str = "") -> None:  # type: ignore[no-untyped-def]
    assert v.state == "invalid", v.to_dict()
    assert v.kind == "text"
    assert v.signer is None and v.actions == [] and v.signed_at is None  # never attributed to the claimed signer
    for code in codes:
        assert code in v.validation_codes, v.validation_codes
    assert said in v.reason and "not attributed" in v.reason, v.reason


def test_signed_text_is_trusted_with_the_anchor_and_valid_without(env, tokenizer) -> None:  # type: ignore[no-untyped-def]
    signed = env["signed"]
    visible = strip_wrappers(signed.text)
    assert visible == env["text"] and signed.text.startswith(env["text"])  # the wrapper only appends invisible characters
    assert signed.wrapper_bytes == len(signed.text.encode()) - len(env["text"].encode())
    v = _verify(env, signed.text + "\n", tokenizer=tokenizer)  # what `echo` or an editor's save adds
    data = v.to_dict()
    assert set(data) >= VERIFY_KEYS and data["state"] == "trusted" and data["kind"] == "text", data
    assert v.ai_generated is True and v.validation_codes == []
    assert v.signer == {"name": "dojang dev signer", "issuer": "dojang development (testing only)", "trusted": True}
    created, watermarked = v.actions
    assert created == {
        "action": "c2pa.created",
        "digitalSourceType": AI,
        "softwareAgent": "tiny-test-model 1.0",
        "when": v.signed_at,
    }
    assert watermarked["action"] == "c2pa.watermarked" and watermarked["softwareAgent"] == "dojang"
    assert v.watermark is not None and v.watermark.verdict.value == "detected" and v.watermark.key_id == env["key"].key_id
    assert v.recovered_from is not None and v.recovered_from["entry_id"] == env["entry"].entry_id  # the store agrees
    assert "valid C2PA manifest embedded in the text" in v.reason
    view, _ = read_text_manifest(signed.text)
    assert view is not None and view.label == signed.label
    assert view.soft_bindings == ((TEXT_SOFT_BINDING_ALG, env["key"].key_id.encode()),)
    json.dumps(data)  # the contract JSON serialises

    untrusted = _verify(env, signed.text, trust=False, keys=False, store=False)
    assert untrusted.state == "valid" and untrusted.ai_generated is True
    assert untrusted.validation_codes == ["signingCredential.untrusted"] and "NOT in your trust list" in untrusted.reason
    assert untrusted.signer is not None and untrusted.signer["trusted"] is False
    # A Windows line ending after the wrapper is as harmless as a Unix one.
    assert _verify(env, signed.text + "\r\n", keys=False, store=False).state == "trusted"


def test_verify_reads_a_text_file(env) -> None:  # type: ignore[no-untyped-def]
    path = env["root"] / "answer.txt"
    path.write_text(env["signed"].text + "\n", encoding="utf-8")
    assert verify(path, trust_pem=env["trust"]).state == "trusted"


def test_one_edited_character_makes_it_invalid(env, tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = env["signed"].text
    at = next(i for i, ch in enumerate(text) if ch.isalpha())
    edited = text[:at] + ("x" if text[at] != "x" else "y") + text[at + 1 :]
    v = _verify(env, edited, tokenizer=tokenizer)
    _assert_invalid(v, "assertion.dataHash.mismatch", said="the text changed after signing")
    assert v.ai_generated is True  # the watermark still speaks for itself


@pytest.mark.parametrize("extra", [" ", "more words", "\n\n"])
def test_text_added_after_the_wrapper_makes_it_invalid(env, extra) -> None:  # type: ignore[no-untyped-def]
    _assert_invalid(_verify(env, env["signed"].text + extra, keys=False), "assertion.dataHash.mismatch")


def test_converted_line_endings_make_it_invalid(env) -> None:  # type: ignore[no-untyped-def]
    signed = sign_text("First line.\r\nSecond line.\r\n", signer=env["signer"], generator="some-llm")
    assert _verify(env, signed.text, keys=False, store=False).state == "trusted"
    _assert_invalid(_verify(env, signed.text.replace("\r\n", "\n"), keys=False, store=False), "assertion.dataHash.mismatch")


def test_stripped_wrapper_falls_back_to_the_watermark_and_the_store(env, tokenizer) -> None:  # type: ignore[no-untyped-def]
    pasted = strip_wrappers(env["signed"].text)  # what copy-paste through many editors leaves
    v = _verify(env, pasted, tokenizer=tokenizer)
    assert v.state == "recovered" and v.ai_generated is True and v.embedded is None, v.to_dict()
    assert v.recovered_from is not None and v.recovered_from["match"] == "exact"
    without_store = _verify(env, pasted, store=False, tokenizer=tokenizer)
    assert without_store.state == "no_credential" and without_store.ai_generated is True


def test_manifest_moved_onto_another_text_is_invalid(env, tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = env["signed"].text
    wrapper = text[len(env["text"]) :]
    v = _verify(env, HUMAN_EN + wrapper, tokenizer=tokenizer)
    _assert_invalid(v, "assertion.dataHash.mismatch", said="moved from another text")
    assert v.ai_generated is None  # no watermark in the human text: nothing says it is AI-made


def test_edited_manifest_is_invalid(env) -> None:  # type: ignore[no-untyped-def]
    manifest, _ = c2pa_text.extract_manifest(env["signed"].text)
    assert manifest.count(b"tiny-test-model 1.0") == 1
    forged = manifest.replace(b"tiny-test-model 1.0", b"human-written x 1.0")
    v = _verify(env, env["text"] + c2pa_text.encode_wrapper(forged), keys=False)
    _assert_invalid(v, "assertion.hashedURI.mismatch", said="was edited after signing")


@pytest.mark.parametrize(
    ("damage", "code", "said"),
    [
        (lambda t: t[:-100], "manifest.text.corruptedWrapper", "damaged or incomplete"),
        (lambda t: t + t, "manifest.text.multipleWrappers", "more than one C2PA wrapper"),
    ],
)
def test_damaged_wrapper_is_a_clear_answer(env, damage, code, said) -> None:  # type: ignore[no-untyped-def]
    v = _verify(env, damage(env["signed"].text), keys=False)
    _assert_invalid(v, code, said=said)


def test_garbage_in_a_wrapper_is_invalid_not_an_exception(env) -> None:  # type: ignore[no-untyped-def]
    v = _verify(env, env["text"] + c2pa_text.encode_wrapper(b"not a manifest store at all"), keys=False)
    assert v.state == "invalid" and v.validation_codes, v.to_dict()
    # A well-formed JUMBF box that is no manifest store: c2pa-rs cannot read it.
    jumbf = bytes.fromhex("0000001c6a756d62") + bytes.fromhex("000000146a756d64") + bytes(12)
    assert _verify(env, env["text"] + c2pa_text.encode_wrapper(jumbf), keys=False).state == "invalid"


def test_invisible_characters_that_are_no_wrapper_are_ignored(env) -> None:  # type: ignore[no-untyped-def]
    bom = "\ufeff" + env["text"]  # a byte-order mark
    stray = env["text"] + "\ufeff\ufe00\ufe01"  # variation selectors with no C2PA header
    for text in (bom, stray):
        v = _verify(env, text, keys=False, store=False)
        assert v.state == "no_credential" and v.validation_codes == [], v.to_dict()


def test_unwatermarked_text_declares_only_its_creation(env) -> None:  # type: ignore[no-untyped-def]
    signed = sign_text(HUMAN_EN, signer=env["signer"], generator="some-llm")
    assert signed.key_id is None
    v = _verify(env, signed.text, keys=False, store=False)
    assert v.state == "trusted" and v.ai_generated is True
    assert [a["action"] for a in v.actions] == ["c2pa.created"]
    view, _ = read_text_manifest(signed.text)
    assert view is not None and view.soft_bindings == ()


def test_signing_refuses_bad_input_in_words(env) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProvenanceError, match="empty text"):
        sign_text("  \n", signer=env["signer"], generator="x")
    with pytest.raises(ProvenanceError, match="generator name"):
        sign_text("hello", signer=env["signer"], generator=" ")
    with pytest.raises(ProvenanceError, match="already carries a C2PA wrapper"):
        sign_text(env["signed"].text, signer=env["signer"], generator="x")


def test_wrapper_size_and_speed(env) -> None:  # type: ignore[no-untyped-def]
    """Measured, loosely bounded: ~3.6 UTF-8 bytes per manifest byte, about 14 KB."""
    signed = env["signed"]
    assert 8_000 < signed.wrapper_bytes < 24_000, signed.wrapper_bytes
    t0 = time.perf_counter()
    assert _verify(env, signed.text, keys=False, store=False).state == "trusted"
    verify_s = time.perf_counter() - t0
    size = len(env["text"].encode())
    print(f"text {size} B, wrapper {signed.wrapper_bytes} B, sign {env['sign_s']:.3f} s, verify {verify_s:.3f} s")
    assert env["sign_s"] < 5 and verify_s < 5


# -- the command line ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli(tmp_path_factory, tiny_model, tokenizer):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("ptextcli")
    runner = CliRunner()
    assert runner.invoke(main, ["certs", "init", str(root / "certs")]).exit_code == 0
    assert runner.invoke(main, ["keygen", "-o", str(root / "wm.key")]).exit_code == 0
    tiny_model.save_pretrained(root / "tiny")  # a local model directory for --model
    tokenizer.save_pretrained(root / "tiny")
    return root


def _generate(root, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        main,
        [
            "text",
            "generate",
            "--key",
            str(root / "wm.key"),
            "--model",
            str(root / "tiny"),
            "--no-chat",
            "--max-new-tokens",
            "120",
            "--temperature",
            "1.0",
            "--seed",
            "5",
            *extra,
            "Begin:",
        ],
    )


def test_text_generate_c2pa_then_verify(cli) -> None:  # type: ignore[no-untyped-def]
    res = _generate(
        cli,
        "--c2pa",
        "--cert",
        str(cli / "certs/chain.pem"),
        "--signing-key",
        str(cli / "certs/signing-key.pem"),
        "--store",
        str(cli / "s.db"),
    )
    assert res.exit_code == 0, res.output
    assert "signed C2PA manifest" in res.stderr and "copy-paste" in res.stderr and "recorded provenance entry" in res.stderr
    assert "BEGIN" not in res.stderr  # no key material in the messages
    # The bytes as `> answer.txt` writes them (CliRunner's .stdout turns CRLF into LF, which is an edit).
    (cli / "answer.txt").write_bytes(res.stdout_bytes)
    args = ["verify", "--key", str(cli / "wm.key"), "--store", str(cli / "s.db"), "--trust", str(cli / "certs/root.pem")]
    out = CliRunner().invoke(main, [*args, "--json", str(cli / "answer.txt")])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) >= VERIFY_KEYS and data["state"] == "trusted", data
    assert data["actions"][0]["softwareAgent"] == str(cli / "tiny")  # the model named as the generator
    assert data["watermark"]["verdict"] == "detected" and data["recovered_from"]["match"] == "exact"
    human = CliRunner().invoke(main, [*args, str(cli / "answer.txt")])
    assert "TRUSTED" in human.stdout and "c2pa.watermarked" in human.stdout
    # Copy-paste that drops the invisible characters: the watermark and the store still answer.
    text = res.stdout_bytes.decode("utf-8")
    (cli / "pasted.txt").write_text(strip_wrappers(text), encoding="utf-8", newline="")
    pasted = json.loads(CliRunner().invoke(main, [*args, "--json", str(cli / "pasted.txt")]).stdout)
    assert pasted["state"] == "recovered" and pasted["validation_codes"] == []
    # One edited character.
    (cli / "edited.txt").write_text(text[:3] + ("Z" if text[3] != "Z" else "Q") + text[4:], encoding="utf-8", newline="")
    edited = CliRunner().invoke(main, [*args, str(cli / "edited.txt")])
    assert "INVALID" in edited.stdout and "text changed after signing" in edited.stdout


def test_text_generate_c2pa_bad_options_are_one_line(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert "--c2pa needs --cert" in one_error_line(_generate(cli, "--c2pa"))
    assert "only apply with --c2pa" in one_error_line(_generate(cli, "--cert", str(cli / "certs/chain.pem")))
    missing = _generate(cli, "--c2pa", "--cert", str(tmp_path / "no.pem"), "--signing-key", str(cli / "certs/signing-key.pem"))
    assert "no.pem" in one_error_line(missing)
    # The root CA is no signing chain: explained, not signed with, and the key never printed.
    wrong = _generate(cli, "--c2pa", "--cert", str(cli / "certs/root.pem"), "--signing-key", str(cli / "certs/signing-key.pem"))
    line = one_error_line(wrong)
    assert "would be rejected" in line and "PRIVATE KEY" not in line
