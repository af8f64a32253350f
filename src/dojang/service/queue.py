"""Where heavy jobs run: this process's worker pool, or `dojang worker` processes fed by a queue
on Redis (arq), so that several `dojang serve` replicas share workers that may run on other
machines.

arq, among the Redis queues the Python world uses (RQ, arq, Celery, Dramatiq): it is asyncio
native like the service (a request awaits its job without holding a thread), it is small (Redis
and nothing else), and it has what this needs built in: a caller-chosen job id that refuses a
second copy of a job while the first is queued, running or has its result kept (the
``Idempotency-Key``), aborting a queued or running job, per-function time limits, and re-running a
job whose worker died (its records land once anyway: :meth:`~dojang.service.repo.Repo.commit_job`).

Both queues answer the same way: the job's result, or a :class:`~dojang.service.jobs.JobError`
(429 with ``Retry-After`` when the queue is full or the caller has too many jobs, 504 when the
request's deadline came and the job was stopped, 413 when it passed its memory budget).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from dojang.service.jobs import JobError, WorkerPool

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from dojang.service.config import Settings
    from dojang.service.repo import Repo

__all__ = ["QUEUE_NAME", "LocalQueue", "RedisQueue", "make_queue", "run_worker"]

log = logging.getLogger(__name__)

QUEUE_NAME = "dojang:jobs"
STILL_RUNNING = "the job is still running; retry with the same Idempotency-Key to get its answer"
DEADLINE_MARGIN_S = 2.0  # a job is stopped this long before the request's own deadline, so its answer can still be given


_pools: dict[tuple[int, int, float, int, int], WorkerPool] = {}
_pools_lock = threading.Lock()


def make_pool(settings: Settings) -> WorkerPool:
    """This process's worker pool for these budgets: one per process (its children take the
    settings with each job, so every app in the process shares them), ended at exit."""
    shape = (
        settings.job_workers or os.cpu_count() or 1,
        settings.job_memory_mb,
        settings.job_timeout_s,
        settings.max_queued_jobs,
        settings.max_jobs_per_caller,
    )
    with _pools_lock:
        pool = _pools.get(shape)
        if pool is None:
            if not _pools:
                atexit.register(_close_pools)
            pool = _pools[shape] = WorkerPool(
                shape[0], memory_mb=shape[1], timeout_s=shape[2], max_queued=shape[3], per_caller=shape[4]
            )
        return pool


def _close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def _budget(settings: Settings) -> float:
    return max(1.0, settings.request_timeout_s - DEADLINE_MARGIN_S)


async def _after_stop(repo: Repo, job_id: str, why: str, writes: bool) -> Any:
    """The answer for a job that was stopped (``why``: "gone" or "deadline"): a job that writes
    may have committed just before it was stopped, and then its stored answer is the answer."""
    from starlette.concurrency import run_in_threadpool

    if writes:
        stored = await run_in_threadpool(repo.stored_job, job_id)
        if stored is not None:
            return stored, False
    if why == "gone":
        raise JobError(499, "the client went away; the job was stopped and wrote nothing")
    raise JobError(504, "the request took too long; the job was stopped and wrote nothing")


class LocalQueue:
    """Jobs on this process's own worker pool."""

    kind = "local"

    def __init__(self, settings: Settings, repo: Repo) -> None:
        self.settings = settings
        self.repo = repo
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> WorkerPool:
        with self._lock:
            if self._pool is None:
                self._pool = make_pool(self.settings)
            return self._pool

    def depth(self) -> int:
        return 0 if self._pool is None else self._pool.depth()

    async def run(
        self,
        kind: str,
        args: dict[str, Any],
        *,
        job_id: str,
        who: str,
        gone: Callable[[], Awaitable[bool]] | None = None,
        writes: bool = False,
    ) -> Any:
        """The job's result. ``gone`` says whether the client went away (the job is then stopped,
        and at the deadline too); without it (a job under an ``Idempotency-Key``) the job goes on
        past the deadline for a retry to collect. ``writes``: a job stopped at the deadline may
        have committed just before, so its stored answer is looked for before saying it wrote
        nothing."""
        pool = self.pool
        pool.admit(who)
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _budget(self.settings)
        task = asyncio.ensure_future(pool.run_async(kind, args, self.settings, job_id, cancel))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # read even when nobody waits for it
        why = ""
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.25)
                if done:
                    return task.result()
                if loop.time() > deadline:
                    why = "deadline"
                elif gone is not None and await gone():
                    why = "gone"
                if why == "deadline" and gone is None:
                    raise JobError(504, STILL_RUNNING)  # the job goes on: a retry under its key gets the answer
                if why:
                    cancel.set()
                    break
            try:
                return await task
            except JobError as err:
                if err.status != 499:
                    raise
            return await _after_stop(self.repo, job_id, why, writes)
        except asyncio.CancelledError:
            if gone is not None:  # a job under an Idempotency-Key goes on for its retry
                cancel.set()
            raise
        finally:
            pool.release(who)


class RedisQueue:
    """Jobs on the arq queue ``dojang:jobs`` in Redis, run by `dojang worker` processes. When
    Redis does not answer, jobs run on this process's own pool (with a warning), so the service
    keeps working."""

    kind = "redis"

    def __init__(self, settings: Settings, repo: Repo) -> None:
        assert settings.redis_url
        self.settings = settings
        self.repo = repo
        self.local = LocalQueue(settings, repo)
        self._arq: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._depth = 0
        self._latency: deque[float] = deque(maxlen=64)
        self._warned = False

    def depth(self) -> int:
        return self._depth + self.local.depth()

    async def _redis(self) -> Any:
        from arq import create_pool
        from arq.connections import RedisSettings

        loop = asyncio.get_running_loop()
        if self._arq is None or self._loop is not loop:
            settings = RedisSettings.from_dsn(self.settings.redis_url or "")
            settings.conn_timeout = 3  # past it, jobs run in this process until Redis answers again
            settings.conn_retries = 0
            self._arq = await create_pool(settings, default_queue_name=QUEUE_NAME)
            self._loop = loop
        return self._arq

    def _retry_after(self, depth: int) -> int:
        mean = sum(self._latency) / len(self._latency) if self._latency else 1.0
        return max(1, math.ceil(mean * max(1, depth) / max(1, self.settings.max_queued_jobs // 4)))

    async def run(
        self,
        kind: str,
        args: dict[str, Any],
        *,
        job_id: str,
        who: str,
        gone: Callable[[], Awaitable[bool]] | None = None,
        writes: bool = False,
    ) -> Any:
        from redis.exceptions import RedisError

        try:
            redis = await self._redis()
            depth = int(await redis.zcard(QUEUE_NAME))
        except (RedisError, OSError) as err:
            if not self._warned:
                log.warning("the job queue (Redis) does not answer (%s): jobs run in this process", type(err).__name__)
                self._warned = True
            self._arq = None
            return await self.local.run(kind, args, job_id=job_id, who=who, gone=gone, writes=writes)
        self._depth = depth
        if depth >= self.settings.max_queued_jobs:
            raise JobError(429, f"the service is busy ({depth} jobs waiting); retry later", self._retry_after(depth))
        mine = f"dojang:jobs-of:{who}"
        count = int(await redis.incr(mine))
        await redis.expire(mine, math.ceil(self.settings.request_timeout_s) * 2)
        try:
            if count > self.settings.max_jobs_per_caller:
                raise JobError(
                    429,
                    f"too many jobs of yours at once (at most {self.settings.max_jobs_per_caller}); retry later",
                    self._retry_after(depth),
                )
            try:
                return await self._run(redis, kind, args, job_id, gone, writes)
            except (RedisError, OSError) as err:
                self._arq = None
                raise JobError(503, f"the job queue (Redis) failed ({type(err).__name__}); retry", 1) from None
        finally:
            with contextlib.suppress(RedisError, OSError):
                await redis.decr(mine)

    async def _run(
        self, redis: Any, kind: str, args: dict[str, Any], job_id: str, gone: Callable[[], Awaitable[bool]] | None, writes: bool
    ) -> Any:
        from arq.jobs import Job

        began = time.monotonic()
        job = await redis.enqueue_job("dojang_job", kind, args, _job_id=job_id)
        if job is None:  # the same job (a retry under its Idempotency-Key) is queued, running or finished
            job = Job(job_id, redis, _queue_name=QUEUE_NAME)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _budget(self.settings)
        delay, why, checked = 0.002, "", loop.time()
        try:
            while True:
                info = await job.result_info()
                if info is not None:
                    self._latency.append(time.monotonic() - began)
                    if info.success:
                        return info.result
                    if isinstance(info.result, JobError):
                        raise info.result
                    if isinstance(info.result, asyncio.CancelledError | TimeoutError):
                        break  # stopped by an abort or by arq's own limit
                    raise JobError(500, f"the job failed ({type(info.result).__name__}); nothing was written")
                now = loop.time()
                if now > deadline:
                    why = "deadline"
                elif gone is not None and now - checked > 0.25:
                    checked = now
                    if await gone():
                        why = "gone"
                if why:
                    break
                await asyncio.sleep(delay)
                delay = min(0.05, delay * 1.5)
            if why == "deadline" and gone is None:
                raise JobError(504, STILL_RUNNING)
            if why:
                await _abort(job, 5.0)
                info = await job.result_info()
                if info is not None and info.success:
                    return info.result
        except asyncio.CancelledError:
            if gone is not None:
                await asyncio.shield(_abort(job, 0.1))
            raise
        return await _after_stop(self.repo, job_id, why or "deadline", writes)


async def _abort(job: Any, timeout: float) -> None:
    """Ask the worker to stop ``job`` and wait up to ``timeout`` s for it to stop or finish."""
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await job.abort(timeout=timeout, poll_delay=0.05)


def make_queue(settings: Settings, repo: Repo) -> LocalQueue | RedisQueue:
    if settings.job_queue == "redis":
        return RedisQueue(settings, repo)
    return LocalQueue(settings, repo)


async def dojang_job(ctx: dict[str, Any], kind: str, args: dict[str, Any]) -> Any:
    """The one arq function: run a job on this worker's pool (cancelled by an abort or arq's limit,
    which stops its child process)."""
    pool: WorkerPool = ctx["pool"]
    return await pool.run_async(kind, args, ctx["settings"], ctx["job_id"])


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """`dojang worker`: take jobs from the Redis queue and run them on a pool of child processes
    until stopped (SIGINT or SIGTERM)."""
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    if not settings.redis_url:
        from dojang.errors import ServiceError

        raise ServiceError("a worker takes its jobs from Redis: set DOJANG_REDIS_URL (and DOJANG_JOB_QUEUE=redis on the service)")
    from redis.exceptions import RedisError

    pool = make_pool(settings)

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["pool"] = pool
        ctx["settings"] = settings
        pool.start()

    redis_settings = RedisSettings.from_dsn(settings.redis_url)
    redis_settings.conn_timeout = 5  # a loaded machine can take more than arq's 1 s to connect
    redis_settings.conn_retries = 10
    try:
        while True:
            worker = Worker(
                functions=[func(dojang_job, name="dojang_job", timeout=settings.job_timeout_s + 10, max_tries=3)],  # type: ignore[arg-type]
                redis_settings=redis_settings,
                queue_name=QUEUE_NAME,
                max_jobs=pool.size + 1,
                poll_delay=0.01,
                allow_abort_jobs=True,
                keep_result=120,
                on_startup=startup,
                burst=burst,
                handle_signals=True,
                log_results=False,
            )
            try:
                worker.run()  # returns when stopped (SIGINT, SIGTERM) or, with burst, when the queue is empty
                return
            except (RedisError, OSError, TimeoutError) as err:  # Redis went away: the pool stays, the worker comes back
                log.warning("the job queue (Redis) failed (%s); reconnecting in 1 s", type(err).__name__)
                time.sleep(1.0)
    finally:
        pool.close()
