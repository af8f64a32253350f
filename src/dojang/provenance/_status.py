"""c2pa-rs validation results as typed objects: every status it reports, the state of each CAWG
identity assertion, and the precise cause when a manifest cannot be read at all.

c2pa-rs reports three lists per manifest (``success``, ``informational``, ``failure``) and the same
three for each ingredient; :func:`parse_statuses` keeps all of them. An identity assertion
(``cawg.identity``) carries its own credential, checked apart from the claim signer's: its
statuses are the ``cawg.*`` codes whose URL names the assertion.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "IdentityAssertion",
    "ValidationStatus",
    "holds_manifest_store",
    "identity_assertions",
    "parse_statuses",
    "unreadable_cause",
]

KINDS = ("success", "informational", "failure")
# The manifest store's JUMBF description box: its type UUID starts with "c2pa" (C2PA 2.x, 11.1.4).
C2PA_STORE_UUID = b"c2pa" + bytes.fromhex("00110010800000aa00389b71")
# An untrusted identity credential is tolerated by c2pa-rs (the manifest stays Valid), as is an
# untrusted claim signer; they are told apart from a broken identity assertion.
IDENTITY_UNTRUSTED = frozenset({"cawg.x509.credential.untrusted", "cawg.ica.untrusted_issuer"})
IDENTITY_TRUSTED = frozenset({"cawg.x509.credential.trusted", "cawg.ica.credential_valid"})
# The messages of c2pa-rs's JUMBF parser (``JumbfParseError``), which the C API reports as "Verify".
_JUMBF_ERRORS = re.compile(
    r"unexpected end of file|invalid box|invalid JUMBF header|invalid JUMB box|invalid UUID|invalid JSON box|"
    r"invalid CBOR box|invalid JP2C box|invalid embedded file box|expected JUMD|invalid JUMD box|nesting depth"
)


@dataclass(frozen=True)
class ValidationStatus:
    """One status c2pa-rs reported: ``kind`` is ``success``, ``informational`` or ``failure``;
    ``ingredient`` is the ingredient assertion's URI for a status of an ingredient's manifest."""

    code: str
    kind: str
    url: str | None = None
    explanation: str | None = None
    ingredient: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "url": self.url,
            "explanation": self.explanation,
            "kind": self.kind,
            "ingredient": self.ingredient,
        }


@dataclass(frozen=True)
class IdentityAssertion:
    """A CAWG identity assertion and the state of its own credential: ``trusted``, ``valid`` (its
    signature checks, its trust was not evaluated), ``untrusted`` (its credential does not lead to
    a CAWG trust anchor) or ``invalid`` (it does not validate)."""

    label: str
    sig_type: str | None
    signer: str | None
    issuer: str | None
    state: str
    codes: tuple[str, ...]  # its cawg.* failure and informational codes

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "sig_type": self.sig_type,
            "signer": self.signer,
            "issuer": self.issuer,
            "state": self.state,
            "codes": list(self.codes),
        }


def _statuses(lists: Any, ingredient: str | None) -> list[ValidationStatus]:
    out: list[ValidationStatus] = []
    if not isinstance(lists, dict):
        return out
    for kind in KINDS:
        for s in lists.get(kind) or []:
            if isinstance(s, dict) and s.get("code"):
                out.append(ValidationStatus(str(s["code"]), kind, s.get("url"), s.get("explanation"), ingredient))
    return out


def parse_statuses(results: Any) -> tuple[ValidationStatus, ...]:
    """Every status in c2pa-rs's validation results: the active manifest's, then each ingredient's."""
    if not isinstance(results, dict):
        return ()
    out = _statuses(results.get("activeManifest"), None)
    for delta in results.get("ingredientDeltas") or []:
        if isinstance(delta, dict):
            out += _statuses(delta.get("validationDeltas"), delta.get("ingredientAssertionURI"))
    return tuple(out)


def identity_assertions(manifest: dict[str, Any], statuses: tuple[ValidationStatus, ...]) -> tuple[IdentityAssertion, ...]:
    """The manifest's CAWG identity assertions, each with the state its ``cawg.*`` statuses give it."""
    found = [a for a in manifest.get("assertions", []) if str(a.get("label", "")).startswith("cawg.identity")]
    cawg = [s for s in statuses if s.ingredient is None and s.code.startswith("cawg.")]
    out = []
    for assertion in found:
        label = str(assertion["label"])
        mine = [s for s in cawg if (s.url or "").endswith("/c2pa.assertions/" + label)]
        if len(found) == 1:  # a status that names no assertion can only be about this one
            mine += [s for s in cawg if s not in mine and "/c2pa.assertions/cawg.identity" not in (s.url or "")]
        failures = {s.code for s in mine if s.kind == "failure"}
        noted = {s.code for s in mine if s.kind != "success"}
        if failures - IDENTITY_UNTRUSTED:
            state = "invalid"
        elif noted & IDENTITY_UNTRUSTED:
            state = "untrusted"
        elif any(s.code in IDENTITY_TRUSTED for s in mine if s.kind == "success"):
            state = "trusted"
        else:
            state = "valid"
        data = assertion.get("data") or {}
        info = data.get("signature_info") or {}
        payload = data.get("signer_payload") or {}
        out.append(
            IdentityAssertion(
                label=label,
                sig_type=payload.get("sig_type"),
                signer=info.get("common_name"),
                issuer=info.get("issuer"),
                state=state,
                codes=tuple(dict.fromkeys(s.code for s in mine if s.kind != "success")),
            )
        )
    return tuple(out)


def holds_manifest_store(data: bytes) -> bool:
    """Whether the bytes hold a C2PA manifest store (its JUMBF description box's type UUID)."""
    return C2PA_STORE_UUID in data


def _jpeg_cut_short(data: bytes) -> bool | None:
    """True: the segments run past the end or the scan has no end marker; None: malformed."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF or data[pos + 1] < 0xC0:
            return None
        marker = data[pos + 1]
        if 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return None
        pos += 2 + length
        if marker == 0xDA:  # the entropy-coded scan follows; a complete file ends with EOI
            return b"\xff\xd9" not in data[pos:]
    return True


def _png_cut_short(data: bytes) -> bool | None:
    if data.endswith(b"IEND\xaeB`\x82"):
        return None  # the end is there: something in between is malformed
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if not data[pos + 4 : pos + 8].isalpha():
            return None
        pos += 12 + length
    return True


def _riff_cut_short(data: bytes) -> bool | None:
    (size,) = struct.unpack("<I", data[4:8])
    return True if size + 8 > len(data) else None


def _cut_short(data: bytes) -> bool:
    """Whether an image file ends inside its own structure (a truncated download or copy)."""
    if data[:3] == b"\xff\xd8\xff":
        return bool(_jpeg_cut_short(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return bool(_png_cut_short(data))
    if data[:4] == b"RIFF" and len(data) >= 12:
        return bool(_riff_cut_short(data))
    return False


def unreadable_cause(error: str, data: bytes | None) -> tuple[str, str]:
    """The dojang code (``manifest.unreadable.*``) and c2pa-rs's words for a manifest that c2pa-rs
    could not read at all. ``error`` is c2pa-rs's message (``"Type: text"``, as its C API words
    it); ``data`` the file's bytes, where there is one, to tell a truncated file from a malformed one."""
    kind, _, text = error.partition(": ")
    text = text or error
    if kind == "Other" and text.startswith(("asset could not be parsed", "error parsing")):
        cause = "truncated" if data is not None and _cut_short(data) else "asset"
    elif kind == "NotSupported":
        cause = "format"
    elif kind == "Verify" and _JUMBF_ERRORS.search(text):
        cause = "jumbf"
    elif kind in ("Verify", "Decoding", "Manifest", "ManifestNotFound"):
        cause = "multipleStores" if "more than one manifest store" in text else "claim"
    elif kind in ("Io", "FileNotFound"):
        cause = "io"
    elif kind in ("Remote", "RemoteManifest"):
        cause = "remote"
    else:
        cause = "other"
    return f"manifest.unreadable.{cause}", text
