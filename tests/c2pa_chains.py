"""Certificate chains for the provenance tests: the good development chain and one broken chain per
rule that C2PA validators enforce. Built in the test run, never stored."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from dojang.provenance._certs import C2PA_CLAIM_SIGNING, DOCUMENT_SIGNING, issue_certificate

GOOD_EKUS = [C2PA_CLAIM_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]


@dataclass
class Chain:
    chain_pem: bytes  # what the signer sends: leaf first
    key_pem: bytes
    root_pem: bytes
    intermediate: x509.Certificate  # and its key: to issue more certificates under the same root (a TSA's)
    intermediate_key: ec.EllipticCurvePrivateKey


def leaf_expiry(chain: Chain) -> dt.datetime:
    """When the signing leaf of ``chain`` stops being valid."""
    return x509.load_pem_x509_certificates(chain.chain_pem)[0].not_valid_after_utc


def _pem(*certs) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def build(defect: str | None = None, *, leaf_lifetime: dt.timedelta | None = None) -> Chain:
    """A root -> intermediate -> leaf chain, with ``defect`` applied to the leaf or the order.
    ``leaf_lifetime``: a leaf valid from a minute ago until that long from now."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = issue_certificate(
        subject="test root",
        public_key=root_key.public_key(),
        issuer_cert=None,
        issuer_key=root_key,
        ca=True,
        path_length=1,
        days=3650,
    )
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = issue_certificate(
        subject="test intermediate",
        public_key=inter_key.public_key(),
        issuer_cert=root,
        issuer_key=root_key,
        ca=True,
        path_length=0,
        days=3650,
    )
    leaf_key = ec.generate_private_key(ec.SECP256K1() if defect == "unsupported_key" else ec.SECP256R1())
    ekus: list | None = GOOD_EKUS  # type: ignore[type-arg]
    if defect == "no_eku":
        ekus = None
    elif defect == "wrong_eku":
        ekus = [ExtendedKeyUsageOID.SERVER_AUTH]
    elif defect == "any_eku":
        ekus = [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]
    elif defect == "no_email_eku":  # the C2PA-specific usages alone: signs, but validators reject it
        ekus = [C2PA_CLAIM_SIGNING, DOCUMENT_SIGNING]
    elif defect == "responder_eku":  # a timestamp authority's usage beside a signer's
        ekus = [ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.TIME_STAMPING]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=400) if defect == "expired" else None
    days: float = 30 if defect == "expired" else 365
    if leaf_lifetime is not None:
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
        days = (leaf_lifetime + dt.timedelta(minutes=1)) / dt.timedelta(days=1)
    leaf = issue_certificate(
        subject="test signer",
        public_key=leaf_key.public_key(),
        issuer_cert=inter,
        issuer_key=inter_key,
        ca=defect == "leaf_is_ca",
        path_length=0 if defect == "leaf_is_ca" else None,
        ekus=ekus,
        key_identifiers=defect != "no_aki",
        not_before=start,
        days=days,  # type: ignore[arg-type]
    )
    chain = _pem(inter, leaf) if defect == "wrong_order" else _pem(leaf, inter)
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Chain(chain_pem=chain, key_pem=key_pem, root_pem=_pem(root), intermediate=inter, intermediate_key=inter_key)


DEFECTS = [
    "no_eku",
    "wrong_eku",
    "any_eku",
    "no_email_eku",
    "responder_eku",
    "leaf_is_ca",
    "wrong_order",
    "expired",
    "no_aki",
    "unsupported_key",
]
