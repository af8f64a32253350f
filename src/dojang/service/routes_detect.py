"""Verification routes: /v1/text/detect, /v1/image/detect, /v1/verify; and the provider's
/v1/text/generate and /v1/image/stamp."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dojang.image._io import sniff_format
from dojang.keys import KeyRing
from dojang.service.app import Services, client_of, public_principal, require_provider, services
from dojang.service.inputs import Identifier, UnicodeText
from dojang.service.repo import DBManifestStore, Principal
from dojang.stats import Detection, Verdict

router = APIRouter(prefix="/v1")


class TextDetectRequest(BaseModel):
    text: UnicodeText = Field(description="The text to check (UTF-8).")
    key_id: Identifier | None = Field(default=None, description="Check only this key.")
    provider: Identifier | None = Field(default=None, description="Check only this provider's keys (tenant name).")
    prompt: UnicodeText | None = Field(default=None, description="The prompt the text answered (context only).")


class GenerateRequest(BaseModel):
    prompt: UnicodeText
    max_new_tokens: int = Field(default=200, ge=1, le=512)
    temperature: float = Field(default=0.7, gt=0.0, le=2.0)
    scheme: Identifier = "default"
    key_id: Identifier | None = None
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="Fix the sampling noise (0 .. 2^63 - 1).")


MAX_GENERATOR_CHARS = 200  # the generator's name, as the manifest and the store keep it


def _filters(svc: Services, key_id: str | None, provider: str | None) -> dict[str, Any]:
    """The ring a request asks for: every key of every provider, or one key / one provider's."""
    tenant_id = None
    if provider is not None:
        matches = [tid for tid, name in svc.repo.tenant_names().items() if name == provider]
        if not matches:
            raise HTTPException(404, NOT_FOUND)
        tenant_id = matches[0]
    return {"tenant_id": tenant_id, "key_id": key_id}


def _ring(svc: Services, key_id: str | None, provider: str | None) -> tuple[KeyRing, dict[str, str], dict[str, Any]]:
    """Every active and retired key of every provider, or the one key / provider asked for. An
    unknown key id and an unknown provider get the same answer, so that nobody learns which exist."""
    filters = _filters(svc, key_id, provider)
    ring, owners = svc.repo.key_ring(**filters)
    if ring is None:
        raise HTTPException(404, NOT_FOUND if key_id or provider else "no watermark keys are registered")
    return ring, owners, filters


NOT_FOUND = "no such provider or key"


async def _job(
    svc: Services,
    request: Request,
    principal: Principal | None,
    kind: str,
    args: dict[str, Any],
    *,
    job_id: str | None = None,
    writes: bool = False,
) -> Any:
    """Run a heavy job on the worker processes and wait for it. A job without an
    ``Idempotency-Key`` is stopped when its client goes away; one with a key goes on, and a retry
    gets its answer."""
    import uuid

    from dojang.service.jobs import JobError

    who = f"tenant:{principal.tenant_id}" if principal is not None else f"ip:{client_of(request)}"
    cancellable = job_id is None
    try:
        return await svc.jobs.run(
            kind,
            args,
            job_id=job_id or f"job-{uuid.uuid4().hex}",
            who=who,
            gone=_gone(request) if cancellable else None,
            writes=writes,
        )
    except JobError as err:
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
        raise HTTPException(err.status, err.detail, headers=headers) from None


def _gone(request: Request) -> Callable[[], Awaitable[bool]]:
    """Whether the client went away (set by the service's ``Disconnects`` middleware)."""
    event = getattr(request.state, "gone", None)

    async def gone() -> bool:
        return event is not None and event.is_set()

    return gone


def _idempotency(request: Request, principal: Principal, route: str) -> str | None:
    """The job id for the request's ``Idempotency-Key`` (None without one)."""
    from dojang.service.jobs import job_id_for

    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise HTTPException(422, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters")
    return job_id_for(principal.tenant_id, route, key)


MAX_IDEMPOTENCY_KEY = 200


def _shape(
    det: Detection, owners: dict[str, str], names: Callable[[], dict[str, str]], principal: Principal | None
) -> dict[str, Any]:
    """What the caller may see: scores, p-values and spans only for the key's owner; the verdict
    and the provider's name for everyone else (a detection oracle must not leak scores)."""
    pattern_only = det.verdict is Verdict.INCONCLUSIVE and bool(det.keyed_pattern_seen)
    owner = owners.get(det.key_id or "") if det.verdict is Verdict.DETECTED or pattern_only else None
    mine = principal is not None and (
        (owner is not None and owner == principal.tenant_id) or set(owners.values()) == {principal.tenant_id}
    )
    # A pattern without a valid payload names no provider (it proves nothing); its key's owner sees the detail.
    shown = owner if det.verdict is Verdict.DETECTED else None
    out: dict[str, Any] = {"verdict": det.verdict.value, "provider": names().get(shown) if shown else None}
    if pattern_only:
        # An image with a provider's keyed pattern but no payload that verifies (an average of marked
        # images, a forgery): said to everyone, and counted apart; which key stays the owner's to know.
        out["keyed_pattern_seen"] = True
    if mine:
        out.update(det.to_dict())
        out["detail"] = "owner"
    else:
        out["detail"] = "verdict"
    return out


def _verdict_only(out: dict[str, Any], state: str, kind: str) -> None:
    """`/v1/verify` for someone other than the key's owner: the library's reason names the key, the
    p-value and (images) the decoded content id, and a text's store entry names the key; say the
    same without them, as the verdict-only tier of the detection routes does."""
    provider = out["watermark"]["provider"]
    if out.get("recovered_from"):  # which key, and (images) the decoded content id, are the owner's to know
        out["recovered_from"] = {k: v for k, v in out["recovered_from"].items() if k not in ("key_id", "content_id")}
    if state == "recovered" and kind == "image":
        signer = (out.get("signer") or {}).get("name")
        out["reason"] = (
            f"no manifest in the file; the watermark of {provider} recovered the manifest signed by {signer} from the store "
            "(only its binding to the original bytes fails: the file was re-encoded)"
        )
    elif state == "remote":
        out["reason"] = f"the manifest lives at {out['remote_manifest']}; not fetched; a dojang watermark of {provider}"
    elif state == "no_credential":
        out["reason"] = (
            f"no C2PA manifest, but a dojang watermark of {provider}; no stored manifest was recovered through it"
            if kind == "image"
            else f"a dojang text watermark of {provider}; no matching provenance entry in the store"
        )
    elif state == "recovered" and kind == "text":
        entry = out["recovered_from"]
        out["reason"] = (
            f"a dojang text watermark of {provider}; the store holds a matching provenance entry "
            f"({entry.get('match')} match) for text generated by {entry.get('model')} at {entry.get('created_at')}"
        )


def _audit(
    svc: Services,
    principal: Principal | None,
    request: Request,
    kind: str,
    verdict: str,
    key_id: str | None,
    content: bytes,
    text: str | None = None,
) -> None:
    svc.repo.audit(
        principal=principal,
        kind=kind,
        verdict=verdict,
        key_id=key_id,
        content_sha256=hashlib.sha256(content).hexdigest(),
        content=text,
        client=client_of(request),
    )


def _check_stamp_pixels(data: bytes, limit: int) -> None:
    """413 for an image with more pixels than stamping may hold, read from its header before any
    decoding (a file that is not an image is left to the stamp's own message)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return
    if width * height > limit:
        raise HTTPException(413, f"a {width}x{height} px image is more than the {limit:,} pixels stamping accepts")


async def _read_upload(file: UploadFile, svc: Services) -> bytes:
    limit = svc.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"file larger than {limit} bytes")
    if not data:
        raise HTTPException(422, "the uploaded file is empty")
    return data


@router.post("/text/detect", tags=["verify"])
def text_detect(
    body: TextDetectRequest,
    request: Request,
    svc: Services = Depends(services),
    principal: Principal | None = Depends(public_principal),
) -> dict[str, Any]:
    """Check a text against every provider's keys (or the one named); the p-value is corrected for
    the number of keys tried."""
    from dojang.text import TextDetector

    if len(body.text) > svc.settings.max_text_chars:
        raise HTTPException(413, f"text longer than {svc.settings.max_text_chars} characters")
    if body.prompt is not None and len(body.prompt) > svc.settings.max_prompt_chars:
        raise HTTPException(413, f"prompt longer than {svc.settings.max_prompt_chars} characters")
    if not body.text.strip():
        raise HTTPException(422, "the text is empty")
    ring, owners, _ = _ring(svc, body.key_id, body.provider)
    tokenizer = svc.tokenizer()
    det = svc.detect(lambda: TextDetector(keys=ring, tokenizer=tokenizer).detect(body.text, prompt=body.prompt))
    svc.observe.verdict("text", det.verdict.value)
    out = _shape(det, owners, svc.repo.tenant_names, principal)
    _audit(
        svc,
        principal,
        request,
        "text",
        det.verdict.value,
        det.key_id if out["detail"] == "owner" else None,
        body.text.encode(),
        body.text,
    )
    return out


@router.post("/image/detect", tags=["verify"])
async def image_detect(
    request: Request,
    file: UploadFile = File(...),
    key_id: Identifier | None = Form(None),
    provider: Identifier | None = Form(None),
    svc: Services = Depends(services),
    principal: Principal | None = Depends(public_principal),
) -> dict[str, Any]:
    """Check an image (PNG, JPEG, WebP) against every provider's keys."""
    from starlette.concurrency import run_in_threadpool

    data = await _read_upload(file, svc)
    _, owners, filters = await run_in_threadpool(_ring, svc, key_id, provider)
    args = {"data": data, "name": file.filename or "upload", "filters": filters}
    det = await _job(svc, request, principal, "image_detect", args)
    svc.observe.verdict("image", det.verdict.value)
    out = _shape(det, owners, svc.repo.tenant_names, principal)
    key_seen = det.key_id if out["detail"] == "owner" else None  # which key matched is the owner's to know
    await run_in_threadpool(_audit, svc, principal, request, "image", det.verdict.value, key_seen, data)
    return out


@router.post("/verify", tags=["verify"])
async def verify_file(
    request: Request,
    file: UploadFile = File(...),
    key_id: Identifier | None = Form(None),
    provider: Identifier | None = Form(None),
    svc: Services = Depends(services),
    principal: Principal | None = Depends(public_principal),
) -> dict[str, Any]:
    """Any file: its C2PA manifest, its watermark under every provider's keys, and the manifest the
    watermark recovers from the store. Same states as `dojang verify`."""
    from starlette.concurrency import run_in_threadpool

    from dojang.provenance import verify_bytes

    data = await _read_upload(file, svc)
    named = sniff_format(data)
    if named is not None and named not in ("PNG", "JPEG", "WEBP"):
        raise HTTPException(415, f"{named} files are not supported: PNG, JPEG or WebP images, or UTF-8 text")
    is_text = named is None
    if is_text:
        try:
            chars = len(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise HTTPException(422, f"{file.filename or 'upload'}: neither a PNG, JPEG or WebP image nor UTF-8 text") from None
        if chars > svc.settings.max_text_chars:
            raise HTTPException(413, f"text longer than {svc.settings.max_text_chars} characters")
    if key_id is None and provider is None:
        ring, owners = await run_in_threadpool(svc.repo.key_ring)
        filters: dict[str, Any] = {}
    else:
        ring, owners, filters = await run_in_threadpool(_ring, svc, key_id, provider)
    if is_text:  # light: a detection thread of this process
        tokenizer = svc.tokenizer() if ring is not None else None
        store = DBManifestStore(svc.engine)
        result = await run_in_threadpool(
            svc.detect,
            lambda: verify_bytes(
                data,
                name=file.filename or "upload",
                keys=ring,
                trust_pem=svc.settings.trust_anchors_pem,
                store=store,
                tokenizer=tokenizer,
                remote_allow=svc.settings.remote_manifest_allow,
            ),
        )
    else:  # an image: a worker process
        result = await _job(
            svc, request, principal, "verify", {"data": data, "name": file.filename or "upload", "filters": filters}
        )
    svc.observe.verdict(f"verify/{result.kind}", result.state)
    out = result.to_dict()
    key_seen = None
    if result.watermark is not None:
        out["watermark"] = _shape(result.watermark, owners, svc.repo.tenant_names, principal)
        key_seen = result.watermark.key_id if out["watermark"]["detail"] == "owner" else None
        if key_seen is None and result.watermark.verdict is Verdict.DETECTED:
            _verdict_only(out, result.state, result.kind)
    text = data.decode("utf-8", "replace") if is_text else None
    await run_in_threadpool(
        _audit,
        svc,
        principal,
        request,
        "verify",
        result.state,
        key_seen,
        data,
        text,
    )
    return out


@router.post("/text/generate", tags=["keys"])
async def text_generate(
    body: GenerateRequest,
    request: Request,
    svc: Services = Depends(services),
    principal: Principal = Depends(require_provider),
) -> Response:
    """Generate a watermarked answer with the default model under one of the caller's active keys,
    and record its provenance entry. With an ``Idempotency-Key`` header, a retry gets the first
    answer back and nothing is recorded twice."""
    from dojang.service.jobs import request_digest
    from dojang.text import resolve

    if not body.prompt.strip():
        raise HTTPException(422, "the prompt is empty")
    if len(body.prompt) > svc.settings.max_prompt_chars:
        raise HTTPException(413, f"prompt longer than {svc.settings.max_prompt_chars} characters")
    resolve(body.scheme)  # an unknown scheme is a 400 here, before any job
    job_id = _idempotency(request, principal, "generate")
    args = {
        **body.model_dump(),
        "principal": principal,
        "client": client_of(request),
        "request_sha256": request_digest(body.prompt, body.max_new_tokens, body.temperature, body.scheme, body.key_id, body.seed),
    }
    stored, replayed = await _job(svc, request, principal, "generate", args, job_id=job_id, writes=True)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(stored.body, media_type=stored.media_type, headers=headers)


@router.post(
    "/image/stamp",
    tags=["keys"],
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}},
)
async def image_stamp(
    request: Request,
    file: UploadFile = File(...),
    generator: Identifier = Form("unnamed AI generator"),
    format: Identifier = Form("png"),
    svc: Services = Depends(services),
    principal: Principal = Depends(require_provider),
) -> Response:
    """Stamp an AI image with the caller's newest active watermark key and its C2PA signing key:
    watermark, signed manifest, manifest filed in the service's store. Returns the stamped file.
    With an ``Idempotency-Key`` header, a retry gets the same file back and nothing is filed twice."""
    from dojang.service.jobs import request_digest

    fmt = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}.get(format.lower())
    if fmt is None:
        raise HTTPException(422, "format must be png, jpeg or webp")
    if len(generator) > MAX_GENERATOR_CHARS:
        raise HTTPException(422, f"generator longer than {MAX_GENERATOR_CHARS} characters")
    data = await _read_upload(file, svc)
    _check_stamp_pixels(data, svc.settings.max_stamp_pixels)
    job_id = _idempotency(request, principal, "stamp")
    title = file.filename or "image"
    args = {
        "data": data,
        "fmt": fmt,
        "generator": generator,
        "title": title,
        "principal": principal,
        "client": client_of(request),
        "request_sha256": request_digest(data, fmt, generator, title),
    }
    stored, replayed = await _job(svc, request, principal, "stamp", args, job_id=job_id, writes=True)
    headers = {"X-Dojang-Content-Id": stored.meta["content_id"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(stored.body, media_type=stored.media_type, headers=headers)
