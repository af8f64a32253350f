"""Load benchmark of the verification service (`dojang serve`): requests per second and p50/p99
latency for text detection (200-token documents, POST /v1/text/detect) and image verification (a
stamped 1 MP JPEG: C2PA manifest + watermark + store lookup, POST /v1/verify), with N concurrent
clients against a real uvicorn server, on SQLite and on PostgreSQL.

The server runs in its own process (one uvicorn worker, as `dojang serve` starts it); the clients
are threads of this process, so both share this machine's cores. Two provider tenants are
registered (each request tries both keys); clients authenticate as a verifier tenant. PostgreSQL
is used at 127.0.0.1:5432 (user root, trust auth) when it answers; otherwise its rows are skipped
with a line saying why.

Usage: python benchmarks/service_bench.py [--quick] [--clients 8] [--seconds 20] [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_ADMIN_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"

TEXT = (
    "The committee met on Tuesday to review the budget for the coming year. Members raised concerns about the cost of "
    "repairing the old bridge, which has been closed to heavy traffic since the spring floods. After a long discussion, "
    "they agreed to ask the county for a second inspection before any contract is signed. The mayor said she expected a "
    "decision by the end of the month, and thanked the volunteers who had kept the riverside path open during the "
    "repairs. Local businesses, she added, had suffered from the detour, and the council would look at ways to support "
    "them through the winter. A resident who runs the bakery by the old mill said that trade had fallen by a third since "
    "March, and that she had let two of her staff go. Others asked why the inspection had taken so long, and whether the "
    "bridge could be opened to buses before the repairs were finished. The engineer said it could not: the second pier "
    "had moved, and until it was braced no vehicle heavier than a car would be allowed across. He hoped the work would "
    "start before the first frost."
)


@dataclass
class Scenario:
    name: str
    path: str
    request: dict[str, Any]
    expect: tuple[str, str]  # (field, value) every answer must carry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, master_key: bytes, port: int) -> None:
    """The server process: the app on the prepared database, served by uvicorn."""
    import logging

    import uvicorn

    from dojang.service import Settings, create_app

    logging.disable(logging.WARNING)
    settings = Settings(database_url=url, master_key=master_key, rate_per_minute=10**9, anonymous_rate_per_minute=10**9)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="error", backlog=1024)


def _postgres() -> tuple[str | None, Any, str]:
    """A fresh PostgreSQL database, its drop function, and why not when there is none."""
    try:
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = "dojang_bench_" + secrets.token_hex(4)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as err:
        return None, None, f"PostgreSQL is not reachable at 127.0.0.1:5432 ({type(err).__name__})"

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return f"postgresql://root@127.0.0.1:5432/{name}", drop, ""


def _prepare(url: str, root: Path) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """Migrate the database and register tenants and keys; returns (master key, verifier headers,
    provider headers)."""
    from dojang.keys import generate_key
    from dojang.service import Settings, create_app

    master = secrets.token_bytes(32)
    app = create_app(Settings(database_url=url, master_key=master))
    repo = app.state.services.repo
    provider_id, provider_token = repo.create_tenant("acme-ai", "provider")
    other_id, _ = repo.create_tenant("other-ai", "provider")
    _, verifier_token = repo.create_tenant("newsroom", "verifier")
    repo.add_key(provider_id, generate_key())
    repo.add_key(other_id, generate_key())
    app.state.services.engine.dispose()
    return master, {"Authorization": f"Bearer {verifier_token}"}, {"Authorization": f"Bearer {provider_token}"}


def _image_1mp() -> bytes:
    from PIL import Image
    from skimage import data as skdata

    buf = io.BytesIO()
    Image.fromarray(skdata.chelsea()).resize((1152, 880), Image.Resampling.LANCZOS).save(buf, "PNG")  # 1.01 MP
    return buf.getvalue()


def _setup_scenarios(base: str, provider: dict[str, str], root: Path) -> list[Scenario]:
    import httpx

    from dojang.provenance import init_dev_chain
    from dojang.text.models import load_tokenizer

    tok = load_tokenizer()
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    if len(ids) < 200:
        raise SystemExit(f"the benchmark text has {len(ids)} tokens, fewer than 200")
    doc = tok.decode(ids[:200])
    chain = init_dev_chain(root / "certs")
    with httpx.Client(base_url=base, headers=provider, timeout=120) as http:
        r = http.put(
            "/v1/signing-key",
            files={"chain": ("chain.pem", chain.chain.read_bytes()), "key": ("k.pem", chain.signing_key.read_bytes())},
        )
        r.raise_for_status()
        r = http.post("/v1/image/stamp", files={"file": ("gen.png", _image_1mp(), "image/png")}, data={"format": "jpeg"})
        r.raise_for_status()
        stamped = r.content
    return [
        Scenario("text detection (200 tokens)", "/v1/text/detect", {"json": {"text": doc}}, ("verdict", "not_detected")),
        Scenario(
            "image verification (1 MP JPEG)",
            "/v1/verify",
            {"files": {"file": ("photo.jpg", stamped, "image/jpeg")}},
            ("state", "valid"),  # signed by the dev chain, which this server does not trust
        ),
    ]


def _load(base: str, headers: dict[str, str], scenario: Scenario, clients: int, seconds: float) -> dict[str, Any]:
    """Closed loop: each client sends its next request when the last one is answered."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter()
    stop_at = start + seconds

    def client() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    r = http.post(scenario.path, **scenario.request)
                    ok = r.status_code == 200 and r.json().get(scenario.expect[0]) == scenario.expect[1]
                    problem = "" if ok else f"HTTP {r.status_code} {r.text[:120]}"
                except httpx.HTTPError as err:
                    problem = f"{type(err).__name__}: {err}"
                dt = time.perf_counter() - t0
                with lock:
                    (errors.append(problem) if problem else latencies.append(dt))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, round(p * (len(lat) - 1)))] * 1000 if lat else float("nan")

    return {
        "requests": len(lat),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "rps": len(lat) / elapsed,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "mean": statistics.fmean(lat) * 1000 if lat else float("nan"),
    }


def run_database(kind: str, clients: int, seconds: float) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    import httpx

    with tempfile.TemporaryDirectory(prefix="dojang-service-bench-") as tmp:
        root = Path(tmp)
        drop = None
        if kind == "sqlite":
            url = f"sqlite:///{root / 'service.sqlite3'}"
        else:
            pg, drop, why = _postgres()
            if pg is None:
                return [], why
            url = pg
        try:
            master, verifier, provider = _prepare(url, root)
            port = _free_port()
            server = mp.get_context("spawn").Process(target=_serve, args=(url, master, port), daemon=True)
            server.start()
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if not server.is_alive() or time.monotonic() > deadline:
                    raise SystemExit(f"the {kind} server did not start")
                time.sleep(0.2)
            try:
                scenarios = _setup_scenarios(base, provider, root)
                rows = []
                for sc in scenarios:
                    _load(base, verifier, sc, clients, min(2.0, seconds))  # warm-up: tokenizer, caches, connections
                    rows.append((sc.name, _load(base, verifier, sc, clients, seconds)))
                    print(f"  {kind}: {sc.name}: {rows[-1][1]['requests']} requests", file=sys.stderr)
                return rows, ""
            finally:
                server.terminate()
                server.join(10)
        finally:
            if drop is not None:
                drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 clients, 5 s per measurement")
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (default 8; 4 with --quick)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per measurement (default 20; 5 with --quick)")
    ap.add_argument("--db", default="sqlite,postgresql", help="databases to run, comma-separated")
    ap.add_argument("--out", default=None, help="write the table and its settings as JSON here")
    args = ap.parse_args()
    clients = args.clients or (4 if args.quick else 8)
    seconds = args.seconds or (5.0 if args.quick else 20.0)

    import json
    import os

    from dojang.bench._tables import Report, run_meta

    report = Report()
    report.text(f"{clients} concurrent clients, {seconds:g} s per row, {os.cpu_count()} CPU cores.")
    print(report.blocks[-1]["text"])
    print()
    headers = ["database", "request", "clients", "requests", "errors", "req/s", "p50 ms", "p99 ms"]
    table: list[list[object]] = []
    notes = []
    for kind in [d.strip() for d in args.db.split(",") if d.strip()]:
        rows, why = run_database(kind, clients, seconds)
        if why:
            notes.append(f"{kind}: skipped: {why}")
        for name, r in rows:
            cells = [kind, name, clients, r["requests"], r["errors"], f"{r['rps']:.1f}", f"{r['p50']:.0f}", f"{r['p99']:.0f}"]
            table.append(cells)
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)
            if r["errors"]:
                notes.append(f"{kind} {name}: first error: {r['first_error']}")
    report.table(headers, table)
    for note in notes:
        print(note)
        report.text(note)
    if args.out:
        meta = run_meta("python benchmarks/service_bench.py " + " ".join(sys.argv[1:]))
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({"report": report.blocks, "meta": meta}, fh, indent=1)


if __name__ == "__main__":
    main()
