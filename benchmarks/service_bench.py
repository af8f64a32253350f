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
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_ADMIN_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/8"

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
    requests: list[dict[str, Any]]  # each client sends these in turn (different documents: nothing to cache)
    expect: tuple[str, str]  # (field, value) every answer must carry
    clients: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, master_key: bytes, port: int, workers: int, root: Path) -> subprocess.Popen[bytes]:
    """`dojang serve --workers N` on the prepared database, as an operator starts it."""
    env = {
        **os.environ,
        "DOJANG_DATABASE_URL": url,
        "DOJANG_MASTER_KEY": master_key.hex(),
        "DOJANG_DATA_DIR": str(root / "data"),
        "DOJANG_RATE_PER_MINUTE": str(10**9),  # the load is the measure here; limits have their own rows
        # the anonymous tier keeps its default 20 a minute: the X-Forwarded-For abuse case tries to get past it
        "DOJANG_MAX_JOBS_PER_CALLER": "1000",
        "DOJANG_REDIS_URL": REDIS_URL,  # limits shared by the server processes
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dojang", "serve", "--no-dev", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(root / "server.log").open("wb"),
    )


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


def _setup_scenarios(base: str, provider: dict[str, str], root: Path, text_clients: int, image_clients: int) -> list[Scenario]:
    import httpx

    from dojang.provenance import init_dev_chain
    from dojang.text.models import load_tokenizer

    tok = load_tokenizer()
    sentences = [x.strip() + "." for x in TEXT.split(".") if x.strip()]
    docs = []
    for turn in range(len(sentences)):  # the sentences in turn: as many different 200-token documents
        ids = tok(" ".join(sentences[turn:] + sentences[:turn]), add_special_tokens=False)["input_ids"]
        if len(ids) < 200:
            raise SystemExit(f"the benchmark text has {len(ids)} tokens, fewer than 200")
        docs.append(tok.decode(ids[:200]))
    chain = init_dev_chain(root / "certs")
    with httpx.Client(base_url=base, headers=provider, timeout=120) as http:
        r = http.put(
            "/v1/signing-key",
            files={"chain": ("chain.pem", chain.chain.read_bytes()), "key": ("k.pem", chain.signing_key.read_bytes())},
        )
        r.raise_for_status()
        r = http.post("/v1/image/stamp", files={"file": ("gen.png", _image_1mp(), "image/png")}, data={"format": "jpeg"})
        if r.status_code != 200:
            raise SystemExit(f"stamping the benchmark image failed: HTTP {r.status_code} {r.text[:300]}")
        stamped = r.content
    return [
        Scenario(
            "text detection (200 tokens)",
            "/v1/text/detect",
            [{"json": {"text": doc}} for doc in docs],
            ("verdict", "not_detected"),
            text_clients,
        ),
        Scenario(
            "image verification (1 MP JPEG)",
            "/v1/verify",
            [{"files": {"file": ("photo.jpg", stamped, "image/jpeg")}}],
            ("state", "valid"),  # signed by the dev chain, which this server does not trust
            image_clients,
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

    def client(n: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                n += 1
                try:
                    r = http.post(scenario.path, **scenario.requests[n % len(scenario.requests)])
                    ok = r.status_code == 200 and r.json().get(scenario.expect[0]) == scenario.expect[1]
                    problem = "" if ok else f"HTTP {r.status_code} {r.text[:120]}"
                except httpx.HTTPError as err:
                    problem = f"{type(err).__name__}: {err}"
                dt = time.perf_counter() - t0
                with lock:
                    (errors.append(problem) if problem else latencies.append(dt))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
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


def _tree_rss_mb(root_pid: int) -> dict[int, float]:
    """Resident memory (MB) of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as fh:
                out[pid] = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError):
            pass
        todo += children.get(pid, [])
    return out


def _abusers(base: str, provider: dict[str, str], stop: threading.Event, statuses: dict[str, Any]) -> list[threading.Thread]:
    """The abuse cases, each in a loop until ``stop``: an anonymous 10 MB prompt; a 9400x9400 PNG
    to stamp; keys and tokens past their caps; anonymous detections with a new X-Forwarded-For
    each; seed 2**70 and a 401-character generator."""
    import json

    import httpx
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (9400, 9400), 128).save(buf, "PNG", optimize=True)
    bomb, small, lock = buf.getvalue(), _small_png(), threading.Lock()
    huge = json.dumps({"text": "hello there", "prompt": "x" * 10_000_000}).encode()
    cases: dict[str, Any] = {
        "10 MB prompt (anonymous)": lambda h: h.post(
            "/v1/text/detect", content=huge, headers={"Content-Type": "application/json"}
        ),
        "9400x9400 PNG stamp": lambda h: h.post(
            "/v1/image/stamp", files={"file": ("big.png", bomb, "image/png")}, headers=provider
        ),
        "keys past the cap": lambda h: h.post("/v1/keys", json={}, headers=provider),
        "tokens past the cap": lambda h: h.post("/v1/tokens", headers=provider),
        "rotating X-Forwarded-For": lambda h: h.post(
            "/v1/text/detect", json={"text": "hello there"}, headers={"X-Forwarded-For": f"10.0.{secrets.randbelow(250)}.1"}
        ),
        "seed 2**70": lambda h: h.post("/v1/text/generate", json={"prompt": "hi", "seed": 2**70}, headers=provider),
        "401-character generator": lambda h: h.post(
            "/v1/image/stamp", files={"file": ("a.png", small, "image/png")},
            data={"generator": "g" * 401}, headers=provider,
        ),
    }  # fmt: skip

    def loop(name: str, send: Any) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            while not stop.is_set():
                try:
                    code = str(send(http).status_code)
                except httpx.HTTPError as err:
                    code = type(err).__name__
                with lock:
                    statuses.setdefault(name, {})
                    statuses[name][code] = statuses[name].get(code, 0) + 1
                time.sleep(0.05)

    # keys past the cap have a row of their own (after this run): the ring they grow is every caller's cost
    return [threading.Thread(target=loop, args=(name, send)) for name, send in cases.items() if name != "keys past the cap"]


def _small_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def _abuse_process(base: str, provider: dict[str, str], seconds: float, out: Any) -> None:
    """The abusers in a process of their own, so that their clients do not slow the measured ones'."""
    stop, statuses = threading.Event(), {}
    threads = _abusers(base, provider, stop, statuses)
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    out.put(statuses)


def abuse_under_load(
    base: str, verifier: dict[str, str], provider: dict[str, str], text: Scenario, seconds: float, server_pid: int
) -> dict[str, Any]:
    """Other tenants' text detections alone, then with every abuse case running beside them; the
    server's memory (each process of its tree) is sampled throughout."""
    unloaded = _load(base, verifier, text, text.clients, seconds)
    stop = threading.Event()
    peak: dict[int, float] = {}

    def sample() -> None:
        while not stop.is_set():
            for pid, mb in _tree_rss_mb(server_pid).items():
                peak[pid] = max(peak.get(pid, 0.0), mb)
            time.sleep(0.25)

    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    box = ctx.Queue()
    abusers = ctx.Process(target=_abuse_process, args=(base, provider, seconds + 3.0, box))
    abusers.start()
    sampler = threading.Thread(target=sample)
    sampler.start()
    time.sleep(3.0)  # the abusers are running before the measured clients start
    try:
        loaded = _load(base, verifier, text, text.clients, seconds)
    finally:
        stop.set()
        sampler.join()
        statuses = box.get(timeout=300)
        abusers.join(60)
    import httpx

    with httpx.Client(base_url=base, headers=provider, timeout=60) as http:  # one provider fills its key cap
        added = 0
        while http.post("/v1/keys", json={}).status_code == 201:
            added += 1
        statuses["keys past the cap"] = {"201": added, str(http.post("/v1/keys", json={}).status_code): 1}
    at_cap = _load(base, verifier, text, text.clients, seconds)
    return {
        "unloaded": unloaded,
        "loaded": loaded,
        "at_cap": at_cap,
        "keys_added": added,
        "statuses": statuses,
        "peak_rss_mb": max(peak.values(), default=0.0),
    }


ABUSE: dict[str, dict[str, Any]] = {}  # per database: the abuse run's statuses and memory


def run_database(
    kind: str, text_clients: int, image_clients: int, seconds: float, workers: int, abuse: bool = False
) -> tuple[list[tuple[str, int, dict[str, Any]]], str]:
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
            server = _serve(url, master, port, workers, root)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {kind} server did not start")
                time.sleep(0.2)
            try:
                scenarios = _setup_scenarios(base, provider, root, text_clients, image_clients)
                rows: list[tuple[str, int, dict[str, Any]]] = []
                for sc in scenarios:
                    _load(base, verifier, sc, sc.clients, min(3.0, seconds))  # warm-up: tokenizer, caches, connections
                    rows.append((sc.name, sc.clients, _load(base, verifier, sc, sc.clients, seconds)))
                    print(f"  {kind}: {sc.name}: {rows[-1][2]['requests']} requests", file=sys.stderr)
                if abuse:
                    out = abuse_under_load(base, verifier, provider, scenarios[0], seconds, server.pid)
                    rows.append(("text detection, unloaded (abuse baseline)", scenarios[0].clients, out["unloaded"]))
                    rows.append(("text detection beside the abuse cases", scenarios[0].clients, out["loaded"]))
                    rows.append(
                        (
                            f"text detection, one provider at its key cap ({2 + out['keys_added']} keys)",
                            scenarios[0].clients,
                            out["at_cap"],
                        )
                    )
                    ABUSE[kind] = out
                return rows, ""
            finally:
                server.terminate()
                server.wait(20)
        finally:
            if drop is not None:
                drop()


def kill_row(report: Any, *, seconds: float) -> None:
    """Two replicas and a worker on PostgreSQL and Redis, SIGKILL of a replica and then of the
    worker mid-load (the scenario of tests/test_service_scale.py): acknowledged against stored."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import redis

    from tests.scale_scenario import REDIS_URL as QUEUE_REDIS
    from tests.scale_scenario import run_scenario

    pg, drop, why = _postgres()
    if pg is None:
        report.text(f"Kill run skipped: {why}")
        return
    try:
        redis.Redis.from_url(QUEUE_REDIS, socket_connect_timeout=1).flushdb()
    except redis.RedisError as err:
        drop()
        report.text(f"Kill run skipped: Redis is not reachable ({type(err).__name__})")
        return
    try:
        with tempfile.TemporaryDirectory(prefix="dojang-kill-") as tmp:
            out = run_scenario(pg, Path(tmp), seconds=seconds)
    finally:
        drop()
    acked, stored = set(out["acknowledged"].values()), out["stored"]
    once = len(stored) == len(set(stored)) and set(stored) == acked and out["audit_entries"] == out["job_answers"] == len(stored)
    report.text(
        f"Scale-out: 2 replicas and 1 worker (PostgreSQL, Redis queue), 6 clients stamping through both for {seconds:g} s "
        "under Idempotency-Keys; SIGKILL of replica A after a fifth of the run, then of the worker (a new one starts)."
    )
    report.table(
        ["acknowledged stamps", "retried after a kill", "stored", "audit entries", "stored exactly once", "errors"],
        [[len(acked), out["retried"], len(stored), out["audit_entries"], "yes" if once else "NO", len(out["problems"])]],
    )
    print(report.blocks[-2]["text"], report.blocks[-1], sep="\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer clients (8 and 4), 5 s per measurement")
    ap.add_argument("--text-clients", type=int, default=None, help="clients detecting text (default 50)")
    ap.add_argument("--image-clients", type=int, default=None, help="clients verifying images (default 10)")
    ap.add_argument("--workers", type=int, default=2, help="`dojang serve --workers` (default 2: one per core here)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per measurement (default 20; 5 with --quick)")
    ap.add_argument("--db", default="sqlite,postgresql", help="databases to run, comma-separated")
    ap.add_argument("--out", default=None, help="write the table and its settings as JSON here")
    ap.add_argument("--no-kill", action="store_true", help="skip the replica and worker kill run")
    args = ap.parse_args()
    text_clients = args.text_clients or (8 if args.quick else 50)
    image_clients = args.image_clients or (4 if args.quick else 10)
    seconds = args.seconds or (5.0 if args.quick else 20.0)

    import json

    from dojang.bench._tables import Report, run_meta

    report = Report()
    report.text(
        f"`dojang serve --workers {args.workers}` (its job workers in child processes), clients in a second process on the "
        f"same machine, {seconds:g} s per row, {os.cpu_count()} CPU cores. Targets: text >= 150 req/s with p99 <= 500 ms "
        "at 50 clients; image verification >= 20 req/s with p99 <= 1000 ms at 10 clients."
    )
    print(report.blocks[-1]["text"])
    print()
    headers = ["database", "request", "clients", "requests", "errors", "req/s", "p50 ms", "p99 ms"]
    table: list[list[object]] = []
    notes = []
    for kind in [d.strip() for d in args.db.split(",") if d.strip()]:
        rows, why = run_database(kind, text_clients, image_clients, seconds, args.workers, abuse=kind == "sqlite")
        if why:
            notes.append(f"{kind}: skipped: {why}")
        for name, clients, r in rows:
            cells = [kind, name, clients, r["requests"], r["errors"], f"{r['rps']:.1f}", f"{r['p50']:.0f}", f"{r['p99']:.0f}"]
            table.append(cells)
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)
            if r["errors"]:
                notes.append(f"{kind} {name}: first error: {r['first_error']}")
    report.table(headers, table)
    if not args.no_kill:
        kill_row(report, seconds=max(20.0, 2 * seconds))
    for kind, out in ABUSE.items():
        ratio = out["loaded"]["p99"] / out["unloaded"]["p99"]
        cap = out["at_cap"]["p99"] / out["unloaded"]["p99"]
        report.text(
            f"Abuse cases beside 50 clients ({kind}): other tenants' p99 {out['unloaded']['p99']:.0f} ms alone, "
            f"{out['loaded']['p99']:.0f} ms with the abuse running ({ratio:.2f}x; target <= 2x); the largest server process "
            f"(uvicorn or job worker) peaked at {out['peak_rss_mb']:.0f} MB (target <= 2048 MB). Once one provider "
            f"holds DOJANG_MAX_KEYS_PER_TENANT keys, every detection scores them all: p99 {out['at_cap']['p99']:.0f} ms "
            f"({cap:.2f}x)."
        )
        codes = sorted({c for st in out["statuses"].values() for c in st})
        report.table(
            ["abuse case", *[f"HTTP {c}" if c.isdigit() else c for c in codes]],
            [[name, *[st.get(c, 0) for c in codes]] for name, st in out["statuses"].items()],
        )
        print(report.blocks[-2]["text"])
    for note in notes:
        print(note)
        report.text(note)
    if args.out:
        meta = run_meta("python benchmarks/service_bench.py " + " ".join(sys.argv[1:]))
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({"report": report.blocks, "meta": meta}, fh, indent=1)


if __name__ == "__main__":
    main()
