"""Tenants, tokens, watermark keys, the C2PA signing key and the audit log (all under /v1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, HTTPException, UploadFile
from pydantic import BaseModel, Field

from dojang.errors import DojangKeyError
from dojang.keys import generate_key, parse_key
from dojang.service.app import Services, require_admin, require_principal, require_provider, services
from dojang.service.inputs import Identifier, UnicodeText
from dojang.service.repo import Principal

router = APIRouter(prefix="/v1", tags=["keys"])


class TenantRequest(BaseModel):
    name: Identifier = Field(min_length=1, max_length=200)
    kind: Identifier = Field(description="provider (owns keys) or verifier (asks for verdicts)")
    store_content: bool = Field(default=False, description="Keep checked content in the audit log (default: only its hash).")


class KeyRequest(BaseModel):
    key: UnicodeText | None = Field(default=None, description="A key file's content (from `dojang keygen`) to upload.")
    export: bool = Field(default=False, description="When generating: return the key file once, to stamp locally too.")


@router.post("/tenants", status_code=201)
def create_tenant(
    body: TenantRequest, svc: Services = Depends(services), _: Principal = Depends(require_admin)
) -> dict[str, Any]:
    """Create a provider or verifier tenant; the response holds its first token (shown only once)."""
    if body.kind not in ("provider", "verifier"):
        raise HTTPException(422, "kind must be 'provider' or 'verifier'")
    tenant_id, token = svc.repo.create_tenant(body.name, body.kind, store_content=body.store_content)
    return {"tenant_id": tenant_id, "name": body.name, "kind": body.kind, "token": token}


@router.post("/tokens", status_code=201)
def create_token(svc: Services = Depends(services), principal: Principal = Depends(require_principal)) -> dict[str, Any]:
    """A new token for the caller's tenant (shown only once). A tenant holds at most
    ``DOJANG_MAX_TOKENS_PER_TENANT`` live tokens; its rate limit is shared by all of them."""
    cap = svc.settings.max_tokens_per_tenant
    if svc.repo.live_tokens(principal.tenant_id) >= cap:
        raise HTTPException(409, f"this tenant already holds {cap} live tokens, the most it may; revoke one first")
    return {"token": svc.repo.create_token(principal.tenant_id, "api")}


@router.get("/tokens")
def list_tokens(svc: Services = Depends(services), principal: Principal = Depends(require_principal)) -> dict[str, Any]:
    """The caller's tokens: ids, labels, when made and revoked (never the tokens themselves)."""
    tokens = svc.repo.list_tokens(principal.tenant_id)
    for t in tokens:
        t["current"] = t["token_id"] == principal.token_id
    return {"tokens": tokens}


@router.delete("/tokens/{token_id}")
def revoke_token(
    token_id: Identifier, svc: Services = Depends(services), principal: Principal = Depends(require_principal)
) -> dict[str, Any]:
    """Revoke one of the caller's tokens (the one in use too); it stops working at once."""
    if not svc.repo.revoke_token(principal.tenant_id, token_id):
        raise HTTPException(404, "no such live token for this tenant")
    return {"token_id": token_id, "revoked": True}


@router.get("/keys")
def list_keys(svc: Services = Depends(services), principal: Principal = Depends(require_provider)) -> dict[str, Any]:
    """The caller's watermark keys (ids and status; never the secrets)."""
    return {"keys": [k.to_dict() for k in svc.repo.list_keys(principal.tenant_id)]}


@router.post("/keys", status_code=201)
def add_key(
    body: KeyRequest, svc: Services = Depends(services), principal: Principal = Depends(require_provider)
) -> dict[str, Any]:
    """Upload a key file, or generate a key on the server (encrypted at rest under the master key)."""
    if body.key is not None:
        try:
            key = parse_key(body.key, source="uploaded key")
        except DojangKeyError as err:
            raise HTTPException(422, str(err)) from None
    else:
        key = generate_key()
    _room_for_a_key(svc, principal)
    info = svc.repo.add_key(principal.tenant_id, key)
    out = info.to_dict()
    if body.key is None and body.export:
        out["key_file"] = key.to_json()
    return out


def _room_for_a_key(svc: Services, principal: Principal) -> None:
    """Every detection tries every key, so a tenant's keys are capped (retired ones count until deleted)."""
    cap = svc.settings.max_keys_per_tenant
    if svc.repo.count_keys(principal.tenant_id) >= cap:
        raise HTTPException(409, f"this tenant already has {cap} watermark keys, the most it may; delete a retired one first")


def _owned(svc: Services, principal: Principal, key_id: str) -> None:
    if svc.repo.key_info(principal.tenant_id, key_id) is None:
        raise HTTPException(404, f"no key {key_id} for this tenant")


@router.post("/keys/{key_id}/retire")
def retire_key(
    key_id: Identifier, svc: Services = Depends(services), principal: Principal = Depends(require_provider)
) -> dict[str, Any]:
    """Stop stamping with a key; detection keeps trying it for old content."""
    _owned(svc, principal, key_id)
    info = svc.repo.retire_key(principal.tenant_id, key_id)
    assert info is not None
    return info.to_dict()


@router.post("/keys/{key_id}/rotate", status_code=201)
def rotate_key(
    key_id: Identifier, svc: Services = Depends(services), principal: Principal = Depends(require_provider)
) -> dict[str, Any]:
    """Retire ``key_id`` and generate its successor."""
    _owned(svc, principal, key_id)
    _room_for_a_key(svc, principal)
    retired = svc.repo.retire_key(principal.tenant_id, key_id)
    new = svc.repo.add_key(principal.tenant_id, generate_key())
    return {"retired": retired.to_dict() if retired else None, "new": new.to_dict()}


@router.delete("/keys/{key_id}")
def delete_key(
    key_id: Identifier, svc: Services = Depends(services), principal: Principal = Depends(require_provider)
) -> dict[str, Any]:
    """Delete a retired key: detection stops trying it (content marked with it no longer reads as
    this provider's). An active key must be retired first."""
    _owned(svc, principal, key_id)
    if not svc.repo.delete_key(principal.tenant_id, key_id):
        raise HTTPException(409, f"key {key_id} is active: retire it before deleting it")
    return {"key_id": key_id, "deleted": True}


@router.put("/signing-key")
async def put_signing_key(
    chain: UploadFile = File(...),
    key: UploadFile = File(...),
    svc: Services = Depends(services),
    principal: Principal = Depends(require_provider),
) -> dict[str, Any]:
    """Upload the tenant's C2PA signing chain (PEM, leaf first) and key; the chain is checked and
    the reasons it would be rejected are returned in words."""
    from dojang.provenance import check_chain, load_chain

    chain_pem = await chain.read(1_000_001)
    key_pem = await key.read(100_001)
    certs = load_chain(chain_pem)
    problems = check_chain(certs, private_key=key_pem)
    if problems:
        raise HTTPException(422, "the signing chain would be rejected: " + "; ".join(p.message for p in problems))
    from cryptography.hazmat.primitives import serialization

    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)  # DER uploads are stored as PEM too
    svc.repo.set_signing_key(principal.tenant_id, pem.decode(), key_pem)
    return {"ok": True, "certificates": len(certs)}


@router.get("/audit")
def audit_log(
    limit: int = 100, svc: Services = Depends(services), principal: Principal = Depends(require_principal)
) -> dict[str, Any]:
    """The caller's own audit entries, newest first."""
    return {"entries": svc.repo.audit_entries(principal.tenant_id, min(max(limit, 1), 1000))}
