"""`dojang certs`, `dojang stamp`, `dojang verify` and text provenance entries: contract flags and
JSON keys, real signing, one clear line for every bad input."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from PIL import Image

from dojang.cli import main
from dojang.keys import load_key
from dojang.provenance import SQLiteStore, record_text, verify_bytes
from tests import c2pa_chains, tamper
from tests.conftest import HUMAN_EN
from tests.helpers import one_error_line, tiny_answer

pytest.importorskip("c2pa")
skdata = pytest.importorskip("skimage.data")
VERIFY_KEYS = {"state", "ai_generated", "signer", "signed_at", "actions", "watermark", "recovered_from", "validation_codes"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("cli")
    runner = CliRunner()
    res = runner.invoke(main, ["certs", "init", str(root / "certs")])
    assert res.exit_code == 0, res.output
    assert "TESTING ONLY" in res.stderr
    assert runner.invoke(main, ["keygen", "-o", str(root / "wm.key")]).exit_code == 0
    Image.fromarray(skdata.astronaut()).save(root / "gen.png")
    return root


def _stamp(runner, root, out: str, *extra: str):  # type: ignore[no-untyped-def]
    return runner.invoke(
        main,
        [
            "stamp",
            "--key",
            str(root / "wm.key"),
            "--cert",
            str(root / "certs/chain.pem"),
            "--signing-key",
            str(root / "certs/signing-key.pem"),
            "--store",
            str(root / "store.db"),
            *extra,
            str(root / "gen.png"),
            str(root / out),
        ],
    )


def test_certs_init_bad_directory_is_one_line(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    (tmp_path / "a-file").write_text("x")
    assert "is not a directory" in one_error_line(runner.invoke(main, ["certs", "init", str(tmp_path / "a-file")]))
    assert "cannot create" in one_error_line(runner.invoke(main, ["certs", "init", str(tmp_path / "a-file" / "sub")]))
    assert "already exists" in one_error_line(runner.invoke(main, ["certs", "init", str(setup / "certs")]))


def test_certs_check_explains_in_words(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    ok = runner.invoke(main, ["certs", "check", str(setup / "certs/chain.pem")])
    assert ok.exit_code == 0 and "OK" in ok.stdout
    bad = c2pa_chains.build("leaf_is_ca")
    (tmp_path / "bad.pem").write_bytes(bad.chain_pem)
    res = runner.invoke(main, ["certs", "check", "--json", str(tmp_path / "bad.pem")])
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["ok"] is False and [p["code"] for p in data["problems"]] == ["leaf_is_ca"]
    words = runner.invoke(main, ["certs", "check", str(tmp_path / "bad.pem")])
    assert "marked as a CA" in words.stdout or "is a CA" in words.stdout
    (tmp_path / "junk.pem").write_text("hello")
    assert "no PEM or DER certificate" in one_error_line(runner.invoke(main, ["certs", "check", str(tmp_path / "junk.pem")]))


def test_stamp_then_verify_json_contract(setup) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    res = _stamp(runner, setup, "out.jpg", "--generator", "cli-gen 2", "--json")
    assert res.exit_code == 0, res.output
    stamped = json.loads(res.stdout)
    assert len(stamped["content_id"]) == 16 and stamped["generator"] == "cli-gen 2"
    out = runner.invoke(
        main,
        [
            "verify",
            "--key",
            str(setup / "wm.key"),
            "--trust",
            str(setup / "certs/root.pem"),
            "--store",
            str(setup / "store.db"),
            "--json",
            str(setup / "out.jpg"),
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) >= VERIFY_KEYS
    # the contract, the words, the kind, a remote URL, every status c2pa-rs reported, the identity assertions
    assert set(data) == VERIFY_KEYS | {"reason", "kind", "remote_manifest", "validation_statuses", "identity_assertions"}
    assert data["state"] == "trusted" and data["ai_generated"] is True
    assert data["watermark"]["payload"] == stamped["content_id"]
    secret = (setup / "certs/signing-key.pem").read_text().splitlines()[1]
    assert secret not in res.output + out.output
    # Without the trust anchor: valid, and the words say the signer is not trusted.
    words = runner.invoke(main, ["verify", "--no-store", str(setup / "out.jpg")])
    assert words.exit_code == 0 and "VALID" in words.stdout and "NOT in your trust list" in words.stdout
    # Re-encoded by a platform: recovered from the store through the watermark.
    (setup / "shared.jpg").write_bytes(tamper.reencode((setup / "out.jpg").read_bytes(), "JPEG", quality=85))
    rec = runner.invoke(
        main, ["verify", "--key", str(setup / "wm.key"), "--store", str(setup / "store.db"), "--json", str(setup / "shared.jpg")]
    )
    assert json.loads(rec.stdout)["state"] == "recovered"
    assert json.loads(rec.stdout)["recovered_from"]["content_id"] == stamped["content_id"]


def test_stamp_and_verify_use_the_store_in_the_user_data_dir_by_default(setup, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DOJANG_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    runner = CliRunner()
    args = ["stamp", "--key", str(setup / "wm.key"), "--cert", str(setup / "certs/chain.pem")]
    args += ["--signing-key", str(setup / "certs/signing-key.pem"), "--json", str(setup / "gen.png"), str(tmp_path / "d.png")]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    default = tmp_path / "data" / "dojang" / "manifests.sqlite3"
    assert json.loads(res.stdout)["store"] == str(default) and default.exists()
    (tmp_path / "d.jpg").write_bytes(tamper.reencode((tmp_path / "d.png").read_bytes(), "JPEG", quality=85))
    out = runner.invoke(main, ["verify", "--key", str(setup / "wm.key"), "--json", str(tmp_path / "d.jpg")])
    data = json.loads(out.stdout)
    assert data["state"] == "recovered" and data["recovered_from"]["store"] == str(default)
    # --no-store looks nothing up; $DOJANG_STORE moves the default.
    none = runner.invoke(main, ["verify", "--key", str(setup / "wm.key"), "--no-store", "--json", str(tmp_path / "d.jpg")])
    assert json.loads(none.stdout)["state"] == "no_credential"
    monkeypatch.setenv("DOJANG_STORE", str(tmp_path / "elsewhere.sqlite3"))
    moved = runner.invoke(main, ["verify", "--key", str(setup / "wm.key"), "--json", str(tmp_path / "d.jpg")])
    assert json.loads(moved.stdout)["state"] == "no_credential"  # that store does not exist: nothing to recover from


def test_stamp_passes_the_timestamp_authority_to_the_signer(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A TSA that cannot be reached fails the stamp with one clear line, and nothing is written:
    proof that --tsa-url reaches c2pa's signer (no network needed)."""
    res = _stamp(CliRunner(), setup, "tsa.jpg", "--tsa-url", "http://127.0.0.1:9/tsa")
    line = one_error_line(res)
    assert "C2PA signing failed" in line and "127.0.0.1:9/tsa" in line
    assert not (setup / "tsa.jpg").exists()
    assert "must start with http" in one_error_line(_stamp(CliRunner(), setup, "tsa.jpg", "--tsa-url", "ftp://tsa.example"))


def test_verify_shows_both_manifests_and_does_not_attribute_the_invalid_one(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dojang.image import random_payload
    from dojang.provenance import ManifestSigner, ai_image_manifest, sign_asset

    res = _stamp(CliRunner(), setup, "both.jpg", "--generator", "first-gen", "--json")
    assert res.exit_code == 0, res.output
    # Stripped, signed again by someone else, then that new manifest edited (the pixels stay as they were).
    stripped = tamper.reencode((setup / "both.jpg").read_bytes(), "JPEG", quality=92)
    signer = ManifestSigner.from_files(str(setup / "certs/chain.pem"), str(setup / "certs/signing-key.pem"))
    manifest = ai_image_manifest(
        title="x", generator="someone-else", payload=random_payload(), when="2026-01-01T00:00:00Z", key_id="k"
    )
    resigned, _ = sign_asset(stripped, "image/jpeg", manifest, signer)
    assert resigned.count(b"someone-else") == 1
    (tmp_path / "both-tampered.jpg").write_bytes(resigned.replace(b"someone-else", b"someone-ELSE"))
    args = ["verify", "--key", str(setup / "wm.key"), "--store", str(setup / "store.db"), str(tmp_path / "both-tampered.jpg")]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "INVALID" in out.stdout
    assert "embedded manifest: urn:c2pa:" in out.stdout and "(invalid), claims to be signed by dojang dev signer" in out.stdout
    assert "recovered manifest: urn:c2pa:" in out.stdout and "(recovered), signed by dojang dev signer" in out.stdout
    data = json.loads(CliRunner().invoke(main, [*args[:-1], "--json", args[-1]]).stdout)
    assert data["state"] == "invalid" and data["signer"] is None
    assert data["embedded_manifest"]["state"] == "invalid" and data["recovered_manifest"]["generator"] == "first-gen"


def test_a_library_planted_in_the_current_directory_is_not_loaded(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """c2pa-python's loader tries ./libc2pa_c.so before its own copy; dojang pins its own copy, so
    verifying downloads from inside their folder never dlopens a stranger's library."""
    import _sqlite3  # any real shared object: it loads, but lacks c2pa's symbols
    import os
    import shutil
    import subprocess
    import sys

    if not str(getattr(_sqlite3, "__file__", "")).endswith(".so"):
        pytest.skip("needs a shared-object Python extension to plant")
    assert _stamp(CliRunner(), setup, "planted.jpg").exit_code == 0
    shutil.copy(setup / "planted.jpg", tmp_path / "download.jpg")
    shutil.copy(_sqlite3.__file__, tmp_path / "libc2pa_c.so")
    env = {k: v for k, v in os.environ.items() if k != "C2PA_LIBRARY_NAME"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    code = "import sys; from dojang.cli import main; sys.argv[0] = 'dojang'; main()"
    res = subprocess.run(
        [sys.executable, "-c", code, "verify", "--no-store", "--json", "download.jpg"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"] == "valid"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cert", "missing.pem"], "does not exist"),
        (["--signing-key", "missing-key.pem"], "does not exist"),
        (["--key", "missing.key"], "missing.key"),
    ],
)
def test_stamp_bad_inputs_are_one_line(setup, args, needle) -> None:  # type: ignore[no-untyped-def]
    base = {
        "--key": str(setup / "wm.key"),
        "--cert": str(setup / "certs/chain.pem"),
        "--signing-key": str(setup / "certs/signing-key.pem"),
    }
    base[args[0]] = str(setup / args[1])
    flat = [x for kv in base.items() for x in kv]
    res = CliRunner().invoke(
        main, ["stamp", *flat, "--store", str(setup / "s2.db"), str(setup / "gen.png"), str(setup / "x.jpg")]
    )
    assert needle in one_error_line(res)
    assert not (setup / "x.jpg").exists()


def test_stamp_refuses_a_tiny_image_and_verify_a_binary_file(setup) -> None:  # type: ignore[no-untyped-def]
    Image.new("RGB", (100, 100), (10, 20, 30)).save(setup / "tiny.png")
    res = CliRunner().invoke(
        main,
        [
            "stamp",
            "--key",
            str(setup / "wm.key"),
            "--cert",
            str(setup / "certs/chain.pem"),
            "--signing-key",
            str(setup / "certs/signing-key.pem"),
            "--store",
            str(setup / "s3.db"),
            str(setup / "tiny.png"),
            str(setup / "tiny-out.png"),
        ],
    )
    assert "256" in one_error_line(res)
    (setup / "blob.bin").write_bytes(bytes(range(256)) * 4)
    assert "neither" in one_error_line(CliRunner().invoke(main, ["verify", "--no-store", str(setup / "blob.bin")]))
    assert "no such file" in one_error_line(CliRunner().invoke(main, ["verify", str(setup / "nothing.jpg")]))


def test_text_entry_is_found_exactly_and_after_light_edits(tmp_path, tiny_model, tokenizer, key) -> None:  # type: ignore[no-untyped-def]
    gen = tiny_answer(key, tiny_model, tokenizer, seed=7, tokens=110)
    store = SQLiteStore(tmp_path / "s.db")
    entry = record_text(store, gen.text, key_id=key.key_id, scheme="default", model="tiny-test-model")
    v = verify_bytes(gen.text.encode(), keys=key, store=store, tokenizer=tokenizer)
    assert v.state == "recovered" and v.kind == "text" and v.ai_generated is True
    assert (
        v.recovered_from is not None and v.recovered_from["entry_id"] == entry.entry_id and v.recovered_from["match"] == "exact"
    )
    words = gen.text.split(" ")
    edited = " ".join(w if i % 25 else w.upper() + "!" for i, w in enumerate(words))
    e = verify_bytes(edited.encode(), keys=key, store=store, tokenizer=tokenizer)
    assert e.state == "recovered" and e.recovered_from is not None and e.recovered_from["match"] == "similar"
    human = verify_bytes(HUMAN_EN.encode(), keys=key, store=store, tokenizer=tokenizer)
    assert human.state == "no_credential" and human.ai_generated is None and "does not mean" in human.reason
    # Another marked text under the same key, never recorded: detected, but no entry.
    other = tiny_answer(key, tiny_model, tokenizer, seed=8, tokens=110, prompt="Start:")
    o = verify_bytes(other.text.encode(), keys=key, store=store, tokenizer=tokenizer)
    assert o.state == "no_credential" and o.ai_generated is True and "no matching provenance entry" in o.reason


@pytest.mark.slow
def test_text_generate_store_then_verify_with_the_real_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    assert runner.invoke(main, ["keygen", "-o", str(tmp_path / "t.key")]).exit_code == 0
    gen = runner.invoke(
        main,
        [
            "text",
            "generate",
            "--key",
            str(tmp_path / "t.key"),
            "--store",
            str(tmp_path / "s.db"),
            "--max-new-tokens",
            "80",
            "--temperature",
            "1.0",
            "--seed",
            "3",
            "Write a short paragraph about rivers.",
        ],
    )
    assert gen.exit_code == 0, gen.output
    assert "recorded provenance entry" in gen.stderr
    (tmp_path / "answer.txt").write_text(gen.stdout.strip(), encoding="utf-8")
    res = runner.invoke(
        main,
        ["verify", "--key", str(tmp_path / "t.key"), "--store", str(tmp_path / "s.db"), "--json", str(tmp_path / "answer.txt")],
    )
    data = json.loads(res.stdout)
    assert set(data) >= VERIFY_KEYS
    assert data["state"] == "recovered", data
    assert data["recovered_from"]["model"] == "SmolLM2-135M-Instruct"
    assert data["recovered_from"]["key_id"] == load_key(tmp_path / "t.key").key_id


def test_verify_with_a_key_keeps_the_c2pa_verdict_when_the_mark_cannot_be_read(setup) -> None:  # type: ignore[no-untyped-def]
    """A file whose watermark cannot be read (a tiny trusted copy, a JPEG cut short, a PNG whose
    header checksum is broken) still gets its C2PA verdict; the mark's failure is a reason beside
    it, and a broken PNG is called a broken PNG."""
    runner = CliRunner()
    assert _stamp(runner, setup, "verify-me.jpg").exit_code == 0
    trust = ["--trust", str(setup / "certs/root.pem"), "--no-store", "--json"]
    key = ["--key", str(setup / "wm.key")]
    signed = (setup / "verify-me.jpg").read_bytes()
    cut = setup / "cut.jpg"
    cut.write_bytes(signed[: len(signed) * 6 // 10])
    without = json.loads(runner.invoke(main, ["verify", *trust, str(cut)]).output)
    res = runner.invoke(main, ["verify", *key, *trust, str(cut)])
    assert res.exit_code == 0, res.output
    with_key = json.loads(res.output)
    assert with_key["state"] == without["state"] and with_key["validation_codes"] == without["validation_codes"]
    assert "watermark could not be read" in with_key["reason"] and with_key["watermark"] is None
    png = io.BytesIO()
    Image.fromarray(skdata.astronaut()[:200, :200]).save(png, "PNG")
    broken = bytearray(png.getvalue())
    broken[29] ^= 0xFF  # the IHDR chunk's CRC
    path = setup / "bad-crc.png"
    path.write_bytes(bytes(broken))
    res = runner.invoke(main, ["verify", *key, *trust, str(path)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["state"] in ("no_credential", "invalid") and "PNG file whose header is corrupt" in out["reason"]
