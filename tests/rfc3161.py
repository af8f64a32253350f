"""A minimal RFC 3161 timestamp authority for the provenance tests: answers on 127.0.0.1 with a
SHA-256 / ECDSA P-256 time-stamp token, DER written by hand (no ASN.1 library needed).

Only what c2pa-rs asks of a TSA: a granted status, a TSTInfo that echoes the message imprint and
the nonce, and a CMS SignedData with the contentType, messageDigest and signingCertificateV2
signed attributes, signed by a certificate with the (critical) timeStamping usage."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

TST_INFO = "1.2.840.113549.1.9.16.1.4"


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _set(*parts: bytes) -> bytes:
    return _tlv(0x31, b"".join(sorted(parts)))  # DER: SET OF in sorted order


def _int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def _octets(b: bytes) -> bytes:
    return _tlv(0x04, b)


def _oid(dotted: str) -> bytes:
    parts = [int(x) for x in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, body)


def _children(body: bytes) -> list[tuple[int, bytes]]:
    """(tag, whole encoding) of each element inside a constructed value (short forms suffice here)."""
    out, pos = [], 0
    while pos < len(body):
        start, n = pos, body[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(body[pos : pos + k], "big")
            pos += k
        pos += n
        out.append((body[start], body[start:pos]))
    return out


def _body(encoding: bytes) -> bytes:
    """The contents of one DER element (its tag and length dropped)."""
    n = encoding[1]
    return encoding[2 + (n & 0x7F) :] if n & 0x80 else encoding[2:]


SHA256 = _seq(_oid("2.16.840.1.101.3.4.2.1"))
ECDSA_SHA256 = _seq(_oid("1.2.840.10045.4.3.2"))


def tsa_certificate(
    issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A timestamping certificate (critical timeStamping EKU) issued by ``issuer``, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign"), False
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=dojang test TSA"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, encipher_only=False, decipher_only=False, **usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


class TimestampAuthority:
    """Signs time-stamp tokens; ``requests`` counts what it answered."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate]) -> None:
        self.cert, self.key, self.chain = cert, key, chain
        self.requests = 0

    def respond(self, request: bytes) -> bytes:
        self.requests += 1
        fields = _children(_body(request))
        imprint = fields[1][1]  # TimeStampReq: version, messageImprint, [reqPolicy], [nonce], [certReq]
        nonce = [raw for tag, raw in fields[2:] if tag == 0x02]
        when = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%SZ").encode()
        tst = _seq(_int(1), _oid("1.2.3.4.1"), imprint, _int(self.requests), _tlv(0x18, when), *nonce)
        cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        signed_attrs = _set(
            _seq(_oid("1.2.840.113549.1.9.3"), _set(_oid(TST_INFO))),
            _seq(_oid("1.2.840.113549.1.9.4"), _set(_octets(hashlib.sha256(tst).digest()))),
            _seq(_oid("1.2.840.113549.1.9.16.2.47"), _set(_seq(_seq(_seq(_octets(hashlib.sha256(cert_der).digest())))))),
        )
        signature = self.key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
        signer_info = _seq(
            _int(1),
            _seq(self.cert.issuer.public_bytes(), _int(self.cert.serial_number)),
            SHA256,
            b"\xa0" + signed_attrs[1:],  # [0] IMPLICIT: the same bytes under another tag
            ECDSA_SHA256,
            _octets(signature),
        )
        certs = b"".join(c.public_bytes(serialization.Encoding.DER) for c in [self.cert, *self.chain])
        signed_data = _seq(
            _int(3), _set(SHA256), _seq(_oid(TST_INFO), _tlv(0xA0, _octets(tst))), _tlv(0xA0, certs), _set(signer_info)
        )
        token = _seq(_oid("1.2.840.113549.1.7.2"), _tlv(0xA0, signed_data))
        return _seq(_seq(_int(0)), token)  # status: granted


@contextmanager
def serve(tsa: TimestampAuthority) -> Iterator[str]:
    """Run ``tsa`` on a free local port; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API names it so
            body = tsa.respond(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/tsa"
    finally:
        server.shutdown()
        server.server_close()
