"""`dojang stamp`: watermark an AI image, sign a C2PA manifest into it, file the manifest by content id."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from dojang.errors import ProvenanceError
from dojang.keys import Key
from dojang.provenance._c2pa import MIME, ManifestSigner, ai_image_manifest, read_manifest, sign_asset
from dojang.provenance._fingerprint import image_fingerprint
from dojang.provenance._store import ManifestRecord, ManifestStore, TextRecord, now_iso

__all__ = ["Stamped", "record_text", "stamp", "stamp_bytes"]


@dataclass(frozen=True)
class Stamped:
    """What :func:`stamp` wrote."""

    path: str
    content_id: str
    key_id: str
    signer: str
    generator: str
    manifest_label: str
    format: str
    psnr: float
    bytes: int
    store: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "content_id": self.content_id,
            "key_id": self.key_id,
            "signer": self.signer,
            "generator": self.generator,
            "manifest": self.manifest_label,
            "format": self.format,
            "psnr": round(self.psnr, 2),
            "bytes": self.bytes,
            "store": self.store,
        }


def stamp_bytes(
    src: str | os.PathLike[str] | bytes,
    fmt: str,
    *,
    key: Key,
    signer: ManifestSigner,
    store: ManifestStore,
    generator: str,
    title: str = "image",
    payload: bytes | None = None,
) -> tuple[bytes, Stamped]:
    """Watermark, sign and file one image; returns the signed file's bytes (``fmt``: JPEG, PNG, WEBP)."""
    from dojang.image import random_payload
    from dojang.image._api import encode_marked

    if fmt not in MIME:
        raise ProvenanceError(f"cannot stamp {fmt} files; use .jpg, .png or .webp")
    if not generator.strip():
        raise ProvenanceError("the generator name must not be empty")
    content_id = payload or random_payload()
    while payload is None and store.get_manifest(content_id.hex()) is not None:  # 64-bit ids: a collision is ~never
        content_id = random_payload()
    marked, info = encode_marked(src, fmt, key, content_id, name=title)
    when = now_iso()
    manifest = ai_image_manifest(
        title=title, generator=generator, payload=content_id, when=when, key_id=key.key_id, version=info.version
    )
    signed, manifest_bytes = sign_asset(marked, MIME[fmt], manifest, signer)
    view = read_manifest(signed, MIME[fmt])
    if view is None or view.state == "invalid":
        codes = ", ".join(view.failures) if view else "no manifest"
        raise ProvenanceError(f"the signed file did not validate ({codes}); nothing was written")
    with Image.open(io.BytesIO(signed)) as im:
        fingerprint = image_fingerprint(im)
    store.put_manifest(
        ManifestRecord(
            content_id=content_id.hex(),
            manifest=manifest_bytes,
            mime=MIME[fmt],
            fingerprint=fingerprint,
            key_id=key.key_id,
            signer=signer.name,
            generator=generator,
            created_at=when,
        )
    )
    return signed, Stamped(
        path=title,
        content_id=content_id.hex(),
        key_id=key.key_id,
        signer=signer.name,
        generator=generator,
        manifest_label=view.label,
        format=fmt,
        psnr=info.psnr,
        bytes=len(signed),
        store=store.location,
    )


def stamp(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    key: Key,
    signer: ManifestSigner,
    store: ManifestStore,
    generator: str = "unnamed AI generator",
) -> Stamped:
    """Stamp the image file ``src`` into ``dst`` (format from its suffix). ``dst`` appears only
    once the signed file validates and its manifest is in the store."""
    from dojang.image._io import format_for

    out = Path(dst)
    data, info = stamp_bytes(src, format_for(out), key=key, signer=signer, store=store, generator=generator, title=out.name)
    tmp = out.with_name(out.name + ".partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ProvenanceError(f"cannot write {out}: {err.strerror}") from None
    return replace(info, path=str(out))


def record_text(store: ManifestStore, text: str, *, key_id: str, scheme: str, model: str) -> TextRecord:
    """File a provenance entry for a watermarked text: key id, scheme, model, time and hashes of
    the text (exact SHA-256 and a MinHash that finds lightly edited copies); never the text."""
    import uuid

    from dojang.provenance._fingerprint import text_fingerprint
    from dojang.provenance._verify import text_sha256

    if not text.strip():
        raise ProvenanceError("cannot record an empty text")
    record = TextRecord(
        entry_id=f"txt-{uuid.uuid4().hex[:16]}",
        key_id=key_id,
        scheme=scheme,
        model=model,
        created_at=now_iso(),
        text_sha256=text_sha256(text),
        fingerprint=text_fingerprint(text),
        chars=len(text),
    )
    store.put_text(record)
    return record
