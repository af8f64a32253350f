"""Heavy work in worker processes: image verification, stamping and generation run in child
processes with a memory and a time budget each, never on a request thread.

A :class:`WorkerPool` keeps one child process per core. A job goes to an idle child over a pipe;
the thread that waits for it reads the child's resident memory every 20 ms and kills the child
when it passes ``memory_mb`` (413), when the job passes ``timeout_s`` (504) or when the caller
gives up (the client went away or the request's own deadline came). A killed child is replaced
at once; a killed job has written nothing, because a job that writes records (a stamp, a
generation) writes them with its answer in one transaction at its very end
(:meth:`~dojang.service.repo.Repo.commit_job`), keyed by the job id, so that a job run twice (a
retry with the same ``Idempotency-Key``, or the queue running it again after its worker died)
writes once and answers twice with the same bytes.

The same pool runs under ``dojang serve`` (jobs from this process) and under ``dojang worker``
(jobs from the Redis queue, :mod:`dojang.service.queue`).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import math
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

    from dojang.service.config import Settings

__all__ = ["JobError", "WorkerPool", "execute", "job_id_for"]

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often a waiting thread looks at its child (answer, memory, deadline, cancellation)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class JobError(Exception):
    """A job's failure as the HTTP answer it becomes: status, message, and for 429 the seconds
    until a retry may succeed."""

    def __init__(self, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after

    def __reduce__(self) -> Any:  # crosses pipes and the Redis queue
        return (JobError, (self.status, self.detail, self.retry_after))


def job_id_for(tenant_id: str, route: str, idempotency_key: str) -> str:
    """The job id of a request that carries an ``Idempotency-Key``: the same for every retry of it
    by the same tenant on the same route, and never the same across tenants."""
    return "idem-" + hashlib.sha256(f"{tenant_id}\0{route}\0{idempotency_key}".encode()).hexdigest()[:40]


def request_digest(*parts: bytes | str | float | None) -> str:
    """A digest of what a request asked for: a retry under the same key must ask the same."""
    h = hashlib.sha256()
    for part in parts:
        raw = part if isinstance(part, bytes) else repr(part).encode()
        h.update(len(raw).to_bytes(8, "big") + raw)
    return h.hexdigest()


# -- in the child process ------------------------------------------------------------------------


@dataclass
class _Context:
    settings: Settings
    engine: Any
    repo: Any


_contexts: dict[tuple[str, bytes], _Context] = {}
_models: dict[str | None, tuple[Any, Any]] = {}  # generation models by folder (None: the default)


def _context(settings: Settings) -> _Context:
    """The database engine and repository for these settings, made once per child."""
    from dojang.service.db import make_engine
    from dojang.service.repo import Repo

    ident = (settings.database_url, settings.master_key)
    cx = _contexts.get(ident)
    if cx is None or cx.settings != settings:
        engine = make_engine(settings.database_url)
        cx = _contexts[ident] = _Context(settings, engine, Repo(engine, settings.master_key))
    return cx


def execute(kind: str, args: dict[str, Any], settings: Settings, job_id: str) -> Any:
    """Run one job here (in a worker's child process): ``image_detect``, ``verify``, ``stamp`` or
    ``generate``."""
    runs: dict[str, Callable[..., Any]] = {
        "image_detect": _image_detect,
        "verify": _verify,
        "stamp": _stamp,
        "generate": _generate,
    }
    if kind not in runs:
        raise JobError(400, f"unknown job kind {kind!r}")
    return runs[kind](_context(settings), job_id, **args)


def _ring(cx: _Context, filters: dict[str, Any]) -> Any:
    ring, _owners = cx.repo.key_ring(**filters)
    return ring


def _image_detect(cx: _Context, job_id: str, *, data: bytes, name: str, filters: dict[str, Any]) -> Any:
    from dojang.image import ImageDetector

    ring = _ring(cx, filters)
    if ring is None:
        raise JobError(404, "no watermark keys are registered")
    return ImageDetector(keys=ring).detect_bytes(data, name=name)


def _verify(cx: _Context, job_id: str, *, data: bytes, name: str, filters: dict[str, Any]) -> Any:
    from dojang.provenance import verify_bytes
    from dojang.service.repo import DBManifestStore

    return verify_bytes(
        data,
        name=name,
        keys=_ring(cx, filters),
        trust_pem=cx.settings.trust_anchors_pem,
        store=DBManifestStore(cx.engine),
        tokenizer=None,
        remote_allow=cx.settings.remote_manifest_allow,
    )


def _replayed(cx: _Context, job_id: str, request_sha256: str) -> Any:
    """The stored answer of a job that already finished, or None; 422 when the same key was used
    for a different request."""
    stored = cx.repo.stored_job(job_id)
    if stored is not None and stored.request_sha256 != request_sha256:
        raise JobError(422, "this Idempotency-Key was already used for a different request")
    return stored


def _stamp(
    cx: _Context,
    job_id: str,
    *,
    data: bytes,
    fmt: str,
    generator: str,
    title: str,
    principal: Any,
    client: str,
    request_sha256: str,
) -> tuple[Any, bool]:
    from dojang.provenance import ManifestSigner, stamp_bytes
    from dojang.provenance._c2pa import MIME
    from dojang.service.repo import BufferedStore, StoredJob, audit_row

    stored = _replayed(cx, job_id, request_sha256)
    if stored is not None:
        return stored, True
    tenant_id = principal.tenant_id
    keys = cx.repo.keys(tenant_id=tenant_id, active_only=True)
    signing = cx.repo.signing_key(tenant_id)
    if not keys or signing is None:
        raise JobError(409, "stamping needs an active watermark key and a signing key (PUT /v1/signing-key)")
    store = BufferedStore(cx.engine, tenant_id)
    signer = ManifestSigner(chain=signing[0], key_pem=signing[1])
    signed, info = stamp_bytes(data, fmt, key=keys[-1][0], signer=signer, store=store, generator=generator, title=title)
    job = StoredJob(job_id, tenant_id, "stamp", request_sha256, MIME[fmt], signed, {"content_id": info.content_id})
    audit = audit_row(principal, "stamp", "stamped", info.key_id, hashlib.sha256(signed).hexdigest(), None, client)
    first = cx.repo.commit_job(job, manifests=store.manifests, audit=audit)
    return first, first is not job


def _generate(
    cx: _Context,
    job_id: str,
    *,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    scheme: str,
    key_id: str | None,
    seed: int | None,
    principal: Any,
    client: str,
    request_sha256: str,
) -> tuple[Any, bool]:
    import json

    from dojang.provenance import record_text
    from dojang.service.repo import BufferedStore, StoredJob, audit_row
    from dojang.text import generate_batch, resolve
    from dojang.text.models import DEFAULT_MODEL_NAME, load_model

    stored = _replayed(cx, job_id, request_sha256)
    if stored is not None:
        return stored, True
    config = resolve(scheme)
    keys = cx.repo.keys(tenant_id=principal.tenant_id, key_id=key_id, active_only=True)
    if not keys:
        raise JobError(404, "no active key" + (f" {key_id}" if key_id else "") + " for this tenant")
    key = keys[-1][0]
    path = cx.settings.generation_model
    if path not in _models:
        _setup(True)  # loading (once converting) the model is not the job's time
        _models[path] = load_model(path)
        _setup(False)
    model, tokenizer = _models[path]
    gen = generate_batch(
        [prompt],
        key=key,
        scheme=config,
        model=model,
        tokenizer=tokenizer,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
    )[0]
    store = BufferedStore(cx.engine, principal.tenant_id)
    model_name = os.path.basename(os.path.normpath(path)) if path else DEFAULT_MODEL_NAME  # the entry names the model used
    entry = record_text(store, gen.text, key_id=key.key_id, scheme=scheme, model=model_name)
    answer = {"text": gen.text, "key_id": key.key_id, "scheme": scheme, "entry_id": entry.entry_id}
    body = json.dumps(answer).encode()
    job = StoredJob(job_id, principal.tenant_id, "generate", request_sha256, "application/json", body, {})
    digest = hashlib.sha256(gen.text.encode()).hexdigest()
    audit = audit_row(principal, "generate", "generated", key.key_id, digest, gen.text, client)
    first = cx.repo.commit_job(job, texts=store.texts, audit=audit)
    return first, first is not job


_conn: Connection | None = None  # this child's pipe to its pool


def _setup(begins: bool) -> None:
    """Tell the pool that one-time set-up (loading a model) begins or is over: the job's clock
    stops while it runs (its memory budget still holds) and starts again after."""
    if _conn is not None:
        _conn.send(("setup" if begins else "restart", None))


def _status_of(err: Exception) -> int:
    from dojang.errors import ConfigError, DojangError, DojangKeyError, InputError, ProvenanceError

    for exc_type, status in ((InputError, 422), (DojangKeyError, 400), (ConfigError, 400), (ProvenanceError, 422)):
        if isinstance(err, exc_type):
            return status
    return 400 if isinstance(err, DojangError) else 500


def _child_main(conn: Connection) -> None:
    """A worker child: preload the libraries, then run jobs from the pipe until it closes."""
    global _conn
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which ends the children
    _conn = conn
    _setup(True)  # a job sent while this process still starts does not pay for its imports
    import dojang.image
    import dojang.provenance  # noqa: F401
    from dojang.errors import DojangError

    _setup(False)

    while True:
        try:
            kind, args, settings, job_id = conn.recv()
        except (EOFError, OSError):
            return
        try:
            out: tuple[str, Any] = ("ok", execute(kind, args, settings, job_id))
        except JobError as err:
            out = ("error", (err.status, err.detail))
        except MemoryError:
            out = ("error", (413, "the job ran out of memory; nothing was written"))
        except DojangError as err:
            out = ("error", (_status_of(err), str(err)))
        except Exception as err:  # a bug: logged here with its traceback, named by type to the caller
            log.exception("job %s (%s) failed", job_id, kind)
            out = ("error", (500, f"the job failed ({type(err).__name__}); nothing was written"))
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):
            return


# -- in the parent ---------------------------------------------------------------------------------


class _Child:
    def __init__(self, ctx: Any) -> None:
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(theirs,), daemon=True, name="dojang-job")
        self.proc.start()
        theirs.close()
        self.killed_for: str | None = None

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/statm") as fh:
                return int(fh.read().split()[1]) * PAGE / 2**20
        except (OSError, ValueError, IndexError):
            return 0.0

    def kill(self, why: str) -> None:
        if self.killed_for is None:
            self.killed_for = why
        with contextlib.suppress(OSError, ValueError):
            self.proc.kill()

    def alive(self) -> bool:
        return self.killed_for is None and self.proc.is_alive()


class WorkerPool:
    """``size`` child processes that run jobs, each under a memory and a time budget.

    ``admit`` turns work away (429 with ``Retry-After``) when more than ``max_queued`` jobs wait,
    or when one caller already has ``per_caller`` jobs running or waiting; the rest wait their
    turn in arrival order. Thread-safe: callers block in :meth:`run` (or await :meth:`run_async`).
    """

    def __init__(self, size: int, *, memory_mb: int, timeout_s: float, max_queued: int, per_caller: int) -> None:
        self.size = max(1, size)
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.max_queued = max_queued
        self.per_caller = per_caller
        self._ctx = mp.get_context("spawn")  # a fork of a threaded server could copy held locks
        self._cond = threading.Condition()
        self._idle: list[_Child] = []
        self._children: list[_Child] = []
        self._waiting = 0
        self._running = 0
        self._callers: collections.Counter[str] = collections.Counter()
        self._durations: collections.deque[float] = collections.deque(maxlen=64)
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.size + max_queued + 2, thread_name_prefix="dojang-job-wait"
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"WorkerPool(size={self.size}, memory_mb={self.memory_mb}, timeout_s={self.timeout_s})"

    # -- admission -----------------------------------------------------------------------------
    def depth(self) -> int:
        """Jobs running or waiting."""
        return self._running + self._waiting

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue's length times the mean job time."""
        mean = sum(self._durations) / len(self._durations) if self._durations else 1.0
        return max(1, math.ceil((self._waiting + 1) * mean / self.size))

    def admit(self, who: str) -> None:
        with self._cond:
            admitted = sum(self._callers.values())  # running, or waiting for a worker
            if admitted >= self.size + self.max_queued:
                waiting = admitted - self.size
                raise JobError(429, f"the service is busy ({waiting} jobs waiting); retry later", self.retry_after())
            if self._callers[who] >= self.per_caller:
                raise JobError(
                    429, f"too many jobs of yours at once (at most {self.per_caller}); retry later", self.retry_after()
                )
            self._callers[who] += 1

    def release(self, who: str) -> None:
        with self._cond:
            self._callers[who] -= 1
            if self._callers[who] <= 0:
                del self._callers[who]

    # -- running -------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            while len(self._children) < self.size and not self._closed:
                try:
                    child = _Child(self._ctx)
                except (AssertionError, OSError) as err:  # a daemonic process, or no processes left
                    log.error("cannot start a worker process: %s", err)
                    raise JobError(503, "the service cannot start worker processes; see its log") from None
                self._children.append(child)
                self._idle.append(child)
            self._cond.notify_all()

    def run(self, kind: str, args: dict[str, Any], settings: Settings, job_id: str, cancel: threading.Event | None = None) -> Any:
        """Run one job in a child and return its result; raises :class:`JobError`."""
        cancel = cancel or threading.Event()
        self.start()
        with self._cond:
            self._waiting += 1
            try:
                while not self._idle:
                    if cancel.is_set() or self._closed:
                        raise JobError(499, "the job was cancelled before it started; nothing was written")
                    self._cond.wait(POLL_S * 5)
                child = self._idle.pop(0)
                if not child.proc.is_alive():  # ended while idle (killed from outside): a fresh one takes the job
                    self._children.remove(child)
                    child = _Child(self._ctx)
                    self._children.append(child)
            finally:
                self._waiting -= 1
            self._running += 1
        began, in_setup = time.monotonic(), False
        try:
            try:
                child.conn.send((kind, args, settings, job_id))
            except (BrokenPipeError, OSError):
                child.kill("died")
                raise JobError(503, "a worker process had ended; retry") from None
            while True:
                if child.conn.poll(POLL_S):
                    try:
                        status, payload = child.conn.recv()
                    except (EOFError, OSError):
                        child.kill("died")
                        break
                    if status in ("setup", "restart"):
                        began, in_setup = time.monotonic(), status == "setup"
                        continue
                    if status == "ok":
                        return payload
                    raise JobError(*payload)
                if not child.proc.is_alive():
                    child.kill("died")
                    break
                if cancel.is_set():
                    child.kill("cancel")
                elif not in_setup and time.monotonic() - began > self.timeout_s:
                    child.kill("time")
                elif child.rss_mb() > self.memory_mb:
                    child.kill("memory")
                if child.killed_for is not None:
                    break
            child.proc.join(5)
            why = child.killed_for
            if why == "memory":
                raise JobError(
                    413, f"the job needed more than {self.memory_mb} MB of memory and was stopped; nothing was written"
                )
            if why == "time":
                raise JobError(504, f"the job ran longer than {self.timeout_s:g} s and was stopped; nothing was written")
            if why == "cancel":
                raise JobError(499, "the job was cancelled; nothing was written")
            code = child.proc.exitcode
            log.error("a worker process ended during job %s (%s), exit code %s", job_id, kind, code)
            raise JobError(500, f"the worker process ended during the job (exit code {code}); nothing was written")
        finally:
            with self._cond:
                self._running -= 1
                self._durations.append(time.monotonic() - began)
                if child.alive():
                    self._idle.append(child)
                else:
                    self._children.remove(child)
                    if not self._closed:
                        replacement = _Child(self._ctx)
                        self._children.append(replacement)
                        self._idle.append(replacement)
                self._cond.notify_all()

    async def run_async(
        self, kind: str, args: dict[str, Any], settings: Settings, job_id: str, cancel: threading.Event | None = None
    ) -> Any:
        """:meth:`run` from a coroutine; cancelling the coroutine stops the job (its child is killed)."""
        cancel = cancel or threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._threads, functools.partial(self.run, kind, args, settings, job_id, cancel))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            raise

    def close(self) -> None:
        with self._cond:
            self._closed = True
            children, self._children, self._idle = self._children, [], []
            self._cond.notify_all()
        for child in children:
            with contextlib.suppress(OSError):
                child.conn.close()
            child.proc.join(2)
            if child.proc.is_alive():
                child.kill("closed")
        self._threads.shutdown(wait=False, cancel_futures=True)
