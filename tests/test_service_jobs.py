"""Heavy jobs in worker processes: memory and time budgets, deadlines, clients that go away,
admission control (429 with Retry-After), Idempotency-Key replays, and the Redis queue with a
real `dojang worker` process. Every job that writes (a stamp) is checked against the database:
records land once, or not at all."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from skimage import data as skdata
from sqlalchemy import func, select

from dojang.image import embed
from dojang.provenance import init_dev_chain
from tests.scale_scenario import REDIS_URL, start_worker
from tests.service_env import Env, build_env, live_server, png_bytes


def _signing(env: Env) -> None:
    chain = init_dev_chain(env.root / "certs")
    r = env.client.put(
        "/v1/signing-key",
        files={"chain": ("chain.pem", chain.chain.read_bytes()), "key": ("key.pem", chain.signing_key.read_bytes())},
        headers=env.acme,
    )
    assert r.status_code == 200, r.text


def _env(tmp_path: Path, **settings: Any) -> Env:
    env = build_env(f"sqlite:///{tmp_path / 'service.sqlite3'}", tmp_path, **settings)
    _signing(env)
    return env


def _image(side: int, seed: int = 0) -> bytes:
    """A photo-like test image of ``side`` x ``side`` px (the astronaut, tiled and resized)."""
    base = Image.fromarray(skdata.astronaut()).rotate(seed * 90)
    return png_bytes(base.resize((side, side), Image.Resampling.BICUBIC))


def _counts(env: Env) -> tuple[int, int, int]:
    """(manifests, stamp audit entries, stored job answers) in the database."""
    from dojang.service import db

    with env.app.state.services.engine.connect() as conn:
        manifests = conn.execute(select(func.count()).select_from(db.manifests)).scalar_one()
        audits = conn.execute(select(func.count()).select_from(db.audit).where(db.audit.c.kind == "stamp")).scalar_one()
        jobs = conn.execute(select(func.count()).select_from(db.jobs)).scalar_one()
    return manifests, audits, jobs


def _stamp(client: Any, env: Env, data: bytes, **headers: str) -> Any:
    return client.post(
        "/v1/image/stamp",
        files={"file": ("gen.png", data, "image/png")},
        data={"format": "png", "generator": "test-gen"},
        headers={**env.acme, **headers},
    )


# -- budgets ---------------------------------------------------------------------------------------


def test_a_job_past_its_memory_budget_is_stopped_and_the_next_one_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, job_workers=1, job_memory_mb=600)
    r = _stamp(env.client, env, _image(3000))  # 9 MP: stamping holds several float copies, ~70 bytes a pixel
    assert r.status_code == 413, r.text
    assert "more than 600 MB" in r.json()["detail"] and "nothing was written" in r.json()["detail"]
    assert _counts(env) == (0, 0, 0)
    r = _stamp(env.client, env, _image(256))  # the pool replaced the child it stopped
    assert r.status_code == 200, r.text
    assert _counts(env) == (1, 1, 1)


def test_a_job_past_its_time_budget_is_stopped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, job_workers=1, job_timeout_s=1.0)
    photo = png_bytes(Image.fromarray(skdata.chelsea()).resize((1152, 880)))  # unmarked 1 MP: every key's full search
    r = env.client.post("/v1/image/detect", files={"file": ("p.png", photo, "image/png")}, headers=env.checker)
    assert r.status_code == 504, r.text
    assert "longer than 1 s" in r.json()["detail"]
    marked = png_bytes(embed(Image.fromarray(skdata.coffee()[:256, :256]), env.acme_key, "0102030405060708"))
    r = env.client.post("/v1/image/detect", files={"file": ("m.png", marked, "image/png")}, headers=env.checker)
    assert r.status_code == 200 and r.json()["verdict"] == "detected", r.text


def test_the_request_deadline_stops_a_stamp_before_it_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, job_workers=1, request_timeout_s=3.0)  # a job gets 1 s of the 3
    r = _stamp(env.client, env, _image(1600))
    assert r.status_code == 504, r.text
    assert "took too long" in r.json()["detail"]
    time.sleep(1.0)
    assert _counts(env) == (0, 0, 0)


def test_a_client_that_goes_away_stops_its_job(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, job_workers=1)
    data = _image(1600)
    began = time.monotonic()
    r = _stamp(env.client, env, data)  # how long this stamp takes when the client waits
    took = time.monotonic() - began
    assert r.status_code == 200, r.text
    with live_server(env.app) as base:
        with httpx.Client(base_url=base, timeout=min(0.5, took / 3)) as http, pytest.raises(httpx.ReadTimeout):
            _stamp(http, env, data)
        time.sleep(took + 1.0)  # long enough for the job to have finished, had it gone on
    assert _counts(env) == (1, 1, 1), "the abandoned stamp was written"


# -- admission ---------------------------------------------------------------------------------------


def _two_at_once(base: str, first: dict[str, str], second: dict[str, str], env: Env) -> list[httpx.Response]:
    out: list[Any] = [None, None]
    data = _image(1400)

    def send(i: int, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            if i == 1:
                time.sleep(0.3)  # the first job is running by then
            out[i] = http.post(
                "/v1/image/stamp",
                files={"file": ("gen.png", data, "image/png")},
                data={"format": "png"},
                headers=headers,
            )

    threads = [threading.Thread(target=send, args=(i, h)) for i, h in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_one_caller_gets_429_with_retry_after_past_its_share(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, job_workers=1, max_jobs_per_caller=1)
    with live_server(env.app) as base:
        first, second = _two_at_once(base, env.acme, env.acme, env)
    assert first.status_code == 200, first.text
    assert second.status_code == 429, second.text
    assert "too many jobs of yours" in second.json()["detail"]
    assert int(second.headers["retry-after"]) >= 1


def test_a_full_queue_turns_work_away_with_retry_after(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, job_workers=1, max_queued_jobs=0)
    with live_server(env.app) as base:
        first, second = _two_at_once(base, env.acme, env.other, env)
    assert first.status_code == 200, first.text
    assert second.status_code == 429, second.text
    assert "busy" in second.json()["detail"] and int(second.headers["retry-after"]) >= 1


# -- idempotency -------------------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_answer_and_writes_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path)
    data = _image(256)
    first = _stamp(env.client, env, data, **{"Idempotency-Key": "order-17"})
    again = _stamp(env.client, env, data, **{"Idempotency-Key": "order-17"})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.content == first.content and again.headers["x-dojang-content-id"] == first.headers["x-dojang-content-id"]
    assert again.headers.get("idempotent-replayed") == "true" and "idempotent-replayed" not in first.headers
    assert _counts(env) == (1, 1, 1)
    other = _stamp(env.client, env, _image(256, seed=1), **{"Idempotency-Key": "order-17"})
    assert other.status_code == 422 and "different request" in other.json()["detail"], other.text
    fresh = _stamp(env.client, env, data, **{"Idempotency-Key": "order-18"})
    assert fresh.status_code == 200 and fresh.headers["x-dojang-content-id"] != first.headers["x-dojang-content-id"]
    plain = _stamp(env.client, env, data)  # no key: every request is its own stamp
    assert plain.status_code == 200 and plain.headers["x-dojang-content-id"] != first.headers["x-dojang-content-id"]
    assert _counts(env) == (3, 3, 3)
    bad = _stamp(env.client, env, data, **{"Idempotency-Key": "x" * 201})
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["detail"]


def test_generation_replays_under_its_idempotency_key(tmp_path, tiny_model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    from dojang.service import db

    folder = tmp_path / "tiny-model"
    tiny_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    env = build_env(f"sqlite:///{tmp_path / 's.sqlite3'}", tmp_path, generation_model=str(folder))
    body = {"prompt": "Say something.", "max_new_tokens": 20, "temperature": 1.0}
    first = env.client.post("/v1/text/generate", json=body, headers={**env.acme, "Idempotency-Key": "g-1"})
    again = env.client.post("/v1/text/generate", json=body, headers={**env.acme, "Idempotency-Key": "g-1"})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    with env.app.state.services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.texts)).scalar_one() == 1
        assert conn.execute(select(db.texts.c.model)).scalar_one() == "tiny-model"  # the entry names the model used


# -- the Redis queue and `dojang worker` ------------------------------------------------------------


@pytest.fixture
def redis_db() -> Any:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.flushdb()
    except Exception as err:
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379 ({type(err).__name__}): the queue tests could not run")
    yield client
    client.flushdb()


def test_jobs_run_on_a_worker_process_through_redis(tmp_path, redis_db) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from dojang.service import create_app

    env = _env(tmp_path, job_queue="redis", redis_url=REDIS_URL, job_workers=1)
    settings = env.app.state.services.settings
    worker = start_worker(settings.database_url, settings.master_key, tmp_path, DOJANG_JOB_WORKERS="1")
    try:
        marked = png_bytes(embed(Image.fromarray(skdata.coffee()[:256, :256]), env.acme_key, "0102030405060708"))
        r = env.client.post("/v1/image/detect", files={"file": ("m.png", marked, "image/png")}, headers=env.checker)
        assert r.status_code == 200 and r.json()["verdict"] == "detected", r.text
        # a second replica on the same database and queue: a retry through it gets the first answer
        replica = TestClient(create_app(settings))
        data = _image(256)
        first = _stamp(env.client, env, data, **{"Idempotency-Key": "k-1"})
        again = _stamp(replica, env, data, **{"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 200, (first.text, again.text)
        assert again.content == first.content
        assert _counts(env) == (1, 1, 1)
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert settings.master_key.hex() not in log and "Bearer" not in log
    finally:
        worker.terminate()
        worker.wait(20)
    assert worker.returncode is not None


def test_without_redis_jobs_run_in_the_service_with_a_warning(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, job_queue="redis", redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    marked = png_bytes(embed(Image.fromarray(skdata.coffee()[:256, :256]), env.acme_key, "0102030405060708"))
    r = env.client.post("/v1/image/detect", files={"file": ("m.png", marked, "image/png")}, headers=env.checker)
    assert r.status_code == 200 and r.json()["verdict"] == "detected", r.text
    assert any("job queue (Redis) does not answer" in rec.getMessage() for rec in caplog.records)


def test_job_settings_are_checked() -> None:
    from dojang.errors import ServiceError
    from dojang.service import Settings

    os.environ.pop("DOJANG_REDIS_URL", None)
    key = secrets.token_hex(32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOJANG_MASTER_KEY", key)
        mp.setenv("DOJANG_JOB_QUEUE", "redis")
        with pytest.raises(ServiceError, match="needs DOJANG_REDIS_URL"):
            Settings.from_env()
        mp.setenv("DOJANG_JOB_QUEUE", "celery")
        with pytest.raises(ServiceError, match="local or redis"):
            Settings.from_env()
