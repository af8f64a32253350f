"""The scale-out scenario, for its test and for the load benchmark: two `dojang serve` replicas
share PostgreSQL and a Redis job queue with a `dojang worker`. Clients stamp through both
replicas under Idempotency-Keys; one replica is killed with SIGKILL mid-load, then the worker (a
new one takes over). A client that loses its answer retries the same request under the same key.
Returns what was acknowledged and what the database holds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from skimage import data as skdata
from sqlalchemy import create_engine, func, select

from dojang.provenance import init_dev_chain
from dojang.service import db
from tests.service_env import png_bytes

REDIS_URL = "redis://127.0.0.1:6379/9"


def start_worker(database_url: str, master_key: bytes, root: Path, **env: str) -> subprocess.Popen[bytes]:
    """A real `dojang worker` process on the Redis queue."""
    environ = {
        **os.environ,
        "DOJANG_DATABASE_URL": database_url,
        "DOJANG_MASTER_KEY": master_key.hex(),
        "DOJANG_REDIS_URL": REDIS_URL,
        "DOJANG_DATA_DIR": str(root / "worker-data"),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dojang", "worker"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=(root / "worker.log").open("ab"),
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], port: int, root: Path, name: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dojang", "serve", "--no-dev", "--port", str(port), "--token-file", str(root / "admin-token")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(root / f"{name}.log").open("wb"),
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"replica {name} did not start: {(root / f'{name}.log').read_text()[-2000:]}")
        time.sleep(0.2)


def run_scenario(url: str, tmp_path: Path, seconds: float = 40.0) -> dict[str, Any]:
    """Run the load with both kills on the PostgreSQL database ``url`` (empty) and the Redis
    database ``REDIS_URL`` (flushed by the caller)."""
    import secrets

    master = secrets.token_bytes(32)
    env = {
        **os.environ,
        "DOJANG_DATABASE_URL": url,
        "DOJANG_MASTER_KEY": master.hex(),
        "DOJANG_REDIS_URL": REDIS_URL,
        "DOJANG_JOB_QUEUE": "redis",
        "DOJANG_JOB_TIMEOUT_S": "5",  # a dead worker's job runs again after its timeout plus arq's margins (~25 s)
        "DOJANG_RATE_PER_MINUTE": "1000000",
        "DOJANG_DATA_DIR": str(tmp_path / "data"),
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = [_free_port(), _free_port()]
        procs.append(_serve(env, ports[0], tmp_path, "replica-a"))
        procs.append(_serve(env, ports[1], tmp_path, "replica-b"))
        worker = start_worker(url, master, tmp_path, DOJANG_JOB_TIMEOUT_S="5", DOJANG_JOB_WORKERS="2")
        procs.append(worker)
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        admin = {"Authorization": "Bearer " + (tmp_path / "admin-token").read_text().strip()}
        with httpx.Client(base_url=bases[1], timeout=60) as http:
            r = http.post("/v1/tenants", json={"name": "acme-ai", "kind": "provider"}, headers=admin)
            assert r.status_code == 201, r.text
            acme = {"Authorization": "Bearer " + r.json()["token"]}
            assert http.post("/v1/keys", json={}, headers=acme).status_code == 201
            chain = init_dev_chain(tmp_path / "certs")
            r = http.put(
                "/v1/signing-key",
                files={"chain": ("c.pem", chain.chain.read_bytes()), "key": ("k.pem", chain.signing_key.read_bytes())},
                headers=acme,
            )
            assert r.status_code == 200, r.text

        photo = Image.fromarray(skdata.astronaut())
        images = [png_bytes(photo.rotate(a).resize((256, 256))) for a in range(0, 360, 45)]
        acknowledged: dict[str, str] = {}  # Idempotency-Key -> content id
        attempts: list[int] = []
        problems: list[str] = []
        alive = [True, True]
        lock = threading.Lock()
        stop_at = time.monotonic() + seconds

        def client(n: int) -> None:
            rng = random.Random(n)
            i = 0
            while time.monotonic() < stop_at:
                key, data, tries = f"c{n}-{i}", rng.choice(images), 0
                i += 1
                while True:  # one logical request, retried under its key until it is answered
                    tries += 1
                    live = [b for b, up in zip(bases, alive, strict=True) if up]
                    base = live[(n + tries) % len(live)]
                    try:
                        r = httpx.post(
                            base + "/v1/image/stamp",
                            files={"file": ("g.png", data, "image/png")},
                            data={"format": "png"},
                            headers={**acme, "Idempotency-Key": key},
                            timeout=90,
                        )
                    except httpx.HTTPError:
                        time.sleep(0.2)
                        continue
                    if r.status_code in (429, 503, 504):
                        time.sleep(float(r.headers.get("retry-after", "1")))
                        continue
                    if r.status_code != 200:
                        with lock:
                            problems.append(f"HTTP {r.status_code}: {r.text[:200]}")
                        break
                    with lock:
                        acknowledged[key] = r.headers["x-dojang-content-id"]
                        attempts.append(tries)
                    break

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        time.sleep(seconds / 5)
        before_kill = len(acknowledged)
        procs[0].send_signal(signal.SIGKILL)  # replica A dies mid-load
        alive[0] = False
        time.sleep(seconds / 5)
        worker.send_signal(signal.SIGKILL)  # and then the worker: its jobs run again on the next one
        procs.append(start_worker(url, master, tmp_path, DOJANG_JOB_TIMEOUT_S="5", DOJANG_JOB_WORKERS="2"))
        for t in threads:
            t.join(240)
        engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
        with engine.connect() as conn:
            stored = [r[0] for r in conn.execute(select(db.manifests.c.content_id))]
            audits = conn.execute(select(func.count()).select_from(db.audit).where(db.audit.c.kind == "stamp")).scalar_one()
            jobs = conn.execute(select(func.count()).select_from(db.jobs)).scalar_one()
        engine.dispose()
        return {
            "clients_stuck": sum(t.is_alive() for t in threads),
            "problems": problems,
            "acknowledged_before_kill": before_kill,
            "acknowledged": acknowledged,
            "retried": sum(a > 1 for a in attempts),
            "stored": stored,
            "audit_entries": audits,
            "job_answers": jobs,
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
