"""`dojang verify`: one answer for any file, from its C2PA manifest, its watermark and the store.

States, strongest first: ``trusted`` (a valid manifest whose chain leads to a configured trust
anchor), ``valid`` (valid, signer not trusted), ``invalid`` (tampered: not attributed to anyone),
``recovered`` (no manifest in the file, but the watermark's id found one in the store that
validates except for its binding to the re-encoded bytes, and the picture still matches its
fingerprint), ``no_credential`` (neither).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from dojang.errors import InputError
from dojang.keys import Key, KeyRing
from dojang.provenance._c2pa import MIME, ManifestView, read_manifest
from dojang.provenance._fingerprint import IMAGE_MATCH_BITS, hamming, image_fingerprint, text_fingerprint, text_similarity
from dojang.provenance._status import IdentityAssertion, ValidationStatus
from dojang.provenance._store import ManifestStore, TextRecord
from dojang.stats import Detection, Verdict

__all__ = ["STATES", "TEXT_MATCH_SIMILARITY", "Verification", "text_sha256", "verify", "verify_bytes"]

log = logging.getLogger(__name__)

STATES = ("trusted", "valid", "invalid", "recovered", "no_credential", "remote")
TEXT_MATCH_SIMILARITY = 0.5  # estimated shingle Jaccard above which an edited text matches its entry
MAX_VERIFY_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Verification:
    """The answer of :func:`verify`. ``to_dict`` gives the contract JSON."""

    state: str
    ai_generated: bool | None  # None: unknown (no credential and no mark is *not* "human-made")
    signer: dict[str, Any] | None
    signed_at: str | None
    actions: list[dict[str, Any]]
    watermark: Detection | None
    recovered_from: dict[str, Any] | None
    validation_codes: list[str]
    reason: str
    kind: str  # "image" or "text"
    embedded: ManifestView | None = field(default=None, repr=False)
    recovered: ManifestView | None = field(default=None, repr=False)
    remote_manifest: str | None = None  # the URL a file names for its manifest, when it was not fetched
    validation_statuses: list[ValidationStatus] = field(default_factory=list)  # all of c2pa-rs's, notes and successes too
    identity_assertions: list[IdentityAssertion] = field(default_factory=list)  # CAWG identity assertions of the manifest

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "ai_generated": self.ai_generated,
            "signer": self.signer,
            "signed_at": self.signed_at,
            "actions": self.actions,
            "watermark": self.watermark.to_dict() if self.watermark is not None else None,
            "recovered_from": self.recovered_from,
            "validation_codes": self.validation_codes,
            "reason": self.reason,
            "kind": self.kind,
            "remote_manifest": self.remote_manifest,
            "validation_statuses": [s.to_dict() for s in self.validation_statuses],
            "identity_assertions": [i.to_dict() for i in self.identity_assertions],
        }
        if self.embedded is not None and self.recovered is not None and self.embedded.label != self.recovered.label:
            out["embedded_manifest"] = self.embedded.summary()
            out["recovered_manifest"] = self.recovered.summary()
            if self.recovered.only_hard_binding_fails():  # it validates but for its binding to the original bytes
                out["recovered_manifest"]["state"] = "recovered"
        return out


def text_sha256(text: str) -> str:
    """Hash of a text as provenance entries record it: NFC, surrounding whitespace stripped."""
    from dojang.text import normalize

    return hashlib.sha256(normalize(text).strip().encode()).hexdigest()


def _no_credential(
    watermark: Detection | None, reason: str, kind: str, recovered_from: dict[str, Any] | None = None
) -> Verification:
    """Neither a manifest nor a recovered one: AI-generated only when a watermark says so, else unknown."""
    marked = watermark is not None and watermark.verdict is Verdict.DETECTED
    return Verification(
        state="no_credential",
        ai_generated=True if marked else None,
        signer=None,
        signed_at=None,
        actions=[],
        watermark=watermark,
        recovered_from=recovered_from,
        validation_codes=[],
        reason=reason,
        kind=kind,
    )


def _recovered_answer(recovered: ManifestView, watermark: Detection | None, recovered_from: dict[str, Any]) -> Verification:
    """An image without a manifest of its own whose watermark recovered one from the store."""
    return Verification(
        state="recovered",
        ai_generated=recovered.ai_generated,
        signer=_signer(recovered),
        signed_at=recovered.timestamped_at or recovered.claimed_at,
        actions=list(recovered.actions),
        watermark=watermark,
        recovered_from=recovered_from,
        validation_codes=list(recovered.failures),
        reason=f"no manifest in the file; the watermark's content id {recovered_from['content_id']} recovered the manifest "
        f"signed by {recovered.signer} from the store (only its binding to the original bytes fails:"
        " the file was re-encoded)",
        kind="image",
        recovered=recovered,
        validation_statuses=list(recovered.statuses),
        identity_assertions=list(recovered.identities),
    )


def _remote_answer(
    remote: ManifestView, watermark: Detection | None, recovered: ManifestView | None, recovered_from: dict[str, Any] | None
) -> Verification:
    """A file that names a remote manifest that was not fetched: the URL, and what the watermark
    and the store say (a manifest recovered through the watermark is shown as recovered)."""
    url = remote.remote_url
    note = f"the manifest lives at {url}; not fetched (remote manifests are fetched only from an allowed URL prefix)"
    if recovered is not None and recovered_from is not None:
        return replace(
            _recovered_answer(recovered, watermark, recovered_from),
            validation_codes=[*recovered.failures, *remote.failures],
            validation_statuses=[*recovered.statuses, *remote.statuses],
            reason=f"{note}; the watermark's content id {recovered_from['content_id']} recovered a manifest signed by "
            f"{recovered.signer} from the store",
            remote_manifest=url,
        )
    marked = watermark is not None and watermark.verdict is Verdict.DETECTED
    if marked:
        note += f"; a dojang watermark under key {watermark.key_id} (p = {watermark.p_value:.2g})"  # type: ignore[union-attr]
    return Verification(
        state="remote",
        ai_generated=True if marked else None,
        signer=None,
        signed_at=None,
        actions=[],
        watermark=watermark,
        recovered_from=None,
        validation_codes=list(remote.failures),
        reason=note,
        kind="image",
        embedded=remote,
        remote_manifest=url,
        validation_statuses=list(remote.statuses),
    )


def _signer(view: ManifestView) -> dict[str, Any]:
    return {"name": view.signer, "issuer": view.issuer, "trusted": view.trusted_signer}


def _sniff_image(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def verify(
    path: str | os.PathLike[str],
    *,
    keys: Key | KeyRing | list[Key] | None = None,
    trust_pem: str | None = None,
    store: ManifestStore | None = None,
    tokenizer: Any = None,
    remote_allow: Sequence[str] = (),
) -> Verification:
    """Verify a file: an image (JPEG, PNG, WebP) or a UTF-8 text file. A manifest that the file
    names by URL is fetched only from a URL that starts with one of ``remote_allow``; otherwise
    the answer is ``remote``, with the URL and whatever the watermark says."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory")
    if p.stat().st_size > MAX_VERIFY_BYTES:
        raise InputError(f"{p}: larger than the {MAX_VERIFY_BYTES // 2**20} MB limit")
    return verify_bytes(
        p.read_bytes(), name=str(p), keys=keys, trust_pem=trust_pem, store=store, tokenizer=tokenizer, remote_allow=remote_allow
    )


def verify_bytes(
    data: bytes,
    *,
    name: str = "upload",
    keys: Key | KeyRing | list[Key] | None = None,
    trust_pem: str | None = None,
    store: ManifestStore | None = None,
    tokenizer: Any = None,
    remote_allow: Sequence[str] = (),
) -> Verification:
    """Verify the bytes of a file (see :func:`verify`)."""
    if not data:
        raise InputError(f"{name}: the file is empty")
    ring = KeyRing.coerce(keys) if keys is not None else None
    fmt = _sniff_image(data)
    if fmt is not None:
        return _verify_image(data, fmt, name=name, keys=ring, trust_pem=trust_pem, store=store, remote_allow=remote_allow)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: neither a PNG, JPEG or WebP image nor UTF-8 text") from None
    return _verify_text(text, name=name, keys=ring, trust_pem=trust_pem, store=store, tokenizer=tokenizer)


def _verify_image(
    data: bytes,
    fmt: str,
    *,
    name: str,
    keys: KeyRing | None,
    trust_pem: str | None,
    store: ManifestStore | None,
    remote_allow: Sequence[str] = (),
) -> Verification:
    mime = MIME[fmt]
    embedded = read_manifest(data, mime, trust_pem=trust_pem, remote_allow=remote_allow)
    watermark: Detection | None = None
    unread = ""  # why the watermark could not be read: said beside the C2PA verdict, never instead of it
    if keys is not None:
        from dojang.image import ImageDetector

        try:
            watermark = ImageDetector(keys=keys).detect_bytes(data, name=name)
        except InputError as err:
            unread = f"; the watermark could not be read ({err})"
    recovered, recovered_from, why_not = _recover_image(data, mime, watermark, store, trust_pem)
    marked = watermark is not None and watermark.verdict is Verdict.DETECTED

    if embedded is not None and embedded.state == "remote":
        return _remote_answer(embedded, watermark, recovered, recovered_from)
    if embedded is not None:
        extra = ""
        if embedded.state in ("trusted", "valid") and recovered is not None and recovered.label != embedded.label:
            extra = "; the watermark points to a different stored manifest (both shown)"
        return _embedded_answer(embedded, watermark, recovered_from, kind="image", extra=extra + unread, recovered=recovered)
    if recovered is not None and recovered_from is not None:
        return _recovered_answer(recovered, watermark, recovered_from)
    if marked:
        reason = f"no C2PA manifest, but a dojang watermark under key {watermark.key_id} (p = {watermark.p_value:.2g})"  # type: ignore[union-attr]
        reason += f"; {why_not}" if why_not else ""
    elif watermark is not None and watermark.verdict is Verdict.INCONCLUSIVE:
        reason = f"no C2PA manifest; the watermark could not be read ({watermark.reason or 'inconclusive'})"
    elif unread:
        reason = "no C2PA manifest" + unread
    else:
        reason = (
            "no C2PA manifest and no watermark under the given keys"
            if keys is not None
            else "no C2PA manifest (no watermark keys given, so no watermark check)"
        )
        reason += "; this does not mean the image was made by a person"
    return _no_credential(watermark, reason, "image", recovered_from)


# Plain words for the C2PA failure codes a tampered or broken manifest shows (checked in the tests
# against what c2pa-rs reports for each kind of damage).
FAILURE_WORDS = {
    "assertion.dataHash.mismatch": "the image data changed after signing, or the manifest was moved from another file",
    "assertion.boxesHash.mismatch": "the file's data changed after signing",
    "assertion.bmffHash.mismatch": "the file's data changed after signing",
    "assertion.hashedURI.mismatch": "an assertion of the manifest (such as its actions) was edited after signing",
    "claimSignature.mismatch": "the signature does not match the claim (the signature or the claim was altered)",
    "claimSignature.missing": "the claim's signature is missing",
    "signingCredential.expired": "the signing certificate has expired, and the manifest carries no RFC 3161 timestamp "
    "proving it was signed while the certificate was valid",
    "signingCredential.revoked": "the signing certificate was revoked",
    "signingCredential.invalid": "the signing certificate does not meet the C2PA certificate profile "
    "(`dojang certs check` explains why)",
    "cawg.x509.credential.untrusted": "the CAWG identity assertion's credential is not trusted",
    "manifest.unreadable": "the manifest is too damaged to read",
    "manifest.unreadable.truncated": "the file is cut short (truncated): it ends inside its own structure, so its "
    "manifest cannot be read",
    "manifest.unreadable.asset": "the file is not a well-formed image of its type: its structure cannot be parsed, so "
    "its manifest cannot be read",
    "manifest.unreadable.format": "the file's format is not one that C2PA manifests can be read from",
    "manifest.unreadable.jumbf": "the manifest store is corrupt: its JUMBF boxes cannot be parsed",
    "manifest.unreadable.claim": "the manifest store was found, but its claim cannot be parsed",
    "manifest.unreadable.multipleStores": "the file carries more than one C2PA manifest store",
    "manifest.unreadable.io": "the file could not be read (an I/O error)",
    "manifest.unreadable.remote": "the remote manifest could not be fetched or read",
    "manifest.unreadable.other": "the manifest could not be read",
    "manifest.text.corruptedWrapper": "the text's invisible C2PA wrapper is damaged or incomplete (an editor or a "
    "copy-paste cut or changed part of it)",
    "manifest.text.multipleWrappers": "the text carries more than one C2PA wrapper (signed texts pasted together)",
}
# Where a text's manifest says something else than an image's for the same code.
TEXT_FAILURE_WORDS = {
    "assertion.dataHash.mismatch": "the text changed after signing, or the manifest was moved from another text",
}
# c2pa-rs reports a DER-encoded ECDSA signature as signingCredential.invalid with this explanation
# (and then claimSignature.mismatch): the signature's encoding is at fault, not the certificate.
DER_SIGNATURE = "P1363"
DER_WORDS = (
    "the ECDSA signature is DER-encoded (an ASN.1 SEQUENCE of r and s), but COSE requires the raw r||s form "
    "(IEEE P1363): the software that signed it wrote the wrong encoding; the certificate is not at fault"
)
DER_MISMATCH_WORDS = "the signature therefore cannot be checked against the claim"


def _failure_words(view: ManifestView, code: str, table: dict[str, str]) -> str:
    """Words for one failure code of ``view``, refined by c2pa-rs's explanation where the code
    alone covers several causes."""
    explanation = view.explanation(code)
    der = DER_SIGNATURE in view.explanation("signingCredential.invalid")
    if code == "signingCredential.invalid" and der:
        return DER_WORDS
    if code == "claimSignature.mismatch" and der:
        return DER_MISMATCH_WORDS
    words = table.get(code, f"validation failure {code}")
    if explanation and (code == "signingCredential.invalid" or code.startswith("manifest.unreadable")):
        words += f" (c2pa-rs: {explanation})"
    return words


def _invalid_reason(view: ManifestView, *, kind: str = "image") -> str:
    """Why a manifest is invalid, in words, with the codes; never attributes it to the signer."""
    failures = view.failures
    codes = [c for c in failures if c != "signingCredential.untrusted"] or list(failures)
    table = {**FAILURE_WORDS, **TEXT_FAILURE_WORDS} if kind == "text" else FAILURE_WORDS
    words = list(dict.fromkeys(_failure_words(view, c, table) for c in codes))
    ingredients = list(dict.fromkeys(s.code for s in view.statuses if s.ingredient is not None and s.kind == "failure"))
    if ingredients:
        words.append("an ingredient's manifest does not validate (" + ", ".join(ingredients) + ")")
    return (
        "the C2PA manifest does not validate: " + "; ".join(words) + " (" + ", ".join(codes) + "); "
        "it is not attributed to its claimed signer"
    )


def _identity_words(identities: tuple[IdentityAssertion, ...]) -> str:
    """What the manifest's CAWG identity assertions say, each about its own credential."""
    out = []
    for ia in identities:
        who = f"naming {ia.signer}" + (f" (issuer {ia.issuer})" if ia.issuer else "") if ia.signer else "its own credential"
        codes = f" ({', '.join(ia.codes)})" if ia.codes else ""
        if ia.state == "trusted":
            out.append(f"its CAWG identity assertion {ia.label}, {who}, is trusted")
        elif ia.state == "untrusted":
            out.append(
                f"its CAWG identity assertion {ia.label}, {who}, is NOT trusted: that credential does not lead to a "
                f"CAWG trust anchor, so the identity it names is unconfirmed{codes}"
            )
        elif ia.state == "invalid":
            out.append(
                f"its CAWG identity assertion {ia.label}, {who}, does not validate{codes}: the identity it names is not confirmed"
            )
        else:
            out.append(f"its CAWG identity assertion {ia.label}, {who}, validates; its credential's trust was not checked")
    return "".join("; " + w for w in out)


def _recover_image(
    data: bytes, mime: str, watermark: Detection | None, store: ManifestStore | None, trust_pem: str | None
) -> tuple[ManifestView | None, dict[str, Any] | None, str]:
    """Look the watermark's content id up in the store and check the manifest belongs to this picture."""
    if store is None or watermark is None or watermark.verdict is not Verdict.DETECTED or watermark.payload is None:
        return None, None, ""
    content_id = watermark.payload.hex()
    record = store.get_manifest(content_id)
    if record is None:
        return None, None, f"its content id {content_id} is not in the store {store.location}"
    with Image.open(io.BytesIO(data)) as im:
        distance = hamming(image_fingerprint(im), record.fingerprint)
    info = {
        "store": store.location,
        "content_id": content_id,
        "fingerprint_distance": distance,
        "fingerprint_threshold": IMAGE_MATCH_BITS,
        "created_at": record.created_at,
    }
    if distance > IMAGE_MATCH_BITS:
        return (
            None,
            None,
            (
                f"its content id {content_id} names a stored manifest for a different picture (fingerprint "
                f"distance {distance} > {IMAGE_MATCH_BITS} bits): the mark may have been copied, so nothing is recovered"
            ),
        )
    view = read_manifest(data, mime, trust_pem=trust_pem, manifest_data=record.manifest)
    if view is None:
        return None, None, "the stored manifest could not be read"
    if view.state == "invalid" and not view.only_hard_binding_fails():
        return None, None, "the stored manifest does not validate (" + ", ".join(view.failures) + ")"
    if view.soft_binding_payload() != watermark.payload:
        return None, None, "the stored manifest does not name this content id in its soft binding"
    info["manifest"] = view.label
    info["trusted"] = view.trusted_signer
    return view, info, ""


def _verify_text(
    text: str, *, name: str, keys: KeyRing | None, trust_pem: str | None, store: ManifestStore | None, tokenizer: Any
) -> Verification:
    if not text.strip():
        raise InputError(f"{name}: the text is empty")
    from dojang.provenance._textmanifest import read_text_manifest

    embedded, text = read_text_manifest(text, trust_pem=trust_pem)  # the watermark is read on the visible text
    if not text.strip():
        raise InputError(f"{name}: the text is empty")
    watermark: Detection | None = None
    if keys is not None:
        from dojang.text import TextDetector

        if tokenizer is None:
            from dojang.text.models import load_tokenizer

            tokenizer = load_tokenizer()
        watermark = TextDetector(keys=keys, tokenizer=tokenizer).detect(text)
    marked = watermark is not None and watermark.verdict is Verdict.DETECTED
    found = None
    if marked and store is not None and watermark is not None and watermark.key_id is not None:
        found = _match_text(text, watermark.key_id, store)
    recovered_from = None
    if found is not None and store is not None:
        entry, match = found
        recovered_from = {
            "store": store.location,
            "entry_id": entry.entry_id,
            "key_id": entry.key_id,
            "scheme": entry.scheme,
            "model": entry.model,
            "created_at": entry.created_at,
            **match,
        }
    if embedded is not None:
        return _embedded_text(embedded, watermark, recovered_from)
    if found is not None and recovered_from is not None:
        entry, match = found
        return Verification(
            state="recovered",
            ai_generated=True,
            signer=None,
            signed_at=entry.created_at,
            actions=[
                {
                    "action": "c2pa.created",
                    "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                    "softwareAgent": entry.model,
                    "when": entry.created_at,
                }
            ],
            watermark=watermark,
            recovered_from=recovered_from,
            validation_codes=[],
            reason=f"watermark detected under key {entry.key_id}; the store holds a matching provenance entry "
            f"({match['match']} match) for text generated by {entry.model} at {entry.created_at}",
            kind="text",
        )
    if marked:
        reason = f"a dojang text watermark under key {watermark.key_id} (p = {watermark.p_value:.2g})"  # type: ignore[union-attr]
        reason += "; no matching provenance entry in the store" if store is not None else ""
    elif watermark is not None and watermark.verdict is Verdict.INCONCLUSIVE:
        reason = f"the text is too short to decide ({watermark.tokens_scored} tokens scored)"
    else:
        reason = (
            "no watermark under the given keys" if keys is not None else "no watermark keys given"
        ) + "; this does not mean a person wrote the text"
    return _no_credential(watermark, reason, "text")


def _embedded_text(embedded: ManifestView, watermark: Detection | None, recovered_from: dict[str, Any] | None) -> Verification:
    """The answer for a text that carries a C2PA manifest in its invisible wrapper."""
    marked = watermark is not None and watermark.verdict is Verdict.DETECTED
    # which key is in `watermark`; the service shows that only to the key's owner
    extra = "; the text also carries a dojang text watermark" if marked else ""
    return _embedded_answer(embedded, watermark, recovered_from, kind="text", extra=extra)


def _embedded_answer(
    embedded: ManifestView,
    watermark: Detection | None,
    recovered_from: dict[str, Any] | None,
    *,
    kind: str,
    extra: str = "",
    recovered: ManifestView | None = None,
) -> Verification:
    """The answer when the file itself carries a manifest: its state (``extra`` is added to the
    reason of a valid one), or ``invalid`` with the reason in words and nothing attributed to the
    signer."""
    marked = watermark is not None and watermark.verdict is Verdict.DETECTED
    if embedded.state in ("trusted", "valid"):
        where = "embedded in the text, " if kind == "text" else ""
        reason = f"valid C2PA manifest {where}signed by {embedded.signer}; " + (
            "the signer is trusted"
            if embedded.trusted_signer
            else "the signer is NOT in your trust list, so who signed it is unconfirmed"
        )
        reason += _identity_words(embedded.identities)
        return Verification(
            state=embedded.state,
            ai_generated=embedded.ai_generated or (True if marked else None),
            signer=_signer(embedded),
            signed_at=embedded.timestamped_at or embedded.claimed_at,
            actions=list(embedded.actions),
            watermark=watermark,
            recovered_from=recovered_from,
            validation_codes=list(embedded.failures),
            reason=reason + extra,
            kind=kind,
            embedded=embedded,
            recovered=recovered,
            validation_statuses=list(embedded.statuses),
            identity_assertions=list(embedded.identities),
        )
    # tampered or broken: attribute nothing to the signer, as when there is no credential at all
    nothing = _no_credential(watermark, _invalid_reason(embedded, kind=kind) + extra, kind, recovered_from)
    return replace(
        nothing,
        state="invalid",
        validation_codes=list(embedded.failures),
        embedded=embedded,
        recovered=recovered,
        validation_statuses=list(embedded.statuses),
    )


def _match_text(text: str, key_id: str, store: ManifestStore) -> tuple[TextRecord, dict[str, Any]] | None:
    """The store's entry for ``text`` under ``key_id``: by exact hash, else by MinHash similarity."""
    entry = store.text_by_hash(text_sha256(text))
    if entry is not None and entry.key_id == key_id:
        return entry, {"match": "exact", "similarity": 1.0}
    fp = text_fingerprint(text)
    scored = [(text_similarity(fp, r.fingerprint), r) for r in store.texts_for_key(key_id)]
    if not scored:
        return None
    similarity, best = max(scored, key=lambda t: t[0])
    if similarity < TEXT_MATCH_SIMILARITY:
        return None
    return best, {"match": "similar", "similarity": round(similarity, 3)}
