"""C2PA soft-binding resolution (durable content credentials): which manifest a watermark's value
names, and the manifest itself. The manifests are the signed Content Credentials a provider
published inside its files; any authenticated caller may resolve them by id. No route lists them."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel

from dojang.provenance import SOFT_BINDING_ALG
from dojang.service.app import Services, require_principal, services
from dojang.service.inputs import Identifier
from dojang.service.repo import DBManifestStore, Principal

router = APIRouter(tags=["c2pa"])


class BindingQuery(BaseModel):
    alg: Identifier
    value: Identifier


def _content_id(value: str) -> str:
    """The content id from a soft-binding value: base64 (as in the assertion) or 16 hex digits."""
    v = value.strip()
    if len(v) == 16:
        try:
            return bytes.fromhex(v).hex()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, "value must be the base64 soft-binding value or 16 hex digits") from None
    if len(raw) != 8:
        raise HTTPException(422, "a dojang soft-binding value is 8 bytes")
    return raw.hex()


def _matches(svc: Services, alg: str, value: str) -> dict[str, Any]:
    if alg != SOFT_BINDING_ALG:
        raise HTTPException(400, f"unsupported algorithm {alg!r}; this service resolves {SOFT_BINDING_ALG}")
    cid = _content_id(value)
    record = DBManifestStore(svc.engine).get_manifest(cid)
    return {"matches": [{"manifestId": cid}] if record else []}


@router.get("/services/supportedAlgorithms")
def supported(_: Principal = Depends(require_principal)) -> dict[str, Any]:
    return {"watermarks": [{"alg": SOFT_BINDING_ALG}], "fingerprints": []}


@router.get("/matches/byBinding")
def matches_get(
    alg: Identifier, value: Identifier, svc: Services = Depends(services), _: Principal = Depends(require_principal)
) -> dict[str, Any]:
    return _matches(svc, alg, value)


@router.post("/matches/byBinding")
def matches_post(
    body: BindingQuery, svc: Services = Depends(services), _: Principal = Depends(require_principal)
) -> dict[str, Any]:
    return _matches(svc, body.alg, body.value)


@router.get("/manifests/{manifest_id}", response_class=Response, responses={200: {"content": {"application/c2pa": {}}}})
def manifest(manifest_id: Identifier, svc: Services = Depends(services), _: Principal = Depends(require_principal)) -> Response:
    """The signed manifest store (JUMBF, ``application/c2pa``) filed under ``manifest_id``."""
    record = DBManifestStore(svc.engine).get_manifest(manifest_id)
    if record is None:
        raise HTTPException(404, f"no manifest {manifest_id}")
    return Response(record.manifest, media_type="application/c2pa")
