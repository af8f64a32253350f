"""C2PA manifests carried inside a text, in the `c2pa-text` package's Unicode variation-selector
wrapper (C2PA's "unstructured text" embedding): sign a text, and find and validate the manifest
in one.

The wrapper is a U+FEFF followed by one variation selector per byte of the manifest store (about
3.6 UTF-8 bytes per manifest byte), appended to the text. The manifest's hard binding
(``c2pa.hash.data``, no exclusions) covers the NFC-normalised UTF-8 text *without* the wrapper, so
c2pa-rs validates it as it would a sidecar: an edited character makes it ``invalid``. Many editors,
messengers and web forms drop or mangle these invisible characters on copy-paste; then the text
has no manifest and only the watermark and the store entry are left.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from dojang.errors import ProvenanceError
from dojang.provenance._c2pa import ManifestSigner, ManifestView, ai_text_manifest, read_manifest, sign_detached, unreadable_view

__all__ = ["SignedText", "read_text_manifest", "sign_text", "strip_wrappers"]

log = logging.getLogger(__name__)

ZWNBSP = "\ufeff"
# A wrapper candidate: U+FEFF and a run of variation selectors (what c2pa-text decodes).
_CANDIDATE = re.compile("\ufeff[\ufe00-\ufe0f\U000e0100-\U000e01ef]+")
_LINE_ENDINGS = ("\n", "\r\n")


def _c2pa_text() -> Any:
    try:
        import c2pa_text
    except ImportError:  # pragma: no cover - depends on the environment
        raise ProvenanceError("C2PA manifests in text need the c2pa extra: pip install 'dojang[c2pa]'") from None
    return c2pa_text


@dataclass(frozen=True)
class SignedText:
    """What :func:`sign_text` made: the text with its manifest wrapped in, and what it says."""

    text: str  # the NFC-normalised text followed by the invisible wrapper
    label: str  # the manifest's label (urn:c2pa:...)
    signer: str
    generator: str
    key_id: str | None  # the watermark key the manifest names, if the text is watermarked
    wrapper_bytes: int  # UTF-8 bytes the invisible wrapper adds

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.label,
            "signer": self.signer,
            "generator": self.generator,
            "key_id": self.key_id,
            "wrapper_bytes": self.wrapper_bytes,
        }


def sign_text(
    text: str,
    *,
    signer: ManifestSigner,
    generator: str,
    key_id: str | None = None,
    scheme: str | None = None,
    title: str = "text",
    when: str | None = None,
) -> SignedText:
    """Sign a C2PA manifest for an AI text and wrap it into the text.

    ``key_id`` (and ``scheme``) say that the text carries dojang's text watermark under that key:
    the manifest then has a ``c2pa.watermarked`` action and a soft binding naming the key. The
    signed text is validated before it is returned."""
    from dojang.provenance._store import now_iso

    if not text.strip():
        raise ProvenanceError("cannot sign an empty text")
    if not generator.strip():
        raise ProvenanceError("the generator name must not be empty")
    if _CANDIDATE.search(text):
        raise ProvenanceError("the text already carries a C2PA wrapper (variation selectors after a U+FEFF); sign the plain text")
    visible = unicodedata.normalize("NFC", text)
    manifest = ai_text_manifest(title=title, generator=generator, when=when or now_iso(), key_id=key_id, scheme=scheme)
    store = sign_detached(manifest, signer, visible.encode("utf-8"))
    signed = visible + _c2pa_text().encode_wrapper(store)
    view, _ = read_text_manifest(signed)
    if view is None or view.state == "invalid":
        codes = ", ".join(view.failures) if view else "no manifest"
        raise ProvenanceError(f"the signed text did not validate ({codes})")
    return SignedText(
        text=signed,
        label=view.label,
        signer=signer.name,
        generator=generator,
        key_id=key_id,
        wrapper_bytes=len(signed.encode("utf-8")) - len(visible.encode("utf-8")),
    )


def strip_wrappers(text: str) -> str:
    """The text without any C2PA wrapper (or stray U+FEFF + variation-selector run)."""
    return _CANDIDATE.sub("", text)


def read_text_manifest(text: str, *, trust_pem: str | None = None) -> tuple[ManifestView | None, str]:
    """Find and validate the C2PA manifest wrapped into ``text``: (view or None, the visible text).

    None means the text carries no wrapper. A damaged wrapper, or more than one, is an ``invalid``
    view with c2pa-text's code (``manifest.text.corruptedWrapper``, ``manifest.text.multipleWrappers``).
    One line ending after the wrapper (what ``echo``, shells and editors add when they save) is not
    part of the signed text; any other change to the text is."""
    visible = strip_wrappers(text)
    if ZWNBSP not in text or visible == text:
        return None, text
    c2pa_text = _c2pa_text()
    report = c2pa_text.validate_text(text)
    if report.issues:
        codes = tuple(dict.fromkeys(i.code.value for i in report.issues))
        return unreadable_view(codes, tuple(i.message for i in report.issues)), visible
    try:
        found = c2pa_text.find_wrapper_info(text)
    except ValueError as err:  # more than one wrapper; validate_text reports that first
        return unreadable_view(("manifest.text.multipleWrappers",), (str(err),)), visible
    if found is None:
        # Variation selectors after a U+FEFF that are no C2PA wrapper (no magic): nothing to validate.
        log.info("variation selectors without a C2PA wrapper header")
        return None, visible
    manifest, start_byte, length_byte = found
    raw = text.encode("utf-8")
    before = raw[:start_byte].decode("utf-8")
    after = raw[start_byte + length_byte :].decode("utf-8")
    if after in _LINE_ENDINGS:
        after = ""
    signed_text = unicodedata.normalize("NFC", before + after)
    view = read_manifest(signed_text.encode("utf-8"), "text/plain", trust_pem=trust_pem, manifest_data=manifest)
    if view is None:  # pragma: no cover - a detached manifest is always read or reported unreadable
        view = unreadable_view(("manifest.unreadable.other",), ("the wrapped manifest could not be read",))
    return view, visible
