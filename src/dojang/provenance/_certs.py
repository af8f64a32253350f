"""Certificates for C2PA signing: a development chain, and plain-words checks of a user's chain.

c2pa-rs rejects a bad signing chain with one opaque "the certificate is invalid". :func:`check_chain`
applies the same profile (C2PA 2.x, section "Certificate profile", as enforced by c2pa-rs) and says
which rule failed. :func:`init_dev_chain` writes a chain that passes it: root CA -> intermediate CA
(path length 0) -> signing leaf, ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from dojang.errors import ProvenanceError

__all__ = ["ChainProblem", "DevChain", "check_chain", "init_dev_chain", "load_chain", "load_private_key"]

C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
# Extended key usages of a claim signer, as c2pa-rs 0.91 (c2pa-python 0.38) treats them, measured
# by signing and validating: it signs with any of these, but its validators, with their default
# trust settings, accept only emailProtection ("certificate missing required EKU" otherwise), so
# the leaf must carry emailProtection; the other two may sit beside it.
SIGNING_EKUS = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    C2PA_CLAIM_SIGNING: "C2PA claim signing",
    DOCUMENT_SIGNING: "documentSigning",
}
# The usages of a timestamp authority or an OCSP responder: c2pa-rs refuses a signer that carries
# one of them beside any other usage. Alone it would sign, but they do not name a content signer.
RESPONDER_EKUS = {ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping", ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning"}
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
DEV_NOTICE = "FOR TESTING ONLY: a development chain that no validator trusts by default; never sign real content with it."


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One reason a chain would be rejected. ``code`` is stable, ``message`` is for people."""

    code: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class DevChain:
    """Paths written by :func:`init_dev_chain`."""

    chain: Path  # leaf + intermediate, what the signer sends in the manifest (x5chain)
    signing_key: Path  # the leaf's private key, mode 0600
    root: Path  # the trust anchor to configure in validators
    intermediate: Path
    leaf: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dojang development (testing only)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue_certificate(
    *,
    subject: str,
    public_key: object,
    issuer_cert: x509.Certificate | None,
    issuer_key: object,
    ca: bool,
    path_length: int | None = None,
    ekus: Sequence[ObjectIdentifier] | None = None,
    key_identifiers: bool = True,
    not_before: dt.datetime | None = None,
    days: int = 365,
    hash_alg: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    """Issue one certificate. The knobs exist so tests can build each kind of broken chain."""
    now = dt.datetime.now(dt.UTC)
    start = not_before or now - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(subject))
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    )
    if ca:
        usage = dict(digital_signature=True, key_cert_sign=True, crl_sign=True)
    else:
        usage = dict(digital_signature=True, key_cert_sign=False, crl_sign=False)
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usage,
        ),
        critical=True,
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    if key_identifiers:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
        signer_public = issuer_cert.public_key() if issuer_cert is not None else public_key
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public),  # type: ignore[arg-type]
            critical=False,
        )
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else (hash_alg or hashes.SHA256())
    return builder.sign(issuer_key, algorithm)  # type: ignore[arg-type]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ProvenanceError(f"cannot write {path}: {err.strerror}") from None


def init_dev_chain(directory: str | os.PathLike[str], *, force: bool = False, days: int = 365) -> DevChain:
    """Write a development chain (root -> intermediate -> leaf, ECDSA P-256) into ``directory``.

    For testing only: nobody trusts this root unless told to (``--trust DIR/root.pem``)."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ProvenanceError(f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ProvenanceError(f"cannot create the directory {out}: {err.strerror}") from None
    paths = DevChain(
        chain=out / "chain.pem",
        signing_key=out / "signing-key.pem",
        root=out / "root.pem",
        intermediate=out / "intermediate.pem",
        leaf=out / "leaf.pem",
    )
    existing = [p for p in (paths.chain, paths.signing_key, paths.root) if p.exists()]
    if existing and not force:
        raise ProvenanceError(f"{existing[0]} already exists; pass force=True (--force) to replace the chain")
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = issue_certificate(
        subject="dojang dev root CA",
        public_key=root_key.public_key(),
        issuer_cert=None,
        issuer_key=root_key,
        ca=True,
        path_length=1,
        days=days * 5,
    )
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = issue_certificate(
        subject="dojang dev intermediate CA",
        public_key=inter_key.public_key(),
        issuer_cert=root,
        issuer_key=root_key,
        ca=True,
        path_length=0,
        days=days * 3,
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_certificate(
        subject="dojang dev signer",
        public_key=leaf_key.public_key(),
        issuer_cert=inter,
        issuer_key=inter_key,
        ca=False,
        ekus=[C2PA_CLAIM_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING],
        days=days,
    )
    _write(paths.root, _pem(root))
    _write(paths.intermediate, _pem(inter))
    _write(paths.leaf, _pem(leaf))
    _write(paths.chain, _pem(leaf) + _pem(inter))
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(paths.signing_key, key_pem, private=True)
    _write(
        out / "README.txt",
        (
            DEV_NOTICE + "\n\nchain.pem: signer chain (leaf, intermediate); signing-key.pem: its key;\n"
            "root.pem: the trust anchor to give `dojang verify --trust`.\n"
        ).encode(),
    )
    return paths


def load_chain(data: bytes | str | os.PathLike[str]) -> list[x509.Certificate]:
    """Certificates of a PEM file or PEM bytes, in file order. Raises ProvenanceError when none."""
    if isinstance(data, bytes):
        raw, name = data, "certificate data"
    else:
        path = Path(data)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ProvenanceError(f"certificate file {path} does not exist") from None
        except OSError as err:
            raise ProvenanceError(f"cannot read certificate file {path}: {err.strerror}") from None
        name = str(path)
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError:
        try:
            certs = [x509.load_der_x509_certificate(raw)]
        except ValueError:
            raise ProvenanceError(f"{name} holds no PEM or DER certificate") from None
    return certs


def load_private_key(path: str | os.PathLike[str]) -> bytes:
    """The PEM bytes of a private key file, checked to parse (never echoed in errors)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ProvenanceError(f"signing key file {p} does not exist") from None
    except OSError as err:
        raise ProvenanceError(f"cannot read signing key file {p}: {err.strerror}") from None
    try:
        serialization.load_pem_private_key(raw, password=None)
    except TypeError:
        raise ProvenanceError(f"signing key {p} is encrypted; give an unencrypted PEM or use a signing callback") from None
    except ValueError:
        raise ProvenanceError(f"{p} is not a PEM private key") from None
    return raw


def _describe(cert: x509.Certificate) -> str:
    try:
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return f"'{cn[0].value!s}'" if cn else cert.subject.rfc4514_string()
    except ValueError:  # pragma: no cover - malformed subject
        return "(unnamed certificate)"


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    key = parent.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(child.signature_hash_algorithm))  # type: ignore[arg-type]
        elif isinstance(key, rsa.RSAPublicKey):
            pad = child.signature_algorithm_parameters
            key.verify(child.signature, child.tbs_certificate_bytes, pad, child.signature_hash_algorithm)  # type: ignore[arg-type]
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _key_problem(cert: x509.Certificate, role: str) -> ChainProblem | None:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            return ChainProblem(
                "unsupported_key",
                f"the {role} {_describe(cert)} uses the elliptic curve {key.curve.name}; C2PA allows only "
                "P-256, P-384, P-521 (ES256/384/512) and Ed25519",
            )
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            return ChainProblem(
                "weak_key", f"the {role} {_describe(cert)} has a {key.key_size}-bit RSA key; at least 2048 bits are required"
            )
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        return ChainProblem(
            "unsupported_key",
            f"the {role} {_describe(cert)} has a {type(key).__name__} key; C2PA allows ECDSA (P-256/384/521), RSA-PSS, Ed25519",
        )
    algo = cert.signature_hash_algorithm
    if algo is not None and algo.name in ("sha1", "md5"):
        return ChainProblem(
            "weak_signature", f"the {role} {_describe(cert)} is signed with {algo.name.upper()}, which C2PA rejects"
        )
    return None


def _eku_name(oid: ObjectIdentifier) -> str:
    known = {**SIGNING_EKUS, **RESPONDER_EKUS}
    if oid in known:
        return known[oid]
    name = getattr(oid, "_name", "Unknown OID")
    return oid.dotted_string if name == "Unknown OID" else str(name)


def _eku_problems(leaf: x509.Certificate, oids: set[ObjectIdentifier]) -> list[ChainProblem]:
    """What is wrong with the signing leaf's extended key usages, judged as c2pa-rs signs and validates."""
    who = f"the signing certificate {_describe(leaf)}"
    have = ", ".join(sorted(_eku_name(o) for o in oids))
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in oids:
        return [ChainProblem("any_eku", f"{who} carries anyExtendedKeyUsage, which C2PA forbids")]
    responder = sorted(n for o, n in RESPONDER_EKUS.items() if o in oids)
    if responder and len(oids) > 1:
        return [
            ChainProblem(
                "responder_eku",
                f"{who} combines {' and '.join(responder)} with other extended key usages ({have}); c2pa-rs refuses such "
                "a signer: those usages belong to a timestamp authority or OCSP responder, so drop them",
            )
        ]
    if ExtendedKeyUsageOID.EMAIL_PROTECTION in oids:
        return []
    if oids & {C2PA_CLAIM_SIGNING, DOCUMENT_SIGNING}:
        return [
            ChainProblem(
                "no_email_eku",
                f"{who} has extended key usages ({have}) but not emailProtection: c2pa-rs signs with it, yet validators "
                "with the default trust settings report the manifest invalid ('certificate missing required EKU'); "
                "add emailProtection (1.3.6.1.5.5.7.3.4)",
            )
        ]
    if responder:
        return [
            ChainProblem(
                "wrong_eku",
                f"{who} carries only {responder[0]}, the usage of a timestamp authority or OCSP responder, not of a "
                "content signer; add emailProtection (1.3.6.1.5.5.7.3.4) instead",
            )
        ]
    return [
        ChainProblem(
            "wrong_eku",
            f"{who} has extended key usages ({have}) but none that C2PA validators accept for signing: add "
            "emailProtection (1.3.6.1.5.5.7.3.4), optionally with C2PA claim signing (1.3.6.1.4.1.62558.2.1)",
        )
    ]


def check_chain(
    certs: Sequence[x509.Certificate] | bytes | str | os.PathLike[str],
    *,
    at: dt.datetime | None = None,
    private_key: bytes | None = None,
) -> list[ChainProblem]:
    """Every reason c2pa-rs would reject ``certs`` as a signing chain (empty list: it passes).

    ``certs`` is the x5chain: the signing leaf first, then its issuers. ``at`` is the signing time
    (default now). ``private_key`` (PEM), when given, must belong to the leaf."""
    chain = list(certs) if isinstance(certs, Sequence) and not isinstance(certs, str | bytes) else load_chain(certs)  # type: ignore[arg-type]
    when = at or dt.datetime.now(dt.UTC)
    problems: list[ChainProblem] = []
    if not chain:
        return [ChainProblem("empty", "the file holds no certificate")]
    leaf = chain[0]

    # Order: each certificate must be issued by the next one.
    leaf_like = [i for i, c in enumerate(chain) if not getattr(_ext(c, x509.BasicConstraints), "ca", False)]
    if leaf_like and leaf_like[0] != 0:
        problems.append(
            ChainProblem(
                "wrong_order",
                f"the chain is in the wrong order: the signing (non-CA) certificate {_describe(chain[leaf_like[0]])} is "
                f"number {leaf_like[0] + 1}, but it must come first, followed by the CA that issued it",
            )
        )
        # Judge the rest as if the order were fixed, so the other messages are about real defects.
        chain = [chain[leaf_like[0]]] + [c for j, c in enumerate(chain) if j != leaf_like[0]]
        leaf = chain[0]
    else:
        for i in range(len(chain) - 1):
            if not _issued_by(chain[i], chain[i + 1]):
                problems.append(
                    ChainProblem(
                        "wrong_order",
                        f"certificate {i + 1} {_describe(chain[i])} was not issued by certificate {i + 2} "
                        f"{_describe(chain[i + 1])}: the chain must run leaf first, each certificate followed by its issuer",
                    )
                )
                break
    if len(chain) == 1 and leaf.issuer == leaf.subject:
        problems.append(ChainProblem("self_signed", f"{_describe(leaf)} is self-signed; C2PA needs a leaf issued by a CA"))

    # The signing leaf.
    bc = _ext(leaf, x509.BasicConstraints)
    if bc is not None and bc.ca:  # type: ignore[attr-defined]
        problems.append(
            ChainProblem(
                "leaf_is_ca",
                f"the signing certificate {_describe(leaf)} is a CA (basicConstraints CA:TRUE); a signer must not be one",
            )
        )
    ku = _ext(leaf, x509.KeyUsage)
    if ku is None:
        problems.append(
            ChainProblem(
                "no_key_usage", f"the signing certificate {_describe(leaf)} has no keyUsage extension; it needs digitalSignature"
            )
        )
    elif not ku.digital_signature:  # type: ignore[attr-defined]
        problems.append(
            ChainProblem(
                "no_digital_signature", f"the signing certificate {_describe(leaf)} lacks the digitalSignature key usage"
            )
        )
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    if eku is None:
        problems.append(
            ChainProblem(
                "no_eku",
                f"the signing certificate {_describe(leaf)} has no extended key usage; it needs emailProtection "
                "(1.3.6.1.5.5.7.3.4), optionally beside C2PA claim signing (1.3.6.1.4.1.62558.2.1) and documentSigning",
            )
        )
    else:
        problems.extend(_eku_problems(leaf, set(eku)))  # type: ignore[call-overload]
    if len(chain) > 1 and _ext(leaf, x509.AuthorityKeyIdentifier) is None:
        problems.append(ChainProblem("no_aki", f"the signing certificate {_describe(leaf)} has no authority key identifier"))

    # Every certificate: validity window, key type, signature hash; issuers must be CAs.
    for i, cert in enumerate(chain):
        role = "signing certificate" if i == 0 else "CA certificate"
        if when < cert.not_valid_before_utc:
            problems.append(
                ChainProblem(
                    "not_yet_valid",
                    f"the {role} {_describe(cert)} is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                )
            )
        if when > cert.not_valid_after_utc:
            problems.append(
                ChainProblem("expired", f"the {role} {_describe(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
            )
        if (kp := _key_problem(cert, role)) is not None:
            problems.append(kp)
        if i > 0:
            ibc = _ext(cert, x509.BasicConstraints)
            if ibc is None or not ibc.ca:  # type: ignore[attr-defined]
                problems.append(
                    ChainProblem(
                        "issuer_not_ca", f"certificate {i + 1} {_describe(cert)} issues the one before it but is not a CA"
                    )
                )

    if private_key is not None:
        try:
            key = serialization.load_pem_private_key(private_key, password=None)
        except (ValueError, TypeError):
            problems.append(ChainProblem("bad_private_key", "the signing key is not an unencrypted PEM private key"))
        else:
            pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            mine = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            if pub != mine:
                problems.append(
                    ChainProblem("key_mismatch", f"the signing key does not belong to the signing certificate {_describe(leaf)}")
                )
    return problems


def signing_algorithm(cert: x509.Certificate) -> str:
    """The C2PA algorithm name ("es256", "ed25519", "ps256", ...) for the leaf's key."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(key.curve.name, "unsupported")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey):
        return "ps256"
    return "unsupported"


def sign_with_key(private_key_pem: bytes, alg: str, data: bytes) -> bytes:
    """Sign ``data`` as C2PA's ``alg`` expects (COSE: raw r||s for ECDSA)."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        h = {"es256": hashes.SHA256(), "es384": hashes.SHA384(), "es512": hashes.SHA512()}[alg]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        h2 = {"ps256": hashes.SHA256(), "ps384": hashes.SHA384(), "ps512": hashes.SHA512()}[alg]
        return key.sign(data, padding.PSS(mgf=padding.MGF1(h2), salt_length=h2.digest_size), h2)
    raise ProvenanceError(f"unsupported signing key type {type(key).__name__}")
