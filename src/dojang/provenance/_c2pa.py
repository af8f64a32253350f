"""C2PA manifests through the official c2pa-python library: build, sign, read, validate.

c2pa-python is an optional dependency (``pip install 'dojang[c2pa]'``) and is imported only here.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dojang import __version__
from dojang.errors import ProvenanceError
from dojang.provenance._certs import check_chain, load_chain, load_private_key, sign_with_key, signing_algorithm
from dojang.provenance._status import (
    IdentityAssertion,
    ValidationStatus,
    holds_manifest_store,
    identity_assertions,
    parse_statuses,
    unreadable_cause,
)

__all__ = [
    "AI_SOURCE_TYPES",
    "SOFT_BINDING_ALG",
    "TEXT_SOFT_BINDING_ALG",
    "ManifestSigner",
    "ManifestView",
    "ai_image_manifest",
    "ai_text_manifest",
    "read_manifest",
    "remote_allowed",
    "remote_view",
    "sign_asset",
    "sign_detached",
    "unreadable_view",
]

log = logging.getLogger(__name__)

SOFT_BINDING_ALG = "io.dojang.image.1"  # the soft-binding algorithm id dojang's image watermark registers under
TEXT_SOFT_BINDING_ALG = "io.dojang.text.1"  # the text watermark's: a zero-bit mark, so its value is the key id
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = IPTC + "trainedAlgorithmicMedia"
AI_SOURCE_TYPES = frozenset(
    IPTC + t
    for t in ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia", "compositeSynthetic")
)
HARD_BINDING_FAILURES = frozenset({"assertion.dataHash.mismatch", "assertion.boxesHash.mismatch", "assertion.bmffHash.mismatch"})
UNTRUSTED = "signingCredential.untrusted"
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def _pin_native_library() -> None:
    """Make c2pa-python load the native library shipped in its own wheel.

    Its loader tries the current directory (and ./libs, ./artifacts) before its package folder,
    so ``dojang verify`` run in a folder of downloads would dlopen a planted ``libc2pa_c.so``.
    An absolute path in C2PA_LIBRARY_NAME is found first on every search path it tries."""
    if "c2pa" in sys.modules or os.environ.get("C2PA_LIBRARY_NAME"):
        return  # already loaded, or the user chose a library on purpose
    spec = importlib.util.find_spec("c2pa")
    name = {"win32": "c2pa_c.dll", "darwin": "libc2pa_c.dylib"}.get(sys.platform, "libc2pa_c.so")
    for base in (spec.submodule_search_locations or []) if spec is not None else []:
        for candidate in (Path(base) / "libs" / name, Path(base) / name):
            if candidate.is_file():
                os.environ["C2PA_LIBRARY_NAME"] = str(candidate.resolve())
                return


def _lib() -> Any:
    _pin_native_library()
    try:
        import c2pa
    except ImportError:  # pragma: no cover - depends on the environment
        raise ProvenanceError("C2PA support needs the c2pa extra: pip install 'dojang[c2pa]'") from None
    return c2pa


class ManifestSigner:
    """Signs manifests with a certificate chain and either a local key file or a callback.

    With a callback (``data -> signature``: raw r||s for ECDSA, as COSE wants; c2pa-rs converts a
    DER-encoded one to that form) the private key never enters dojang: that is how an HSM or a
    cloud KMS signs. ``tsa_url`` adds an RFC 3161 timestamp, which also fixes the signing time that
    validators check the certificate against."""

    def __init__(
        self,
        *,
        chain: str | bytes,
        key_pem: bytes | None = None,
        callback: Callable[[bytes], bytes] | None = None,
        alg: str | None = None,
        tsa_url: str | None = None,
    ) -> None:
        if (key_pem is None) == (callback is None):
            raise ProvenanceError("a signer needs exactly one of a signing key or a signing callback")
        self._chain_pem = chain.decode() if isinstance(chain, bytes) else chain
        certs = load_chain(self._chain_pem.encode())
        problems = check_chain(certs, private_key=key_pem)
        if problems:
            raise ProvenanceError("the signing certificate chain would be rejected: " + "; ".join(p.message for p in problems))
        self.alg = alg or signing_algorithm(certs[0])
        if self.alg == "unsupported":
            raise ProvenanceError("the signing certificate's key type is not supported by C2PA")
        self._key_pem = key_pem
        self._callback = callback
        self.tsa_url = tsa_url
        if tsa_url is not None and not tsa_url.startswith(("http://", "https://")):
            raise ProvenanceError(f"timestamp authority URL must start with http:// or https://, got {tsa_url!r}")
        cn = [a.value for a in certs[0].subject if a.oid.dotted_string == "2.5.4.3"]
        self.name = str(cn[0]) if cn else certs[0].subject.rfc4514_string()

    @classmethod
    def from_files(cls, chain_path: str, key_path: str, *, tsa_url: str | None = None) -> ManifestSigner:
        """A signer from a PEM chain file (leaf first) and a PEM private key file."""
        certs = load_chain(chain_path)
        pem = b"".join(c.public_bytes(_encoding_pem()) for c in certs)
        return cls(chain=pem, key_pem=load_private_key(key_path), tsa_url=tsa_url)

    def __repr__(self) -> str:  # never the key
        mode = "callback" if self._callback is not None else "key file"
        return f"ManifestSigner(name={self.name!r}, alg={self.alg!r}, via={mode}, tsa={self.tsa_url!r})"

    def native(self) -> Any:
        c2pa = _lib()
        alg = getattr(c2pa.C2paSigningAlg, self.alg.upper())
        if self._callback is not None:
            return c2pa.Signer.from_callback(self._callback, alg, self._chain_pem, self.tsa_url)
        key = self._key_pem
        assert key is not None
        # The built-in signer reserves less room in the file than a callback (2 KB against 12 KB).
        if self.alg.startswith("es") or self.alg == "ed25519" or self.alg.startswith("ps"):
            info = c2pa.C2paSignerInfo(self.alg.encode(), self._chain_pem.encode(), key, (self.tsa_url or "").encode() or None)
            return c2pa.Signer.from_info(info)
        return c2pa.Signer.from_callback(lambda d: sign_with_key(key, self.alg, d), alg, self._chain_pem, self.tsa_url)


def _encoding_pem() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM


def ai_image_manifest(*, title: str, generator: str, payload: bytes, when: str, key_id: str, version: int = 1) -> dict[str, Any]:
    """The manifest dojang signs for an AI image: created by ``generator`` (trainedAlgorithmicMedia),
    watermarked by dojang, and a soft binding that names the watermark's content id."""
    return {
        "claim_generator_info": [{"name": "dojang", "version": __version__}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": generator},
                            "when": when,
                        },
                        {
                            "action": "c2pa.watermarked",
                            "softwareAgent": {"name": "dojang", "version": __version__},
                            "parameters": {"description": f"invisible dojang image/v{version} watermark, key {key_id}"},
                            "when": when,
                        },
                    ]
                },
            },
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": SOFT_BINDING_ALG,
                    "blocks": [{"scope": {}, "value": base64.b64encode(payload).decode()}],
                },
            },
        ],
    }


def ai_text_manifest(
    *, title: str, generator: str, when: str, key_id: str | None = None, scheme: str | None = None
) -> dict[str, Any]:
    """The manifest dojang signs into an AI text: created by ``generator`` (trainedAlgorithmicMedia)
    and, when the text watermark is on (``key_id``), watermarked by dojang with a soft binding that
    names the key the mark is detected under (the text mark carries no payload of its own)."""
    actions: list[dict[str, Any]] = [
        {
            "action": "c2pa.created",
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": {"name": generator},
            "when": when,
        }
    ]
    assertions: list[dict[str, Any]] = [{"label": "c2pa.actions.v2", "data": {"actions": actions}}]
    if key_id is not None:
        actions.append(
            {
                "action": "c2pa.watermarked",
                "softwareAgent": {"name": "dojang", "version": __version__},
                "parameters": {"description": f"dojang text watermark ({scheme or 'default'}), key {key_id}"},
                "when": when,
            }
        )
        # c2pa-rs refuses a c2pa.watermarked action without a soft-binding assertion beside it.
        assertions.append(
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": TEXT_SOFT_BINDING_ALG,
                    "blocks": [{"scope": {}, "value": base64.b64encode(key_id.encode()).decode()}],
                },
            }
        )
    return {
        "claim_generator_info": [{"name": "dojang", "version": __version__}],
        "title": title,
        "format": "text/plain",
        "assertions": assertions,
    }


def _context(*, trust_pem: str | None = None, thumbnail: bool = False, remote_fetch: bool = False) -> Any:
    """c2pa-rs settings. ``remote_fetch``: c2pa-rs fetches a manifest that a file names by URL
    (XMP ``dcterms:provenance``) when reading it; off unless that URL is allowed, so that reading
    a file never makes a request the file chose."""
    c2pa = _lib()
    settings: dict[str, Any] = {"builder": {"thumbnail": {"enabled": thumbnail}}}
    settings["verify"] = {"remote_manifest_fetch": remote_fetch}
    if trust_pem:
        settings["trust"] = {"user_anchors": trust_pem}
        settings["verify"]["verify_trust"] = True
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def sign_asset(
    data: bytes, mime: str, manifest: dict[str, Any], signer: ManifestSigner, *, thumbnail: bool = False
) -> tuple[bytes, bytes]:
    """Sign ``manifest`` into the asset ``data``: returns (signed asset bytes, the manifest store bytes)."""
    c2pa = _lib()
    out = io.BytesIO()
    try:
        builder = c2pa.Builder(manifest, _context(thumbnail=thumbnail))
        manifest_bytes = builder.sign(signer.native(), mime, io.BytesIO(data), out)
    except c2pa.C2paError as err:
        raise ProvenanceError(f"C2PA signing failed: {err}") from None
    return out.getvalue(), bytes(manifest_bytes)


def sign_detached(manifest: dict[str, Any], signer: ManifestSigner, data: bytes) -> bytes:
    """Sign ``manifest`` with a hard binding over all of ``data`` (``c2pa.hash.data``, SHA-256, no
    exclusions) and return the manifest store (JUMBF) alone, for an asset c2pa-rs cannot embed into.

    c2pa-python 0.38 does not wrap c2pa-rs's data-hashed signing, though its native library exports
    it (``c2pa_builder_data_hashed_placeholder``, ``c2pa_builder_sign_data_hashed_embeddable``):
    they are called here through ctypes, on that same library, with the Builder and Signer that
    c2pa-python built. c2pa-rs builds, hashes and signs the claim; dojang only supplies the hash."""
    c2pa = _lib()
    from c2pa import c2pa as native  # c2pa-python's module, which holds the loaded library

    try:
        lib = ctypes.CDLL(native._lib._name)  # the same loaded library, with prototypes of our own
        placeholder = lib.c2pa_builder_data_hashed_placeholder
        sign = lib.c2pa_builder_sign_data_hashed_embeddable
        free = lib.c2pa_free
        check = native._check_ffi_operation_result
    except (AttributeError, OSError) as err:  # pragma: no cover - another c2pa-python build
        raise ProvenanceError(f"this c2pa-python build cannot sign detached manifests ({err})") from None
    out_ptr = ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))
    placeholder.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, out_ptr]
    placeholder.restype = ctypes.c_int64
    sign.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, out_ptr]
    sign.restype = ctypes.c_int64
    free.argtypes = [ctypes.c_void_p]
    data_hash = {"name": "jumbf manifest", "alg": "sha256", "hash": list(hashlib.sha256(data).digest()), "pad": []}
    fmt = b"application/c2pa"  # raw JUMBF, no container framing

    def call(fn: Any, *args: Any) -> bytes:
        result = ctypes.POINTER(ctypes.c_ubyte)()
        size = fn(*args, ctypes.byref(result))
        try:
            check(size, "C2PA signing failed: {}", check=lambda r: r < 0)
            return ctypes.string_at(result, size)
        finally:
            if result:
                free(ctypes.cast(result, ctypes.c_void_p))

    try:
        with c2pa.Builder(manifest, _context()) as builder, signer.native() as native_signer:
            reserve = native_signer.reserve_size()
            with builder._exclusive_native_call(), native_signer._native_call():
                b = ctypes.c_void_p(ctypes.cast(builder._handle, ctypes.c_void_p).value)
                s = ctypes.c_void_p(ctypes.cast(native_signer._handle, ctypes.c_void_p).value)
                # The placeholder reserves the signature's room; c2pa-rs refuses to sign without it.
                call(placeholder, b, reserve, fmt)
                return call(sign, b, s, json.dumps(data_hash).encode(), fmt, None)
    except c2pa.C2paError as err:
        raise ProvenanceError(f"C2PA signing failed: {err}") from None


@dataclass(frozen=True)
class ManifestView:
    """What a validated manifest says, in the terms `dojang verify` reports."""

    label: str
    state: str  # "trusted", "valid" or "invalid" (c2pa-rs: Trusted / Valid / Invalid)
    failures: tuple[str, ...]  # validation failure codes
    trusted_signer: bool  # the chain leads to a configured trust anchor (even when other checks fail)
    explanations: tuple[str, ...]
    signer: str | None
    issuer: str | None
    timestamped_at: str | None  # RFC 3161 time, when the manifest was timestamped
    claimed_at: str | None  # the "when" of the created action (claimed by the signer)
    actions: tuple[dict[str, Any], ...]
    soft_bindings: tuple[tuple[str, bytes | None], ...]
    generator: str | None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    remote_url: str | None = None  # state "remote": the URL the file names for its manifest, not fetched
    statuses: tuple[ValidationStatus, ...] = ()  # everything c2pa-rs reported: successes and notes too
    identities: tuple[IdentityAssertion, ...] = ()  # CAWG identity assertions, each with its credential's state

    @property
    def ai_generated(self) -> bool:
        return any(a.get("digitalSourceType") in AI_SOURCE_TYPES for a in self.actions)

    def only_hard_binding_fails(self) -> bool:
        """Everything validates except the binding to the file's bytes (a re-encoded copy)."""
        rest = set(self.failures) - {UNTRUSTED}
        return bool(rest) and rest <= HARD_BINDING_FAILURES

    def soft_binding_payload(self) -> bytes | None:
        for alg, value in self.soft_bindings:
            if alg == SOFT_BINDING_ALG:
                return value
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "state": self.state,
            "signer": self.signer,
            "issuer": self.issuer,
            "trusted": self.trusted_signer,
            "signed_at": self.timestamped_at or self.claimed_at,
            "generator": self.generator,
            "ai_generated": self.ai_generated,
            "actions": list(self.actions),
            "validation_codes": list(self.failures),
            "validation_statuses": [s.to_dict() for s in self.statuses],
            "identity_assertions": [i.to_dict() for i in self.identities],
        }

    def explanation(self, code: str) -> str:
        """c2pa-rs's explanation of the first failure with ``code`` ("" when it gave none)."""
        for s in self.statuses:
            if s.code == code and s.kind == "failure":
                return s.explanation or ""
        return ""


def _decode_binding(value: Any) -> bytes | None:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return None
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return bytes(value)
    return None


def _view(reader: Any) -> ManifestView:
    manifest = reader.get_active_manifest() or {}
    results = reader.get_validation_results() or {}
    active = results.get("activeManifest", {}) if isinstance(results, dict) else {}
    failures = tuple(dict.fromkeys(f.get("code", "") for f in active.get("failure", [])))
    explanations = tuple(dict.fromkeys(f.get("explanation", "") for f in active.get("failure", [])))
    trusted = any(s.get("code") == "signingCredential.trusted" for s in active.get("success", []))
    native_state = (reader.get_validation_state() or "Invalid").lower()
    actions: list[dict[str, Any]] = []
    bindings: list[tuple[str, bytes | None]] = []
    for assertion in manifest.get("assertions", []):
        label = assertion.get("label", "")
        data = assertion.get("data", {})
        if label.startswith("c2pa.actions"):
            for a in data.get("actions", []):
                agent = a.get("softwareAgent")
                entry = {
                    "action": a.get("action"),
                    "digitalSourceType": a.get("digitalSourceType"),
                    "softwareAgent": agent.get("name") if isinstance(agent, dict) else agent,
                    "when": a.get("when"),
                }
                actions.append({k: v for k, v in entry.items() if v is not None})
        elif label.startswith("c2pa.soft-binding"):
            for block in data.get("blocks", []):
                bindings.append((data.get("alg", ""), _decode_binding(block.get("value"))))
    created = [a for a in actions if a["action"] == "c2pa.created"]
    sig = manifest.get("signature_info", {})
    statuses = parse_statuses(results)
    return ManifestView(
        label=manifest.get("label", ""),
        state=native_state if native_state in ("trusted", "valid") else "invalid",
        failures=failures,
        trusted_signer=trusted,
        explanations=explanations,
        signer=sig.get("common_name"),
        issuer=sig.get("issuer"),
        timestamped_at=sig.get("time"),
        claimed_at=created[0].get("when") if created else None,
        actions=tuple(actions),
        soft_bindings=tuple(bindings),
        generator=created[0].get("softwareAgent") if created else None,
        raw=manifest,
        statuses=statuses,
        identities=identity_assertions(manifest, statuses),
    )


REMOTE_NOT_FETCHED = "manifest.remote.notFetched"  # dojang's code: the file names a remote manifest that was not fetched
_REMOTE = re.compile(r"must fetch remote manifests from url (\S+)")


def unreadable_view(failures: tuple[str, ...], explanations: tuple[str, ...]) -> ManifestView:
    """An ``invalid`` view for a manifest too damaged to read: nothing in it is attributed to anyone.
    ``explanations`` go with ``failures``, one for one."""
    return _unattributed("invalid", failures, explanations)


def _unattributed(
    state: str, failures: tuple[str, ...], explanations: tuple[str, ...], *, remote_url: str | None = None
) -> ManifestView:
    """A view with no signer, no actions and no bindings: a manifest that was not read."""
    statuses = tuple(ValidationStatus(c, "failure", None, e or None) for c, e in zip(failures, explanations, strict=False))
    return ManifestView(
        label="",
        state=state,
        failures=failures,
        trusted_signer=False,
        explanations=explanations,
        signer=None,
        issuer=None,
        timestamped_at=None,
        claimed_at=None,
        actions=(),
        soft_bindings=(),
        generator=None,
        remote_url=remote_url,
        statuses=statuses,
    )


def remote_view(url: str) -> ManifestView:
    """A file whose manifest lives at ``url``, which was not fetched: nothing is attributed."""
    return _unattributed("remote", (REMOTE_NOT_FETCHED,), (f"the manifest lives at {url}; not fetched",), remote_url=url)


def remote_allowed(url: str, allow: Sequence[str]) -> bool:
    """Whether ``url`` starts with one of the allowed prefixes (``https://host/`` or a path under
    it; a prefix without a path is taken as the host's root, so ``https://example.com`` does not
    admit ``https://example.com.evil.net``)."""
    for prefix in allow:
        if prefix.count("/") == 2:  # scheme://host: the host's root
            prefix += "/"
        if url.startswith(prefix):
            return True
    return False


def read_manifest(
    data: bytes,
    mime: str,
    *,
    trust_pem: str | None = None,
    manifest_data: bytes | None = None,
    remote_allow: Sequence[str] = (),
) -> ManifestView | None:
    """Validate the manifest embedded in ``data`` (or the detached ``manifest_data`` against it).

    Returns None when there is no manifest. A manifest that cannot be read at all comes back as an
    ``invalid`` view whose failure code names the cause (``manifest.unreadable.truncated``,
    ``.asset``, ``.format``, ``.jumbf``, ``.claim``, ``.multipleStores``, ``.io``, ``.remote``,
    ``.other``) and whose explanation is c2pa-rs's message. A file that c2pa-rs cannot parse and
    that holds no manifest store is a file without a manifest (None). A file that names a remote
    manifest comes back as a ``remote`` view with its URL, unless the URL starts with one of
    ``remote_allow``: only then is it fetched (by c2pa-rs) and validated."""
    c2pa = _lib()
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), manifest_data, _context(trust_pem=trust_pem))
    except c2pa.C2paError as err:
        remote = _REMOTE.search(str(err))
        if remote is None:
            return _unreadable(str(err), data if manifest_data is None else None)
        url = remote.group(1)
        if not remote_allowed(url, remote_allow):
            return remote_view(url)
        try:
            fetching = _context(trust_pem=trust_pem, remote_fetch=True)
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), manifest_data, fetching)
        except c2pa.C2paError as fetched:
            code, text = unreadable_cause(str(fetched), None)
            if code == "manifest.unreadable.other":
                code = "manifest.unreadable.remote"
            return unreadable_view((code,), (f"the remote manifest at {url}: {text}",))
    if reader is None:
        return None
    with reader:
        return _view(reader)


def _unreadable(error: str, data: bytes | None) -> ManifestView | None:
    """The view for a manifest that c2pa-rs could not read, by cause; None when c2pa-rs could not
    parse the file and the file holds no manifest store (a broken file without a manifest)."""
    code, text = unreadable_cause(error, data)
    log.info("manifest could not be read (%s): %s", code, text)
    container = code in ("manifest.unreadable.truncated", "manifest.unreadable.asset", "manifest.unreadable.format")
    if container and data is not None and not holds_manifest_store(data):
        return None
    return unreadable_view((code,), (text,))
