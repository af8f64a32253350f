"""The verification service over HTTP, on a real SQLite file and a real PostgreSQL database: auth,
tenants, keys, the detection oracle's tiers, C2PA verification and resolution, limits, audit."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image
from sqlalchemy import select

from dojang.image import embed
from dojang.provenance import init_dev_chain
from dojang.text import generate_batch
from tests import tamper
from tests.conftest import HUMAN_EN
from tests.helpers import fixed_key
from tests.service_env import bearer, build_env, png_bytes, postgres_url

pytest.importorskip("fastapi")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        url, drop = f"sqlite:///{root / 'service.sqlite3'}", None
    else:
        url, drop = postgres_url()
    chain = init_dev_chain(root / "certs")
    e = build_env(url, root, trust_anchors_pem=chain.root.read_text())
    e.extras["chain"] = chain
    yield e
    e.app.state.services.engine.dispose()
    if drop is not None:
        drop()


@pytest.fixture(scope="module")
def marked_text(tiny_model, tokenizer):  # type: ignore[no-untyped-def]
    """Factory: a text marked under a given key (tiny model, real tokenizer)."""
    cache = {}

    def make(key):  # type: ignore[no-untyped-def]
        if key.key_id not in cache:
            cache[key.key_id] = generate_batch(
                ["Begin:"],
                key=key,
                scheme="default",
                model=tiny_model,
                tokenizer=tokenizer,
                max_new_tokens=120,
                temperature=1.0,
                seed=4,
                chat=False,
            )[0].text
        return cache[key.key_id]

    return make


def test_health_page_and_openapi(env) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    assert c.get("/health").json()["status"] == "ok"
    page = c.get("/")
    assert page.status_code == 200 and "verdict" in page.text
    paths = c.get("/openapi.json").json()["paths"]
    for p in (
        "/v1/text/detect",
        "/v1/image/detect",
        "/v1/verify",
        "/v1/text/generate",
        "/v1/keys",
        "/matches/byBinding",
        "/manifests/{manifest_id}",
        "/services/supportedAlgorithms",
    ):
        assert p in paths, p


def test_authentication_and_roles(env) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    assert c.get("/v1/keys").status_code == 401
    assert c.get("/v1/keys", headers=bearer("dj_not-a-token")).status_code == 401
    assert c.get("/v1/keys", headers={"Authorization": "Basic abc"}).status_code == 401
    assert c.get("/v1/keys", headers=env.checker).status_code == 403  # verifiers only ask for verdicts
    assert c.post("/v1/tenants", json={"name": "x", "kind": "provider"}, headers=env.acme).status_code == 403
    dup = c.post("/v1/tenants", json={"name": "acme-ai", "kind": "provider"}, headers=env.admin)
    assert dup.status_code == 400 and "already exists" in dup.json()["detail"]
    assert c.get("/services/supportedAlgorithms").status_code == 401


def test_keys_are_sealed_at_rest_and_isolated_per_tenant(env) -> None:  # type: ignore[no-untyped-def]
    from dojang.service import db

    c = env.client
    mine = {k["key_id"] for k in c.get("/v1/keys", headers=env.acme).json()["keys"]}
    theirs = {k["key_id"] for k in c.get("/v1/keys", headers=env.other).json()["keys"]}
    assert env.acme_key.key_id in mine and env.acme_key.key_id not in theirs and env.other_key.key_id in theirs
    assert c.post(f"/v1/keys/{env.acme_key.key_id}/retire", headers=env.other).status_code == 404
    with env.app.state.services.engine.connect() as conn:
        sealed = conn.execute(select(db.wm_keys.c.secret_sealed).where(db.wm_keys.c.key_id == env.acme_key.key_id)).scalar_one()
    assert env.acme_key._secret not in bytes(sealed) and env.acme_key._secret.hex().encode() not in bytes(sealed)
    listing = c.get("/v1/keys", headers=env.acme).text
    assert env.acme_key._secret.hex() not in listing
    bad = c.post("/v1/keys", json={"key": "{not json"}, headers=env.acme)
    assert bad.status_code == 422 and "not a dojang key file" in bad.json()["detail"]


def test_text_detection_tiers(env, marked_text) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    text = marked_text(env.acme_key)
    anon = c.post("/v1/text/detect", json={"text": text}).json()
    assert anon["verdict"] == "detected" and anon["provider"] == "acme-ai"
    assert "p_value" not in anon and "spans" not in anon and anon["detail"] == "verdict"
    verifier = c.post("/v1/text/detect", json={"text": text}, headers=env.checker).json()
    assert verifier["verdict"] == "detected" and "p_value" not in verifier
    rival = c.post("/v1/text/detect", json={"text": text}, headers=env.other).json()
    assert "p_value" not in rival
    owner = c.post("/v1/text/detect", json={"text": text}, headers=env.acme).json()
    assert owner["detail"] == "owner" and owner["p_value"] < 1e-4 and owner["key_id"] == env.acme_key.key_id
    n_keys = owner["keys_tried"]
    assert n_keys >= 2  # every provider's keys were tried, and the p-value is corrected for them
    only = c.post("/v1/text/detect", json={"text": text, "key_id": env.acme_key.key_id}, headers=env.acme).json()
    assert only["keys_tried"] == 1 and only["p_value"] <= owner["p_value"]
    mine = len(c.get("/v1/keys", headers=env.acme).json()["keys"])
    # weighted Bonferroni: each of the 2 providers gets half the budget, split among its own keys
    assert owner["log10_p_value"] == pytest.approx(only["log10_p_value"] + math.log10(2 * mine))
    human = c.post("/v1/text/detect", json={"text": HUMAN_EN}).json()
    assert human["verdict"] == "not_detected" and human["provider"] is None
    assert c.post("/v1/text/detect", json={"text": "x", "provider": "nobody"}).status_code == 404


def test_retired_keys_still_detect_old_content(env, marked_text) -> None:  # type: ignore[no-untyped-def]
    """The key is a fixed one, uploaded: what the tiny model writes under a freshly generated key
    (and so whether 120 tokens of it clear 1e-6) would change from run to run."""
    c = env.client
    from dojang.keys import parse_key

    made = c.post("/v1/keys", json={"export": True}, headers=env.other)
    assert made.status_code == 201 and parse_key(made.json()["key_file"]).key_id == made.json()["key_id"]
    old = fixed_key(300)
    r = c.post("/v1/keys", json={"key": old.to_json()}, headers=env.other)
    assert r.status_code == 201 and r.json()["key_id"] == old.key_id and "key_file" not in r.json()
    text = marked_text(old)
    rot = c.post(f"/v1/keys/{old.key_id}/rotate", headers=env.other).json()
    assert rot["retired"]["status"] == "retired" and rot["new"]["status"] == "active"
    res = c.post("/v1/text/detect", json={"text": text}, headers=env.other).json()
    assert res["verdict"] == "detected" and res["key_id"] == old.key_id


def test_image_detect_and_verify_with_stamp_and_resolution(env) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    chain = env.extras["chain"]
    up = c.put(
        "/v1/signing-key",
        files={"chain": ("chain.pem", chain.chain.read_bytes()), "key": ("key.pem", chain.signing_key.read_bytes())},
        headers=env.acme,
    )
    assert up.status_code == 200, up.text
    src = png_bytes(Image.fromarray(skdata.astronaut()))
    st = c.post(
        "/v1/image/stamp",
        files={"file": ("gen.png", src, "image/png")},
        data={"generator": "acme-imagegen 3", "format": "jpeg"},
        headers=env.acme,
    )
    assert st.status_code == 200 and st.headers["content-type"] == "image/jpeg", st.text
    stamped, cid = st.content, st.headers["x-dojang-content-id"]
    # Anyone: verdict + provider; the C2PA panel; the owner sees the payload.
    anon = c.post("/v1/image/detect", files={"file": ("a.jpg", stamped, "image/jpeg")}).json()
    assert anon == {"verdict": "detected", "provider": "acme-ai", "detail": "verdict"}
    owner = c.post("/v1/image/detect", files={"file": ("a.jpg", stamped, "image/jpeg")}, headers=env.acme).json()
    assert owner["payload"] == cid
    v = c.post("/v1/verify", files={"file": ("a.jpg", stamped, "image/jpeg")}).json()
    assert v["state"] == "trusted" and v["signer"]["name"] == "dojang dev signer" and v["ai_generated"] is True
    assert v["watermark"]["provider"] == "acme-ai" and "p_value" not in v["watermark"]
    # A platform strips and re-encodes it: recovered from the service's store through the watermark.
    shared = tamper.reencode(stamped, "JPEG", quality=80)
    rec = c.post("/v1/verify", files={"file": ("shared.jpg", shared, "image/jpeg")}).json()
    assert rec["state"] == "recovered" and "content_id" not in rec["recovered_from"] and cid not in str(rec)  # owner only
    mine = c.post("/v1/verify", files={"file": ("shared.jpg", shared, "image/jpeg")}, headers=env.acme).json()
    assert mine["state"] == "recovered" and mine["recovered_from"]["content_id"] == cid
    # Tampered: invalid, not attributed.
    bad = c.post("/v1/verify", files={"file": ("t.jpg", tamper.flip_jpeg_scan(stamped), "image/jpeg")}).json()
    assert bad["state"] == "invalid" and bad["signer"] is None
    # C2PA soft-binding resolution.
    import base64

    value = base64.b64encode(bytes.fromhex(cid)).decode()
    algs = c.get("/services/supportedAlgorithms", headers=env.checker).json()
    alg = algs["watermarks"][0]["alg"]
    got = c.get("/matches/byBinding", params={"alg": alg, "value": value}, headers=env.checker).json()
    assert got == {"matches": [{"manifestId": cid}]}
    posted = c.post("/matches/byBinding", json={"alg": alg, "value": cid}, headers=env.checker).json()
    assert posted == got
    none = c.get("/matches/byBinding", params={"alg": alg, "value": "0000000000000000"}, headers=env.checker).json()
    assert none == {"matches": []}
    assert c.get("/matches/byBinding", params={"alg": "com.other.alg", "value": value}, headers=env.checker).status_code == 400
    m = c.get(f"/manifests/{cid}", headers=env.checker)
    assert m.status_code == 200 and m.headers["content-type"] == "application/c2pa"
    from dojang.provenance import read_manifest

    view = read_manifest(shared, "image/jpeg", manifest_data=m.content)
    assert view is not None and view.soft_binding_payload() == bytes.fromhex(cid)
    assert c.get("/manifests/ffffffffffffffff", headers=env.checker).status_code == 404


def test_bad_uploads_get_clear_4xx(env) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    jpeg = io.BytesIO()
    Image.fromarray(skdata.chelsea()).save(jpeg, "JPEG")
    truncated = jpeg.getvalue()[: len(jpeg.getvalue()) // 3]
    r = c.post("/v1/image/detect", files={"file": ("cut.jpg", truncated, "image/jpeg")})
    assert r.status_code == 422 and "corrupt" in r.json()["detail"]
    r = c.post("/v1/image/detect", files={"file": ("fake.png", b"hello, I am text", "image/png")})
    assert r.status_code == 422 and "not an image" in r.json()["detail"]
    r = c.post("/v1/verify", files={"file": ("x.bin", bytes(range(256)) * 8, "application/octet-stream")})
    assert r.status_code == 422 and "neither" in r.json()["detail"]
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000)).save(bomb, "PNG")  # 144 MP of zeros compresses to a few KB
    r = c.post("/v1/image/detect", files={"file": ("bomb.png", bomb.getvalue(), "image/png")})
    assert r.status_code == 422 and "pixel" in r.json()["detail"]
    assert c.post("/v1/image/detect", files={"file": ("e.png", b"", "image/png")}).status_code == 422
    assert c.post("/v1/text/detect", json={"text": "   "}).status_code == 422
    assert c.post("/v1/text/detect", json={"nope": 1}).status_code == 422


def test_audit_log_holds_hashes_and_is_per_tenant(env, marked_text) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    text = marked_text(env.acme_key)
    c.post("/v1/text/detect", json={"text": text}, headers=env.checker)
    entries = c.get("/v1/audit", headers=env.checker).json()["entries"]
    assert entries and entries[0]["kind"] == "text" and entries[0]["verdict"] == "detected"
    assert entries[0]["content"] is None and len(entries[0]["content_sha256"]) == 64
    acme_entries = c.get("/v1/audit", headers=env.acme).json()["entries"]
    assert all(e["token_id"] != entries[0]["token_id"] for e in acme_entries)
    # A tenant that opted in keeps the content.
    r = c.post("/v1/tenants", json={"name": "archive-desk", "kind": "verifier", "store_content": True}, headers=env.admin)
    desk = bearer(r.json()["token"])
    c.post("/v1/text/detect", json={"text": HUMAN_EN}, headers=desk)
    assert c.get("/v1/audit", headers=desk).json()["entries"][0]["content"] == HUMAN_EN


def test_limits_413_and_429(tmp_path) -> None:  # type: ignore[no-untyped-def]
    e = build_env(
        f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path, max_upload_bytes=50_000, max_text_chars=500, anonymous_rate_per_minute=3
    )
    c = e.client
    big = png_bytes(Image.fromarray(skdata.astronaut()))
    assert c.post("/v1/image/detect", files={"file": ("big.png", big, "image/png")}, headers=e.checker).status_code == 413
    assert c.post("/v1/text/detect", json={"text": "word " * 200}, headers=e.checker).status_code == 413
    codes = [c.post("/v1/text/detect", json={"text": "a short text"}).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    r = c.post("/v1/text/detect", json={"text": "a short text"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert (
        c.post("/v1/text/detect", json={"text": "a short text"}, headers=e.checker).status_code == 200
    )  # tokens have their own budget


def test_public_tier_off_requires_tokens(tmp_path) -> None:  # type: ignore[no-untyped-def]
    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path, public_tier=False)
    assert e.client.post("/v1/text/detect", json={"text": "hello"}).status_code == 401
    assert e.client.post("/v1/text/detect", json={"text": "hello"}, headers=e.checker).status_code == 200


def test_settings_need_a_master_key_outside_dev(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dojang.errors import ServiceError
    from dojang.service.config import Settings, parse_master_key

    monkeypatch.delenv("DOJANG_MASTER_KEY", raising=False)
    monkeypatch.setenv("DOJANG_DATA_DIR", str(tmp_path))
    with pytest.raises(ServiceError, match="DOJANG_MASTER_KEY is not set"):
        Settings.from_env(dev=False)
    dev = Settings.from_env(dev=True)
    assert Settings.from_env(dev=True).master_key == dev.master_key  # kept across restarts
    assert oct((tmp_path / "dev-master.key").stat().st_mode & 0o777) == "0o600"
    hexkey = "ab" * 32
    monkeypatch.setenv("DOJANG_MASTER_KEY", hexkey)
    s = Settings.from_env()
    assert s.master_key == bytes.fromhex(hexkey) and hexkey not in repr(s)
    with pytest.raises(ServiceError, match="32 bytes"):
        parse_master_key("short")


def test_wrong_master_key_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dojang.errors import ServiceError
    from dojang.service.db import make_engine
    from dojang.service.repo import Repo

    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path)
    wrong = Repo(make_engine(f"sqlite:///{tmp_path / 's.sqlite3'}"), b"\x01" * 32)
    with pytest.raises(ServiceError, match="wrong DOJANG_MASTER_KEY"):
        wrong.keys()
    assert len(e.app.state.services.repo.keys()) == 2  # nothing lost


def test_serve_refuses_without_master_key(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from dojang.cli import main
    from tests.helpers import one_error_line

    monkeypatch.delenv("DOJANG_MASTER_KEY", raising=False)
    monkeypatch.setenv("DOJANG_DATA_DIR", str(tmp_path))
    line = one_error_line(CliRunner().invoke(main, ["serve", "--no-dev"]))
    assert "DOJANG_MASTER_KEY" in line


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://bob:s3cret-pw@127.0.0.1:1/nothing", "port 1 failed"),  # nothing listens on port 1
        ("nosuchdb://bob:s3cret-pw@localhost/x", "nosuchdb"),
    ],
)
def test_serve_names_a_database_it_cannot_open_without_its_password(monkeypatch, tmp_path, url, words) -> None:  # type: ignore[no-untyped-def]
    """Regression: an unreachable or unusable DOJANG_DATABASE_URL was a 140-line driver traceback."""
    from click.testing import CliRunner

    from dojang.cli import main
    from tests.helpers import one_error_line

    monkeypatch.setenv("DOJANG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DOJANG_MASTER_KEY", "ab" * 32)
    monkeypatch.setenv("DOJANG_DATABASE_URL", url)
    line = one_error_line(CliRunner().invoke(main, ["serve", "--no-dev", "--port", "9"]))
    assert "cannot open the database" in line and "bob:***@" in line and words in line, line
    assert "s3cret-pw" not in line


def test_embed_then_detect_through_the_service(env) -> None:  # type: ignore[no-untyped-def]
    marked = embed(Image.fromarray(skdata.coffee()), env.other_key, "0011223344556677")
    res = env.client.post("/v1/image/detect", files={"file": ("m.png", png_bytes(marked), "image/png")}, headers=env.other).json()
    assert res["verdict"] == "detected" and res["provider"] == "other-ai" and res["payload"] == "0011223344556677"
    one = env.client.post(
        "/v1/image/detect",
        files={"file": ("m.png", png_bytes(marked), "image/png")},
        data={"key_id": env.other_key.key_id},
        headers=env.other,
    ).json()
    assert res["keys_tried"] >= 2 and one["keys_tried"] == 1
    theirs = len(env.client.get("/v1/keys", headers=env.other).json()["keys"])
    # corrected for the keys: 2 providers, each with half the budget split among its own keys
    assert res["log10_p_value"] == pytest.approx(one["log10_p_value"] + math.log10(2 * theirs))


def test_tokens_are_stored_only_as_hashes(env) -> None:  # type: ignore[no-untyped-def]
    from dojang.service import db
    from dojang.service.crypto import hash_token

    token = env.client.post("/v1/tokens", headers=env.checker).json()["token"]
    with env.app.state.services.engine.connect() as conn:
        rows = [tuple(str(v) for v in r) for r in conn.execute(select(db.tokens))]
    assert rows and not any(token in v for r in rows for v in r)
    assert any(hash_token(token) in r for r in rows)


def test_a_request_past_the_timeout_is_a_504(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path, request_timeout_s=0.2)
    svc = e.app.state.services
    run = svc.detect
    svc.detect = lambda work: (time.sleep(0.6), run(work))[1]
    r = e.client.post("/v1/text/detect", json={"text": HUMAN_EN}, headers=e.checker)
    assert r.status_code == 504 and "too long" in r.json()["detail"]


@pytest.mark.slow
def test_generate_with_the_real_model_then_verify_the_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path)
    c = e.client
    assert c.post("/v1/text/generate", json={"prompt": "hi"}, headers=e.checker).status_code == 403
    r = c.post(
        "/v1/text/generate",
        json={"prompt": "Write a short paragraph about rivers.", "max_new_tokens": 80, "temperature": 1.0, "seed": 3},
        headers=e.acme,
    )
    assert r.status_code == 200, r.text
    gen = r.json()
    assert gen["key_id"] == e.acme_key.key_id and gen["entry_id"].startswith("txt-")
    v = c.post("/v1/verify", files={"file": ("answer.txt", gen["text"].encode(), "text/plain")}).json()
    assert v["state"] == "recovered" and v["kind"] == "text" and v["recovered_from"]["entry_id"] == gen["entry_id"]
    assert v["watermark"] == {"verdict": "detected", "provider": "acme-ai", "detail": "verdict"}


def test_rejected_key_upload_is_not_echoed_back(env) -> None:  # type: ignore[no-untyped-def]
    secret_like = "f" * 64
    r = env.client.post("/v1/keys", json={"key": {"secret": secret_like}}, headers=env.acme)  # wrong type: an object
    assert r.status_code == 422 and secret_like not in r.text


def test_verify_with_an_unknown_key_is_404(env) -> None:  # type: ignore[no-untyped-def]
    r = env.client.post(
        "/v1/verify", files={"file": ("a.txt", HUMAN_EN.encode(), "text/plain")}, data={"key_id": "dk-0000000000000000"}
    )
    assert r.status_code == 404


def test_der_signing_chain_is_accepted(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    from dojang.provenance import load_chain

    chain = env.extras["chain"]
    leaf = load_chain(chain.chain)[0]
    der = leaf.public_bytes(serialization.Encoding.DER)  # a lone DER leaf: checked, then refused in words (no issuer)
    r = env.client.put(
        "/v1/signing-key", files={"chain": ("c.der", der), "key": ("k.pem", chain.signing_key.read_bytes())}, headers=env.other
    )
    assert r.status_code == 200, r.text
    stored = env.app.state.services.repo.signing_key(
        env.app.state.services.repo.authenticate(env.other["Authorization"].split()[1]).tenant_id
    )
    assert stored is not None and stored[0].startswith("-----BEGIN CERTIFICATE-----")


def test_verify_tells_non_owners_no_key_p_value_or_content_id(env, marked_text) -> None:  # type: ignore[no-untyped-def]
    """Regression: /v1/verify's reason named the matching key, its p-value and an image's decoded
    content id to anyone (the public page shows it in the C2PA panel); a text's store entry named
    the key. Non-owners now get the provider's name only, as on the detection routes."""
    from dojang.provenance import record_text
    from dojang.service.repo import DBManifestStore

    c = env.client
    key_id = env.acme_key.key_id
    image = png_bytes(embed(Image.fromarray(skdata.coffee()[:256, :256]), env.acme_key, "0123456789abcdef"))
    text = marked_text(env.acme_key)
    for name, data in (("m.png", image), ("m.txt", text.encode())):
        for headers in ({}, env.checker, env.other):
            res = c.post("/v1/verify", files={"file": (name, data)}, headers=headers).json()
            assert res["state"] == "no_credential" and res["watermark"]["provider"] == "acme-ai", res
            assert key_id not in str(res) and "p = " not in res["reason"] and "0123456789abcdef" not in str(res), res
            assert "acme-ai" in res["reason"]
        owner = c.post("/v1/verify", files={"file": (name, data)}, headers=env.acme).json()
        assert key_id in owner["reason"] and "p = " in owner["reason"]  # the owner keeps the full reason
    tenant_id = env.app.state.services.repo.authenticate(env.acme["Authorization"].split()[1]).tenant_id
    record_text(DBManifestStore(env.app.state.services.engine, tenant_id), text, key_id=key_id, scheme="default", model="m")
    res = c.post("/v1/verify", files={"file": ("m.txt", text.encode())}, headers=env.checker).json()
    assert res["state"] == "recovered" and res["recovered_from"]["match"] == "exact", res
    assert key_id not in str(res) and "acme-ai" in res["reason"], res
    owner = c.post("/v1/verify", files={"file": ("m.txt", text.encode())}, headers=env.acme).json()
    assert owner["recovered_from"]["key_id"] == key_id


def test_the_migrations_build_exactly_the_tables_the_code_uses(env) -> None:  # type: ignore[no-untyped-def]
    """A column added to db.py without a migration would only show on the first insert that needs it."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from dojang.service import db

    with env.app.state.services.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []


def test_a_forged_pattern_is_inconclusive_for_everyone(env) -> None:  # type: ignore[no-untyped-def]
    """The sync layer averaged from marked images, added to a clean photo: every caller gets
    `inconclusive` with `keyed_pattern_seen`, never `detected` or a provider's name."""
    import numpy as np

    from dojang.bench._adversary import estimate

    views = [Image.fromarray(skdata.astronaut()).convert("RGB").rotate(a).resize((256, 256)) for a in (0, 90, 180, 270)]
    marked = [np.asarray(embed(v, env.other_key, "0011223344556677"), dtype=np.float32) for v in views]
    est = estimate("pairs", marked, [np.asarray(v, dtype=np.float32) for v in views], 64)
    clean = np.asarray(Image.fromarray(skdata.chelsea()).convert("RGB").crop((60, 20, 316, 276)), dtype=np.float32)
    forged = png_bytes(Image.fromarray(np.clip(np.rint(clean + 3 * est), 0, 255).astype(np.uint8)))
    anon = env.client.post("/v1/image/detect", files={"file": ("f.png", forged, "image/png")}).json()
    assert anon == {"verdict": "inconclusive", "provider": None, "keyed_pattern_seen": True, "detail": "verdict"}
    owner = env.client.post("/v1/image/detect", files={"file": ("f.png", forged, "image/png")}, headers=env.other).json()
    assert owner["verdict"] == "inconclusive" and owner["payload"] is None and owner["payload_verified"] is False


def test_a_tenants_tokens_share_one_rate_limit_and_can_be_listed_and_revoked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Minting more tokens buys no more requests; a tenant holds a capped number of live tokens,
    lists them (never their secrets) and revokes any of them, through the API and the CLI."""
    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path, rate_per_minute=9, max_tokens_per_tenant=3)
    c = e.client
    extra = [bearer(c.post("/v1/tokens", headers=e.checker).json()["token"]) for _ in range(2)]
    r = c.post("/v1/tokens", headers=e.checker)
    assert r.status_code == 409 and "3 live tokens" in r.json()["detail"]
    spent = [c.post("/v1/text/detect", json={"text": "a short text"}, headers=h).status_code for h in [e.checker, *extra] * 3]
    assert spent.count(200) == 6 and spent.count(429) == 3  # one budget of 9 a minute (3 spent minting), whichever token
    e2 = build_env(f"sqlite:///{tmp_path / 't.sqlite3'}", tmp_path, max_tokens_per_tenant=5)
    c2 = e2.client
    second = c2.post("/v1/tokens", headers=e2.checker).json()["token"]
    listed = c2.get("/v1/tokens", headers=e2.checker).json()["tokens"]
    assert len(listed) == 2 and sum(t["current"] for t in listed) == 1
    assert second not in str(listed) and all(set(t) >= {"token_id", "label", "created_at", "revoked_at"} for t in listed)
    other = next(t["token_id"] for t in listed if not t["current"])
    assert c2.delete(f"/v1/tokens/{other}", headers=e2.acme).status_code == 404  # another tenant's token
    assert c2.delete(f"/v1/tokens/{other}", headers=e2.checker).json() == {"token_id": other, "revoked": True}
    assert c2.get("/v1/tokens", headers=bearer(second)).status_code == 401  # revoked: stops at once
    assert c2.delete(f"/v1/tokens/{other}", headers=e2.checker).status_code == 404


def test_tokens_cli_lists_and_revokes(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from dojang.cli.main import main

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    e = build_env(url, tmp_path)
    monkeypatch.setenv("DOJANG_DATABASE_URL", url)
    monkeypatch.setenv("DOJANG_MASTER_KEY", "11" * 32)
    runner = CliRunner()
    res = runner.invoke(main, ["tokens", "list", "--tenant", "newsroom", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["tokens"]
    assert len(rows) == 1 and rows[0]["tenant"] == "newsroom"
    assert runner.invoke(main, ["tokens", "revoke", rows[0]["token_id"]]).exit_code == 0
    assert e.client.post("/v1/text/detect", json={"text": "a short text"}, headers=e.checker).status_code == 401
    res = runner.invoke(main, ["tokens", "revoke", rows[0]["token_id"]])
    assert res.exit_code == 2 and "no live token" in res.output


def test_keys_are_capped_and_retired_ones_deletable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every detection tries every key, so a tenant's keys are capped; a retired key can be
    deleted (detection stops trying it), an active one cannot."""
    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path, max_keys_per_tenant=2)
    c = e.client
    first = e.acme_key.key_id
    second = c.post("/v1/keys", json={}, headers=e.acme).json()["key_id"]
    r = c.post("/v1/keys", json={}, headers=e.acme)
    assert r.status_code == 409 and "2 watermark keys" in r.json()["detail"]
    assert c.post(f"/v1/keys/{first}/rotate", headers=e.acme).status_code == 409  # no room for its successor
    assert c.delete(f"/v1/keys/{first}", headers=e.acme).status_code == 409  # active
    assert c.delete(f"/v1/keys/{first}", headers=e.other).status_code == 404  # not theirs
    assert c.post(f"/v1/keys/{first}/retire", headers=e.acme).status_code == 200
    assert c.delete(f"/v1/keys/{first}", headers=e.acme).json() == {"key_id": first, "deleted": True}
    assert [k["key_id"] for k in c.get("/v1/keys", headers=e.acme).json()["keys"]] == [second]
    assert c.post("/v1/keys", json={}, headers=e.acme).status_code == 201  # room again
    r = c.post("/v1/text/detect", json={"text": "a short text", "key_id": first}, headers=e.acme)
    assert r.status_code == 404  # no longer tried


def test_serve_believes_forwarded_addresses_only_from_configured_proxies(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise, which let any local
    caller pick its own address on the anonymous tier; `dojang serve` turns that off unless
    DOJANG_TRUSTED_PROXIES names the proxies. The first admin token goes to a file, not stdout."""
    import uvicorn
    from click.testing import CliRunner

    from dojang.cli.main import main

    seen: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.append(kw))
    monkeypatch.setenv("DOJANG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DOJANG_DATABASE_URL", raising=False)
    res = CliRunner().invoke(main, ["serve", "--dev"])
    assert res.exit_code == 0, res.output
    assert seen[-1]["proxy_headers"] is False and seen[-1]["forwarded_allow_ips"] is None
    token = (tmp_path / "data" / "admin-token").read_text().strip()
    assert token and token not in res.output and "admin-token" in res.output
    monkeypatch.setenv("DOJANG_TRUSTED_PROXIES", "10.0.0.5, 10.0.0.6")
    assert CliRunner().invoke(main, ["serve", "--dev"]).exit_code == 0
    assert seen[-1]["proxy_headers"] is True and seen[-1]["forwarded_allow_ips"] == "10.0.0.5,10.0.0.6"


def _redis_url() -> str | None:
    """The local Redis (127.0.0.1:6379) when it answers, on a database of its own for the tests."""
    try:
        import redis
    except ImportError:
        return None
    url = "redis://127.0.0.1:6379/7"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except (redis.exceptions.RedisError, OSError):
        return None
    return url


def test_replicas_share_rate_limits_through_redis(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two service instances on one database (two replicas, or two workers) draw on one budget per
    tenant when DOJANG_REDIS_URL is set; without Redis each keeps its own (and says so)."""
    url = _redis_url()
    if url is None:
        pytest.skip("Redis is not answering at 127.0.0.1:6379: the shared-limit test could not run")
    import redis

    redis.Redis.from_url(url).flushdb()
    from fastapi.testclient import TestClient

    from dojang.service import create_app
    from dojang.service.app import SharedRateLimiter

    db_url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    e = build_env(db_url, tmp_path, rate_per_minute=6, redis_url=url)
    assert isinstance(e.app.state.services.limiter, SharedRateLimiter)
    replica = TestClient(create_app(e.app.state.services.settings))
    codes = []
    for client in (e.client, replica) * 4:
        codes.append(client.post("/v1/text/detect", json={"text": "a short text"}, headers=e.checker).status_code)
    assert codes.count(200) == 6 and codes.count(429) == 2, codes
    # Redis gone mid-flight: each process falls back to its own buckets rather than failing open or closed
    broken = SharedRateLimiter("redis://127.0.0.1:1/0")
    assert not broken.ping()
    assert [broken.take("x", 2) == 0.0 for _ in range(3)] == [True, True, False]


def test_health_metrics_and_request_ids(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """Liveness and readiness, Prometheus metrics for admins (requests by route template, latency,
    the detection queue, verdicts per modality), a request id on every answer, and one JSON access
    log line per request that names no key, token or text."""
    import json
    import logging

    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path)
    c = e.client
    assert c.get("/health/live").json() == {"status": "ok"}
    ready = c.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["database"] == "ok" and ready.json()["rate_limits"] == "per process"
    with caplog.at_level(logging.INFO, logger="dojang.service.access"):
        tagged = {**e.checker, "X-Request-Id": "req-42"}
        r = c.post("/v1/text/detect", json={"text": "a short human text, nothing marked"}, headers=tagged)
        assert r.headers["X-Request-Id"] == "req-42"
        assert c.post(f"/v1/keys/{e.acme_key.key_id}/retire", headers=e.other).status_code == 404
        bad = c.get("/health/live", headers={"X-Request-Id": "no spaces; allowed?"})
        assert bad.headers["X-Request-Id"] != "no spaces; allowed?" and len(bad.headers["X-Request-Id"]) == 16
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "dojang.service.access"]
    first = next(line for line in lines if line["request_id"] == "req-42")
    assert first["route"] == "/v1/text/detect" and first["status"] == 200 and first["tenant"] is not None
    assert any(line["route"] == "/v1/keys/{key_id}/retire" and line["status"] == 404 for line in lines)
    logged = " ".join(rec.getMessage() for rec in caplog.records)
    assert e.acme_key.key_id not in logged and "nothing marked" not in logged and e.checker["Authorization"][7:] not in logged
    assert c.get("/metrics", headers=e.checker).status_code == 403  # admins only
    metrics = c.get("/metrics", headers=e.admin)
    assert metrics.status_code == 200
    text = metrics.text
    assert 'dojang_requests_total{method="POST",route="/v1/text/detect",status="200"} 1.0' in text
    assert 'dojang_verdicts_total{modality="text",verdict="inconclusive"} 1.0' in text  # too short to decide
    assert "dojang_request_seconds_bucket" in text and "dojang_detect_queue 0.0" in text
    assert e.acme_key.key_id not in text


def test_one_providers_keys_never_change_anothers_p_value(tmp_path, marked_text) -> None:  # type: ignore[no-untyped-def]
    """Key amplification: a provider that registers many keys dilutes only its own p-values. Each
    provider gets an equal share of the false-positive budget, split among its own keys."""
    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path, max_keys_per_tenant=50)
    c = e.client
    text = marked_text(e.acme_key)
    before = c.post("/v1/text/detect", json={"text": text}, headers=e.acme).json()
    for _ in range(15):
        assert c.post("/v1/keys", json={}, headers=e.other).status_code == 201
    after = c.post("/v1/text/detect", json={"text": text}, headers=e.acme).json()
    assert after["verdict"] == "detected" and after["keys_tried"] == before["keys_tried"] + 15
    assert after["log10_p_value"] == pytest.approx(before["log10_p_value"])  # unchanged by the rival's 15 keys
    for _ in range(3):
        assert c.post("/v1/keys", json={}, headers=e.acme).status_code == 201
    own = c.post("/v1/text/detect", json={"text": text}, headers=e.acme).json()
    assert own["log10_p_value"] == pytest.approx(before["log10_p_value"] + math.log10(4))  # its own 4 keys share its half
