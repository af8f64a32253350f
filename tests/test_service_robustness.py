"""The verification service under stress : 50 concurrent clients against a
real uvicorn server with no error and no lost audit entry; a restart that keeps every tenant, key
and manifest; the OpenAPI schema fuzzed with schemathesis; oversized, truncated and polyglot
uploads; invalid UTF-8 and other malformed input; one tenant's token on another tenant's key.
Real servers and real databases (an SQLite file, and PostgreSQL where it answers) throughout."""

from __future__ import annotations

import base64
import io
import os
import random
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlalchemy import func, select

from dojang.image import embed
from dojang.provenance import init_dev_chain
from dojang.text import generate_batch
from tests import tamper
from tests.conftest import HUMAN_EN
from tests.service_env import Env, bearer, build_env, live_server, png_bytes, postgres_url

skdata = pytest.importorskip("skimage.data")

# Generous limits for the load and fuzz runs: the rate limiter has its own tests, and here it must
# not turn load into 429s.
UNLIMITED = {
    "rate_per_minute": 1_000_000,
    "anonymous_rate_per_minute": 1_000_000,
    "max_jobs_per_caller": 1000,
    "max_queued_jobs": 1000,
}


def _database(kind: str, root: Any) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{root / 'service.sqlite3'}", None
    return postgres_url()


def _marked(key: Any, tiny_model: Any, tokenizer: Any, seed: int = 4) -> str:
    return generate_batch(
        ["Begin:"], key=key, scheme="default", model=tiny_model, tokenizer=tokenizer,
        max_new_tokens=120, temperature=1.0, seed=seed, chat=False,
    )[0].text  # fmt: skip


def _jpeg(im: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _webp(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "WEBP", quality=90)
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("payload/run.sh", "#!/bin/sh\necho hello\n")
    return buf.getvalue()


def _upload_signing_key(env: Env, chain: Any) -> None:
    r = env.client.put(
        "/v1/signing-key",
        files={"chain": ("chain.pem", chain.chain.read_bytes()), "key": ("key.pem", chain.signing_key.read_bytes())},
        headers=env.acme,
    )
    assert r.status_code == 200, r.text


def _audit_counts(env: Env) -> Counter[tuple[str | None, str]]:
    from dojang.service import db

    with env.app.state.services.engine.connect() as conn:
        rows = conn.execute(
            select(db.audit.c.tenant_id, db.audit.c.kind, func.count()).group_by(db.audit.c.tenant_id, db.audit.c.kind)
        )
        return Counter({(r[0], r[1]): r[2] for r in rows})


def _tenant_id(env: Env, headers: dict[str, str] | None) -> str | None:
    if headers is None:
        return None
    principal = env.app.state.services.repo.authenticate(headers["Authorization"].removeprefix("Bearer "))
    return principal.tenant_id


# -- 50 clients for a minute ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_fifty_concurrent_clients_no_errors_no_lost_audit_entries(database, tmp_path, tiny_model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """DOJANG_SOAK_SECONDS (default 60) on SQLite; PostgreSQL runs a third of it (at least 10 s)."""
    import httpx

    seconds = float(os.environ.get("DOJANG_SOAK_SECONDS", "60"))
    if database == "postgresql":
        seconds = max(10.0, seconds / 3)
    url, drop = _database(database, tmp_path)
    env = build_env(url, tmp_path, **UNLIMITED)
    try:
        text = _marked(env.acme_key, tiny_model, tokenizer)
        marked_png = png_bytes(embed(Image.fromarray(skdata.chelsea()[:256, :320]), env.other_key, "00112233aabbccdd"))
        marked_jpg = _jpeg(embed(Image.fromarray(skdata.coffee()[:256, :256]), env.acme_key, "0102030405060708"))
        # (method, path, request kwargs, expected verdict or state): every call is a verification
        # and must leave exactly one audit entry of its kind.
        calls: list[tuple[str, str, dict[str, Any], str, str]] = [
            ("text", "/v1/text/detect", {"json": {"text": text}}, "verdict", "detected"),
            ("text", "/v1/text/detect", {"json": {"text": HUMAN_EN}}, "verdict", "not_detected"),
            ("image", "/v1/image/detect", {"files": {"file": ("m.png", marked_png, "image/png")}}, "verdict", "detected"),
            ("verify", "/v1/verify", {"files": {"file": ("m.jpg", marked_jpg, "image/jpeg")}}, "state", "no_credential"),
            ("verify", "/v1/verify", {"files": {"file": ("t.txt", text.encode(), "text/plain")}}, "state", "no_credential"),
        ]
        identities = [env.acme, env.other, env.checker, None]  # two providers, a verifier, the anonymous tier
        ok: Counter[tuple[str | None, str]] = Counter()
        failures: list[str] = []
        lock = threading.Lock()
        tenant_ids = {i: _tenant_id(env, identities[i]) for i in range(len(identities))}

        with live_server(env.app) as base:
            stop_at = time.monotonic() + seconds

            def client(n: int) -> None:
                rng = random.Random(n)
                who = n % len(identities)
                headers = identities[who] or {}
                with httpx.Client(base_url=base, headers=headers, timeout=120.0) as http:
                    while time.monotonic() < stop_at:
                        kind, path, kwargs, field, expected = rng.choice(calls)
                        try:
                            r = http.post(path, **kwargs)
                        except httpx.HTTPError as err:
                            with lock:
                                failures.append(f"{path}: {type(err).__name__}: {err}")
                            continue
                        got = r.json().get(field) if r.status_code == 200 else None
                        if r.status_code != 200 or got != expected:
                            with lock:
                                failures.append(f"{path}: HTTP {r.status_code} {r.text[:200]}")
                            continue
                        with lock:
                            ok[(tenant_ids[who], kind)] += 1

            threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        assert not failures, f"{len(failures)} of {len(failures) + sum(ok.values())} requests failed, e.g. {failures[:5]}"
        total = sum(ok.values())
        assert total >= 50, f"only {total} requests completed in {seconds} s"
        audited = {k: n for k, n in _audit_counts(env).items() if k[1] in ("text", "image", "verify")}
        assert audited == dict(ok), "audit entries (tenant, kind) differ from the requests served"
    finally:
        env.app.state.services.engine.dispose()
        if drop is not None:
            drop()


# -- restart -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_restart_keeps_tenants_keys_and_manifests(database, tmp_path, tiny_model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from dojang.service import Settings, create_app

    url, drop = _database(database, tmp_path)
    env = build_env(url, tmp_path)
    try:
        c = env.client
        _upload_signing_key(env, init_dev_chain(tmp_path / "certs"))
        stamped_r = c.post(
            "/v1/image/stamp",
            files={"file": ("gen.png", png_bytes(Image.fromarray(skdata.astronaut()[:320, :320])), "image/png")},
            data={"format": "png"},
            headers=env.acme,
        )
        assert stamped_r.status_code == 200, stamped_r.text
        stamped, cid = stamped_r.content, stamped_r.headers["x-dojang-content-id"]
        second = bearer(c.post("/v1/tokens", headers=env.checker).json()["token"])
        rot = c.post(f"/v1/keys/{env.other_key.key_id}/rotate", headers=env.other).json()
        text = _marked(env.acme_key, tiny_model, tokenizer)
        old_text = _marked(env.other_key, tiny_model, tokenizer, seed=5)
        before = {h["Authorization"]: c.get("/v1/keys", headers=h).json() for h in (env.acme, env.other)}
        master = env.app.state.services.settings.master_key
        env.app.state.services.engine.dispose()
        del env.app, c

        app = create_app(Settings(database_url=url, master_key=master))
        try:
            c2 = TestClient(app)
            for headers in (env.admin, env.acme, env.other, env.checker, second):
                assert c2.get("/v1/audit", headers=headers).status_code == 200
            assert c2.get("/v1/keys", headers=bearer("dj_never-issued")).status_code == 401
            after = {h["Authorization"]: c2.get("/v1/keys", headers=h).json() for h in (env.acme, env.other)}
            assert after == before and rot["new"]["key_id"] in str(after)
            # keys still detect (the retired one too), with owner detail for the owner
            owner = c2.post("/v1/text/detect", json={"text": text}, headers=env.acme).json()
            assert owner["verdict"] == "detected" and owner["key_id"] == env.acme_key.key_id
            retired = c2.post("/v1/text/detect", json={"text": old_text}, headers=env.other).json()
            assert retired["verdict"] == "detected" and retired["key_id"] == env.other_key.key_id
            img = c2.post("/v1/image/detect", files={"file": ("s.png", stamped, "image/png")}, headers=env.acme).json()
            assert img["verdict"] == "detected" and img["payload"] == cid
            # the manifest still resolves, and still verifies the file it came from
            alg = c2.get("/services/supportedAlgorithms", headers=env.checker).json()["watermarks"][0]["alg"]
            value = base64.b64encode(bytes.fromhex(cid)).decode()
            got = c2.get("/matches/byBinding", params={"alg": alg, "value": value}, headers=second).json()
            assert got == {"matches": [{"manifestId": cid}]}
            m = c2.get(f"/manifests/{cid}", headers=second)
            assert m.status_code == 200 and len(m.content) > 100
            shared = tamper.reencode(stamped, "JPEG", quality=85)  # stripped by a platform: recovered from the store
            rec = c2.post("/v1/verify", files={"file": ("s.jpg", shared, "image/jpeg")}, headers=env.acme).json()
            assert rec["state"] == "recovered" and rec["recovered_from"]["content_id"] == cid
            # stamping works again after the restart (the signing key was kept, sealed)
            again = c2.post(
                "/v1/image/stamp",
                files={"file": ("g.png", png_bytes(Image.fromarray(skdata.coffee()[:300, :300])), "image/png")},
                headers=env.acme,
            )
            assert again.status_code == 200, again.text
        finally:
            app.state.services.engine.dispose()
    finally:
        if drop is not None:
            drop()


# -- schemathesis ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory, tiny_model, tokenizer):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("fuzz")
    # /v1/text/generate: the tiny model stands in for the default one (fuzzing is about inputs,
    # and the real model would make each example take seconds), as DOJANG_MODEL names a folder.
    tiny_model.save_pretrained(root / "tiny-model")
    tokenizer.save_pretrained(root / "tiny-model")
    env = build_env(f"sqlite:///{root / 'service.sqlite3'}", root, generation_model=str(root / "tiny-model"), **UNLIMITED)
    _upload_signing_key(env, init_dev_chain(root / "certs"))
    yield env
    env.app.state.services.engine.dispose()


def test_openapi_fuzzing_finds_no_server_errors(fuzz_env) -> None:  # type: ignore[no-untyped-def]
    """Every operation, with schema-shaped (positive) and malformed (negative) input, as a
    provider: never a 500. Deterministic (derandomized Hypothesis), a few examples per operation."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_env.app)
    failures: dict[str, str] = {}
    labels, examples = [], Counter[str]()
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=8, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def run(case: Any) -> None:
                examples[case.operation.label] += 1
                case.call_and_validate(headers=fuzz_env.acme, checks=[not_a_server_error])

            try:
                run()
            except Unsatisfiable:  # no input of this operation can be made invalid (no parameters, or only a path id)
                continue
            except Exception as err:  # one line per failing operation, then the next one
                failures[f"{operation.label} ({mode})"] = f"{type(err).__name__}: {str(err)[:1500]}"
    assert len(labels) >= 15 and all(examples[label] > 0 for label in labels), examples  # the whole API was fuzzed
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


# -- uploads ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp(request.param)
    url, drop = _database(request.param, root)
    chain = init_dev_chain(root / "certs")
    e = build_env(url, root, trust_anchors_pem=chain.root.read_text(), max_upload_bytes=2_000_000, **UNLIMITED)
    _upload_signing_key(e, chain)
    yield e
    e.app.state.services.engine.dispose()
    if drop is not None:
        drop()


@pytest.fixture(scope="module")
def stamped_jpeg(env):  # type: ignore[no-untyped-def]
    r = env.client.post(
        "/v1/image/stamp",
        files={"file": ("gen.png", png_bytes(Image.fromarray(skdata.astronaut()[:384, :384])), "image/png")},
        data={"format": "jpeg", "generator": "acme-imagegen 3"},
        headers=env.acme,
    )
    assert r.status_code == 200, r.text
    return r.content


def test_oversized_uploads_get_413(env) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    limit = env.app.state.services.settings.max_upload_bytes
    way_over = png_bytes(Image.fromarray(skdata.astronaut())) + b"\0" * (limit + 100_000)
    just_over = b"\xff\xd8\xff" + b"\0" * limit  # past the limit, inside the middleware's allowance for form overhead
    for path in ("/v1/image/detect", "/v1/verify"):
        for body in (way_over, just_over):
            r = c.post(path, files={"file": ("big.jpg", body, "image/jpeg")}, headers=env.checker)
            assert r.status_code == 413 and "larger than" in r.json()["detail"], (path, len(body), r.text[:200])

    def chunks() -> Any:  # no Content-Length: the limit must hold on the bytes actually read
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        for _ in range((limit + 100_000) // 65536 + 1):
            yield b"\0" * 65536
        yield b"\r\n" + boundary + b"--\r\n"

    r = c.post(
        "/v1/image/detect", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b0undary", **env.checker}
    )
    assert r.status_code == 413, r.text[:200]


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.7, 0.98])
def test_truncated_images_get_clear_4xx_or_a_verdict(env, stamped_jpeg, fraction) -> None:  # type: ignore[no-untyped-def]
    im = Image.fromarray(skdata.chelsea())
    c = env.client
    for name, whole in (("a.png", png_bytes(im)), ("a.jpg", _jpeg(im)), ("a.webp", _webp(im)), ("stamped.jpg", stamped_jpeg)):
        cut = whole[: int(len(whole) * fraction)]
        for path in ("/v1/image/detect", "/v1/verify"):
            r = c.post(path, files={"file": (name, cut, "application/octet-stream")}, headers=env.checker)
            assert r.status_code in (200, 422), (path, name, fraction, r.status_code, r.text[:200])
            if r.status_code == 422:
                detail = r.json()["detail"]
                assert name in detail and any(w in detail for w in ("corrupt", "truncated", "not an image", "neither")), detail
            elif path == "/v1/verify":
                # Pillow reads some truncated files; a signed file cut short is never trusted.
                assert r.json()["state"] != "trusted", (name, fraction)


def test_polyglot_uploads_get_the_verdict_of_the_image(env, stamped_jpeg) -> None:  # type: ignore[no-untyped-def]
    """Files that are an image and something else at once (ZIP, HTML, script appended, or hidden
    in an ancillary chunk) are judged as the image; appended bytes break a C2PA signature."""
    c = env.client
    marked = png_bytes(embed(Image.fromarray(skdata.chelsea()[:256, :300]), env.other_key, "a1a2a3a4a5a6a7a8"))
    html = b"<html><body><script>fetch('/v1/keys')</script></body></html>"
    iend = marked.rindex(b"IEND") - 4
    with_chunk = marked[:iend] + tamper._png_chunk(b"tEXt", b"Comment\0" + html) + marked[iend:]
    polyglots = {"png+zip": marked + _zip(), "png+html": marked + html, "png with an html tEXt chunk": with_chunk}
    for label, data in polyglots.items():
        r = c.post("/v1/image/detect", files={"file": ("p.png", data, "image/png")}, headers=env.other)
        assert r.status_code == 200, (label, r.text[:200])
        assert r.json()["verdict"] == "detected" and r.json()["payload"] == "a1a2a3a4a5a6a7a8", label
    # A signed JPEG with a ZIP after its end: the mark still reads, the signature does not hold.
    v = c.post("/v1/verify", files={"file": ("s.jpg", stamped_jpeg + _zip(), "image/jpeg")}, headers=env.checker)
    assert v.status_code == 200, v.text[:200]
    assert v.json()["state"] not in ("trusted", "valid"), v.json()["state"]
    assert v.json()["watermark"]["verdict"] == "detected"
    # HTML first, image after: not an image, not UTF-8 text -> a clear 422
    r = c.post("/v1/verify", files={"file": ("p.html", html + marked, "text/html")}, headers=env.checker)
    assert r.status_code == 422 and "neither" in r.json()["detail"]
    # mislabelled: a JPEG sent as image/png named .png is read by its bytes, not its label
    r = c.post("/v1/image/detect", files={"file": ("x.png", stamped_jpeg, "image/png")}, headers=env.acme)
    assert r.status_code == 200 and r.json()["verdict"] == "detected"


# -- malformed text and identifiers --------------------------------------------------------------------


def test_invalid_utf8_gets_a_clear_4xx(env) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    r = c.post(
        "/v1/verify", files={"file": ("t.txt", HUMAN_EN.encode()[:200] + b"\xff\xfe\xc3(" * 3, "text/plain")}, headers=env.checker
    )
    assert r.status_code == 422 and "UTF-8" in r.json()["detail"]
    json_headers = {"content-type": "application/json", **env.checker}
    r = c.post("/v1/text/detect", content=b'{"text": "caf\xe9 au lait, s\'il vous pla\xeet"}', headers=json_headers)
    assert r.status_code == 400 and "not valid UTF-8" in r.json()["detail"], r.text  # was a bare "error parsing the body"


def test_lone_surrogates_get_422_not_500(env) -> None:  # type: ignore[no-untyped-def]
    """Regression: JSON's "\\ud800" is a str Python cannot encode; it crashed the tokenizer, the
    database driver and even the 422 page (which echoes the input)."""
    c = env.client
    headers = {"content-type": "application/json"}
    cases = [
        ("/v1/text/detect", b'{"text": "hello \\ud800 world"}', env.checker, "text"),
        ("/v1/text/detect", b'{"text": "hello world", "key_id": "\\udfff"}', env.checker, "key_id"),
        ("/v1/keys", b'{"key": "\\ud800"}', env.acme, "key"),
        ("/v1/text/generate", b'{"prompt": "\\ud800"}', env.acme, "prompt"),
        ("/v1/tenants", b'{"name": "x\\ud800", "kind": "provider"}', env.admin, "name"),
    ]
    for path, body, auth, field in cases:
        r = c.post(path, content=body, headers={**headers, **auth})
        assert r.status_code == 422, (path, r.status_code, r.text[:200])
        assert r.json()["detail"][0]["loc"][-1] == field


def test_nul_and_control_characters(env) -> None:  # type: ignore[no-untyped-def]
    """Regression: NUL in an id or name reached PostgreSQL (which refuses it in text) as a 500; NUL
    in checked text is fine, and an opt-in audit log keeps that text with NUL replaced."""
    c = env.client
    rejected = [
        c.post("/v1/tenants", json={"name": "evil\x00corp", "kind": "provider"}, headers=env.admin),
        c.post("/v1/text/detect", json={"text": "hello world", "key_id": "dk-\x00"}, headers=env.checker),
        c.post("/v1/text/detect", json={"text": "hello world", "provider": "acme\x00"}, headers=env.checker),
        c.post("/v1/image/detect", data={"key_id": "a\x00b"}, files={"file": ("a.png", b"x", "image/png")}, headers=env.checker),
        c.post("/v1/keys/dk-%00/retire", headers=env.acme),
        c.get("/manifests/ab%00cd", headers=env.checker),
        c.post("/matches/byBinding", json={"alg": "io.dojang.image.1", "value": "\x00" * 16}, headers=env.checker),
    ]
    for r in rejected:
        assert r.status_code == 422 and "control character" in r.text, (r.request.url, r.status_code, r.text[:200])
    desk = bearer(
        c.post("/v1/tenants", json={"name": "desk-nul", "kind": "verifier", "store_content": True}, headers=env.admin).json()[
            "token"
        ]
    )
    r = c.post("/v1/text/detect", json={"text": "line one\x00line two"}, headers=desk)
    assert r.status_code == 200, r.text[:200]
    r = c.post("/v1/verify", files={"file": ("n.txt", b"plain text\x00with a NUL, " * 4, "text/plain")}, headers=desk)
    assert r.status_code == 200, r.text[:200]
    entries = c.get("/v1/audit", headers=desk).json()["entries"]
    assert entries[1]["content"] == "line one\ufffdline two"
    import hashlib

    assert entries[1]["content_sha256"] == hashlib.sha256(b"line one\x00line two").hexdigest()  # the hash is of the original


# -- one tenant on another's key ------------------------------------------------------------------------


def test_a_token_on_another_tenants_key(env, tiny_model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    c = env.client
    mine = env.acme_key.key_id
    for action in ("retire", "rotate"):
        r = c.post(f"/v1/keys/{mine}/{action}", headers=env.other)
        assert r.status_code == 404 and "no key" in r.json()["detail"]
    assert {k["key_id"]: k["status"] for k in c.get("/v1/keys", headers=env.acme).json()["keys"]}[mine] == "active"
    text = _marked(env.acme_key, tiny_model, tokenizer)
    rival = c.post("/v1/text/detect", json={"text": text, "key_id": mine}, headers=env.other).json()
    assert rival == {"verdict": "detected", "provider": "acme-ai", "detail": "verdict"}  # verdict only, no scores
    verifier = c.post("/v1/text/detect", json={"text": text, "key_id": mine}, headers=env.checker).json()
    assert verifier["detail"] == "verdict" and "p_value" not in verifier and "spans" not in verifier
    owner = c.post("/v1/text/detect", json={"text": text, "key_id": mine}, headers=env.acme).json()
    assert owner["detail"] == "owner" and owner["p_value"] < 1e-4  # the same request shows scores to the owner
    marked = png_bytes(embed(Image.fromarray(skdata.coffee()[:256, :256]), env.acme_key, "1122334455667788"))
    img = c.post(
        "/v1/image/detect", files={"file": ("m.png", marked, "image/png")}, data={"key_id": mine}, headers=env.other
    ).json()
    assert img == {"verdict": "detected", "provider": "acme-ai", "detail": "verdict"}
    # another tenant's audit entries and key listing stay invisible
    assert all(e.get("key_id") != mine for e in c.get("/v1/audit", headers=env.other).json()["entries"])
    assert mine not in c.get("/v1/keys", headers=env.other).text


@pytest.mark.parametrize("route", ["/v1/text/detect", "/v1/image/detect"])
def test_a_chunked_body_is_cut_off_at_the_upload_limit(tmp_path, route) -> None:  # type: ignore[no-untyped-def]
    """Regression: without a Content-Length the limit held only once the whole body was in: a
    JSON body was read into memory (a multipart one spooled to disk) however large it was."""
    import anyio

    e = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path, max_upload_bytes=200_000)
    chunk, pulled, sent = b"a" * 65536, 0, []
    if route == "/v1/text/detect":
        ctype, head, tail = b"application/json", b'{"text": "', b'"}'
    else:
        ctype = b"multipart/form-data; boundary=b0undary"
        head = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        tail = b"\r\n--b0undary--\r\n"
    total = 160  # 10 MB, 50 times the limit

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        if pulled > total + 2:
            return {"type": "http.disconnect"}
        body = head if pulled == 1 else tail if pulled == total + 2 else chunk
        return {"type": "http.request", "body": body, "more_body": pulled < total + 2}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": route, "raw_path": route.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", ctype), (b"authorization", e.checker["Authorization"].encode())],
        "client": ("127.0.0.1", 1), "server": ("test", 80), "state": {},
    }  # fmt: skip
    anyio.run(e.app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 413 and b"larger than" in body, body
    assert pulled * len(chunk) < 400_000, f"read {pulled} chunks of 64 KiB before answering"


def test_inputs_past_their_limits_get_clear_4xx(env) -> None:  # type: ignore[no-untyped-def]
    """Every input that costs work is bounded: a detection's prompt, a generation's seed, a
    stamp's generator name and its pixels (checked from the header, before decoding)."""
    c = env.client
    limit = env.app.state.services.settings.max_prompt_chars
    r = c.post("/v1/text/detect", json={"text": "a short text to check", "prompt": "p" * (limit + 1)}, headers=env.checker)
    assert r.status_code == 413 and "prompt longer than" in r.json()["detail"]
    r = c.post("/v1/text/generate", json={"prompt": "hi", "seed": 2**70}, headers=env.acme)
    assert r.status_code == 422 and "seed" in r.text
    small = png_bytes(Image.fromarray(skdata.astronaut()[:300, :300]))
    r = c.post("/v1/image/stamp", files={"file": ("g.png", small, "image/png")}, data={"generator": "g" * 401}, headers=env.acme)
    assert r.status_code == 422 and "generator longer than" in r.json()["detail"]
    pixels = env.app.state.services.settings.max_stamp_pixels
    side = int(pixels**0.5) + 1
    huge = png_bytes(Image.new("L", (side, side), 128))  # compresses to a few KB: only the header is read
    r = c.post("/v1/image/stamp", files={"file": ("huge.png", huge, "image/png")}, headers=env.acme)
    assert r.status_code == 413 and "pixels stamping accepts" in r.json()["detail"], r.text


def test_secrets_at_rest_are_private(tmp_path: Path) -> None:
    """The admin token goes to a file only its owner can read (never to stdout), and the
    embedded SQLite database is created the same way."""
    import stat

    from dojang.cli.serve import write_token
    from dojang.service.db import make_engine

    path = write_token("dt-secret-token", str(tmp_path / "admin-token"))
    assert Path(path).read_text() == "dt-secret-token\n"
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    write_token("dt-second", path)  # a new token replaces the file, with the same mode
    assert Path(path).read_text() == "dt-second\n" and stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'service.sqlite3'}")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    assert stat.S_IMODE((tmp_path / "db" / "service.sqlite3").stat().st_mode) == 0o600
    engine.dispose()


def test_verify_names_what_it_refuses_and_keeps_the_owners_details(env, stamped_jpeg) -> None:  # type: ignore[no-untyped-def]
    """`/v1/verify`: GIF and BMP are named as unsupported formats (not "text too long"); a text is
    held to the same character limit as detection; a stripped copy's decoded content id is shown
    to the key's owner only."""
    c = env.client
    gif, bmp = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(gif, "GIF")
    Image.new("RGB", (64, 64), (9, 9, 9)).save(bmp, "BMP")
    for name, body, fmt in (("a.gif", gif.getvalue(), "GIF"), ("a.bmp", bmp.getvalue(), "BMP")):
        r = c.post("/v1/verify", files={"file": (name, body, "application/octet-stream")}, headers=env.checker)
        assert r.status_code == 415 and fmt in r.json()["detail"], r.text
    limit = env.app.state.services.settings.max_text_chars
    r = c.post("/v1/verify", files={"file": ("t.txt", b"a" * (limit + 1), "text/plain")}, headers=env.checker)
    assert r.status_code == 413 and "text longer than" in r.json()["detail"]
    stripped = io.BytesIO()
    Image.open(io.BytesIO(stamped_jpeg)).convert("RGB").save(stripped, "JPEG", quality=90)  # no metadata left
    mine = c.post("/v1/verify", files={"file": ("s.jpg", stripped.getvalue(), "image/jpeg")}, headers=env.acme).json()
    assert mine["state"] == "recovered"
    content_id = mine["recovered_from"]["content_id"]
    for headers in (env.checker, env.other, {}):
        theirs = c.post("/v1/verify", files={"file": ("s.jpg", stripped.getvalue(), "image/jpeg")}, headers=headers)
        assert theirs.status_code == 200 and theirs.json()["state"] == "recovered"
        assert content_id not in theirs.text and "acme-ai" in theirs.json()["reason"]
