"""Provenance: signed C2PA Content Credentials, and durable credentials recovered from the watermark.

>>> from dojang.provenance import ManifestSigner, SQLiteStore, stamp, verify
>>> signer = ManifestSigner.from_files("certs/chain.pem", "certs/signing-key.pem")   # doctest: +SKIP
>>> stamp("gen.png", "gen-stamped.jpg", key=key, signer=signer, store=SQLiteStore())  # doctest: +SKIP
>>> verify("from-the-web.jpg", keys=key, store=SQLiteStore()).state                  # doctest: +SKIP
'recovered'

Signing and reading go through the official c2pa-python library (the ``c2pa`` extra); a text can
carry its manifest in invisible Unicode variation selectors (``sign_text``, the c2pa-text package).
"""

from dojang.provenance._c2pa import (
    SOFT_BINDING_ALG,
    TEXT_SOFT_BINDING_ALG,
    ManifestSigner,
    ManifestView,
    ai_image_manifest,
    ai_text_manifest,
    read_manifest,
    sign_asset,
)
from dojang.provenance._certs import ChainProblem, DevChain, check_chain, init_dev_chain, load_chain
from dojang.provenance._fingerprint import IMAGE_MATCH_BITS, hamming, image_fingerprint, text_fingerprint, text_similarity
from dojang.provenance._stamp import Stamped, record_text, stamp, stamp_bytes
from dojang.provenance._status import IdentityAssertion, ValidationStatus
from dojang.provenance._store import ManifestRecord, ManifestStore, SQLiteStore, TextRecord, default_store_path, open_store
from dojang.provenance._textmanifest import SignedText, read_text_manifest, sign_text
from dojang.provenance._verify import STATES, Verification, text_sha256, verify, verify_bytes

__all__ = [
    "IMAGE_MATCH_BITS",
    "SOFT_BINDING_ALG",
    "STATES",
    "TEXT_SOFT_BINDING_ALG",
    "ChainProblem",
    "DevChain",
    "IdentityAssertion",
    "ManifestRecord",
    "ManifestSigner",
    "ManifestStore",
    "ManifestView",
    "SQLiteStore",
    "SignedText",
    "Stamped",
    "TextRecord",
    "ValidationStatus",
    "Verification",
    "ai_image_manifest",
    "ai_text_manifest",
    "check_chain",
    "default_store_path",
    "hamming",
    "image_fingerprint",
    "init_dev_chain",
    "load_chain",
    "open_store",
    "read_manifest",
    "read_text_manifest",
    "record_text",
    "sign_asset",
    "sign_text",
    "stamp",
    "stamp_bytes",
    "text_fingerprint",
    "text_sha256",
    "text_similarity",
    "verify",
    "verify_bytes",
]
