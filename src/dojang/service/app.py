"""The FastAPI application: `create_app(settings)` wires the database, auth, limits and routes."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from dojang import __version__
from dojang.errors import ConfigError, DojangError, DojangKeyError, InputError, ProvenanceError
from dojang.service.config import Settings
from dojang.service.db import open_database
from dojang.service.inputs import BodyTooLarge, ErrorResponse
from dojang.service.repo import Principal, Repo

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RateLimiter:
    """A token bucket per caller (token id, or client address on the public tier)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str, per_minute: int) -> float:
        """0.0 if the call may go ahead, else the seconds until it may."""
        rate = per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[who] = (tokens - 1.0, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / rate


class SharedRateLimiter:
    """The same token buckets kept in Redis, so that every worker process and every replica draws
    on one budget per caller. Each bucket is updated atomically by a Lua script on Redis's own
    clock. When Redis cannot be reached, the call falls back to this process's buckets (and says
    so in the log once): a limit that holds per process is better than none."""

    SCRIPT = """
    local now = redis.call('TIME')
    local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
    local rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
    local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
    local tokens = tonumber(b[1]) or cap
    local at = tonumber(b[2]) or t
    tokens = math.min(cap, tokens + math.max(0, t - at) * rate)
    local wait = 0
    if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
    redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 2)
    return tostring(wait)
    """

    def __init__(self, url: str, *, prefix: str = "dojang:rate:") -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._errors = (redis.exceptions.RedisError, OSError)
        self._script = self._client.register_script(self.SCRIPT)
        self._prefix = prefix
        self._local = RateLimiter()
        self._warned = False

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except self._errors:
            return False

    def take(self, who: str, per_minute: int) -> float:
        try:
            return float(self._script(keys=[self._prefix + who], args=[per_minute / 60.0, per_minute]))
        except self._errors as err:
            if not self._warned:
                log.warning("rate limits fall back to this process: Redis did not answer (%s)", type(err).__name__)
                self._warned = True
            return self._local.take(who, per_minute)


def make_limiter(settings: Settings) -> RateLimiter | SharedRateLimiter:
    """Redis-backed limits when DOJANG_REDIS_URL is set and answers; per-process ones otherwise,
    with a warning (the service still starts)."""
    if settings.redis_url:
        try:
            shared = SharedRateLimiter(settings.redis_url)
        except ImportError:
            log.warning("DOJANG_REDIS_URL is set but the redis package is missing: rate limits are per process")
            return RateLimiter()
        if shared.ping():
            return shared
        log.warning("Redis at DOJANG_REDIS_URL does not answer: rate limits are per process until it does")
        return shared  # each call tries Redis first and falls back to this process's buckets
    log.warning("rate limits are per process: set DOJANG_REDIS_URL to share them across workers and replicas")
    return RateLimiter()


JSON_ROUTES = frozenset({"/v1/text/detect", "/v1/text/generate"})  # bodies bounded by the text and prompt limits


def json_body_limit(settings: Settings) -> int:
    """The most bytes a JSON text request can need: the text and the prompt at their limits, each
    character written as a JSON escape (at most 6 bytes), and room for the other fields."""
    return min(6 * (settings.max_text_chars + settings.max_prompt_chars) + 16 * 1024, settings.max_upload_bytes + 64 * 1024)


class BodyLimit:
    """Count a request body's bytes as they arrive and answer 413 at the limit. The Content-Length
    check in ``limits`` misses chunked uploads, whose JSON bodies were read whole into memory (and
    multipart ones spooled whole to disk) before any check ran."""

    def __init__(self, app: Any, *, limit: int, json_limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.json_limit = json_limit or limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen, started = 0, False
        limit = self.json_limit if scope.get("path") in JSON_ROUTES else self.limit

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as err:  # raised outside FastAPI's body parsing (which answers 413 itself)
            if started:
                raise
            await ErrorResponse({"detail": str(err)}, status_code=413)(scope, receive, send)


class Disconnects:
    """Notice a client that goes away while its request runs: ``request.state.gone`` is set when
    the server reports the disconnect. Once a request's body is read, a watcher waits for the
    next message from the server, which can only be the disconnect (Starlette's own
    ``is_disconnected`` does not see it through the HTTP middlewares)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = asyncio.Event()
        scope.setdefault("state", {})["gone"] = gone
        body_read = False
        watcher: asyncio.Task[None] | None = None

        async def watch() -> None:
            if (await receive())["type"] == "http.disconnect":
                gone.set()

        async def wrapped() -> Any:
            nonlocal body_read, watcher
            if body_read:  # the watcher owns the server's receive now
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif message["type"] == "http.request" and not message.get("more_body", False):
                body_read = True
                watcher = asyncio.create_task(watch())
            return message

        try:
            await self.app(scope, wrapped, send)
        finally:
            if watcher is not None:
                watcher.cancel()


class Services:
    """What the routes share: settings, repository, and lazily loaded models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = open_database(settings.database_url)
        self.repo = Repo(self.engine, settings.master_key)
        self.limiter = make_limiter(settings)
        # Detection is CPU-bound: at most one per core runs at a time, the rest wait their turn in
        # arrival order. Unbounded, 50 clients time-share the cores and the unlucky ones pass the
        # request timeout (504) while the others finish; queued, every request finishes in turn.
        self.detect_gate = threading.Semaphore(settings.detect_workers or os.cpu_count() or 1)
        self.in_detection = 0  # verifications running or waiting for the gate (the metrics' queue depth)
        from dojang.service.observe import Observability
        from dojang.service.queue import make_queue

        self.jobs = make_queue(settings, self.repo)  # heavy work: worker processes, here or behind Redis
        self.observe = Observability(lambda: float(self.in_detection + self.jobs.depth()))
        self._lock = threading.Lock()
        self._tokenizer: Any = None

    def detect(self, work: Callable[[], T]) -> T:
        """Run one CPU-bound verification under the detection gate (call it from a worker thread)."""
        with self._lock:
            self.in_detection += 1
        try:
            with self.detect_gate:
                return work()
        finally:
            with self._lock:
                self.in_detection -= 1

    def tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                from dojang.text.models import load_tokenizer

                self._tokenizer = load_tokenizer()
            return self._tokenizer


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def optional_principal(request: Request, svc: Services = Depends(services)) -> Principal | None:
    """The caller's tenant from ``Authorization: Bearer <token>``; None without a header. A bad
    token is a 401, never a silent downgrade. Every call is rate limited here."""
    header = request.headers.get("authorization", "")
    principal = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "Authorization must be 'Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
        principal = svc.repo.authenticate(token.strip())
        if principal is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal  # the access log names the tenant (never the token)
    if principal is not None:
        wait = svc.limiter.take("tenant:" + principal.tenant_id, svc.settings.rate_per_minute)  # all its tokens share it
    else:
        wait = svc.limiter.take("ip:" + client_of(request), svc.settings.anonymous_rate_per_minute)
    if wait > 0:
        raise HTTPException(429, "rate limit exceeded; retry later", headers={"Retry-After": str(math.ceil(wait))})
    return principal


def public_principal(
    principal: Principal | None = Depends(optional_principal), svc: Services = Depends(services)
) -> Principal | None:
    """Verification routes: anonymous callers are served on the public tier (verdict and provider only)."""
    if principal is None and not svc.settings.public_tier:
        raise HTTPException(401, "a token is required (the public tier is off)", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_principal(principal: Principal | None = Depends(optional_principal)) -> Principal:
    if principal is None:
        raise HTTPException(401, "a token is required", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_provider(principal: Principal = Depends(require_principal)) -> Principal:
    if principal.kind not in ("provider", "admin"):
        raise HTTPException(403, "only provider tenants manage keys, sign and generate")
    return principal


def require_admin(principal: Principal = Depends(require_principal)) -> Principal:
    if principal.kind != "admin":
        raise HTTPException(403, "only the admin tenant manages tenants")
    return principal


ERROR_STATUS: list[tuple[type[Exception], int]] = [
    (InputError, 422),
    (DojangKeyError, 400),
    (ConfigError, 400),
    (ProvenanceError, 422),
    (DojangError, 400),
]


def create_app(settings: Settings) -> FastAPI:
    """Build the application (runs the database migrations first)."""
    app = FastAPI(
        title="dojang verification service",
        version=__version__,
        summary="Check text and images against every provider's watermark and C2PA credentials.",
        openapi_tags=[
            {"name": "verify", "description": "Verdicts on text, images and files."},
            {"name": "keys", "description": "Provider keys, tenants, tokens, audit log."},
            {"name": "c2pa", "description": "C2PA soft-binding resolution (durable content credentials)."},
            {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
        ],
    )
    app.state.services = Services(settings)
    app.add_middleware(  # the same allowance for form overhead; JSON text requests by their own limits
        BodyLimit, limit=settings.max_upload_bytes + 64 * 1024, json_limit=json_body_limit(settings)
    )

    @app.middleware("http")
    async def limits(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit():
            if int(length) > settings.max_upload_bytes + 64 * 1024:
                return JSONResponse({"detail": f"request body larger than {settings.max_upload_bytes} bytes"}, status_code=413)
            if request.url.path in JSON_ROUTES and int(length) > json_body_limit(settings):
                return JSONResponse(
                    {
                        "detail": f"request body larger than {json_body_limit(settings)} bytes (texts up to "
                        f"{settings.max_text_chars} characters, prompts up to {settings.max_prompt_chars})"
                    },
                    status_code=413,
                )
        try:
            return await asyncio.wait_for(call_next(request), timeout=settings.request_timeout_s)
        except TimeoutError:
            return JSONResponse({"detail": "the request took too long"}, status_code=504)

    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from dojang.service.inputs import http_error_with_utf8_detail, validation_error

    app.add_exception_handler(StarletteHTTPException, http_error_with_utf8_detail)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    for exc_type, status in ERROR_STATUS:

        def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return ErrorResponse({"detail": str(exc)}, status_code=status)

        app.add_exception_handler(exc_type, handler)

    app.middleware("http")(app.state.services.observe.middleware)  # it sees every answer, 413s and 504s too
    app.add_middleware(Disconnects)  # outermost: it reads the server's own messages

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/health/live", tags=["operations"])
    def live() -> dict[str, Any]:
        """The process answers (restart it when this fails)."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["operations"])
    def ready() -> JSONResponse:
        """The database answers (send traffic only when this is 200); says whether rate limits are shared."""
        svc: Services = app.state.services
        checks: dict[str, str] = {}
        try:
            with svc.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            checks["database"] = "ok"
        except SQLAlchemyError as err:  # whatever the driver raised, the answer is "not ready"
            checks["database"] = f"unreachable ({type(err).__name__})"
        limiter = svc.limiter
        if isinstance(limiter, SharedRateLimiter):
            checks["rate_limits"] = "shared (Redis)" if limiter.ping() else "per process (Redis does not answer)"
        else:
            checks["rate_limits"] = "per process"
        ok = checks["database"] == "ok"
        return JSONResponse({"status": "ready" if ok else "not ready", **checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics(_: Principal = Depends(require_admin)) -> Response:
        """Prometheus metrics (requests, latencies, queue depth, verdicts per modality): admin tokens only."""
        return Response(app.state.services.observe.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    from dojang.service import page, routes_admin, routes_c2pa, routes_detect

    app.include_router(routes_detect.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_c2pa.router)
    app.include_router(page.router)
    return app


def app_from_env() -> FastAPI:
    """The app of one `dojang serve --workers N` process, from the environment (DOJANG_DEV=1: dev mode)."""
    return create_app(Settings.from_env(dev=os.environ.get("DOJANG_DEV") == "1"))
