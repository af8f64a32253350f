"""What `dojang verify` says about each C2PA validation outcome, from real signing and real
validation (c2pa-python): a DER-encoded ECDSA signature, a CAWG identity assertion whose
credential is not trusted, a manifest that cannot be read (by cause), and every status c2pa-rs
reports passed through to the JSON."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from PIL import Image

from dojang.cli.main import main
from dojang.provenance import ManifestSigner, ai_image_manifest, read_manifest, sign_asset, verify_bytes
from dojang.provenance._c2pa import _context
from dojang.provenance._status import identity_assertions, parse_statuses, unreadable_cause
from tests import c2pa_chains, rfc3161

c2pa = pytest.importorskip("c2pa")

MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
VERIFY_KEYS = {"state", "ai_generated", "signer", "signed_at", "actions", "watermark", "recovered_from", "validation_codes"}


def _picture(fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(5)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _manifest() -> dict:  # type: ignore[type-arg]
    return ai_image_manifest(title="t", generator="test-gen", payload=bytes(8), when="2026-01-01T00:00:00Z", key_id="dk-x")


@pytest.fixture(scope="module")
def chain() -> c2pa_chains.Chain:
    return c2pa_chains.build(None)


@pytest.fixture(scope="module")
def signed(chain: c2pa_chains.Chain) -> dict[str, bytes]:
    """A small picture signed into each format with the test chain."""
    signer = ManifestSigner(chain=chain.chain_pem, key_pem=chain.key_pem)
    return {fmt: sign_asset(_picture(fmt), mime, _manifest(), signer)[0] for fmt, mime in MIME.items()}


# -- a DER-encoded ECDSA signature -------------------------------------------------------------------
def _with_der_signature(chain: c2pa_chains.Chain) -> tuple[bytes, bytes]:
    """A JPEG signed by ``chain`` twice over the same COSE to-be-signed bytes: (as COSE wants, raw
    r||s; the same file with that signature replaced by its DER encoding). c2pa-rs turns a DER
    signature that a callback returns into r||s, so the DER one is put in the file afterwards; the
    COSE padding in the unprotected header shrinks by as much as the signature grows, so every box
    keeps its size."""
    key = serialization.load_pem_private_key(chain.key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ders: list[bytes] = []

    def callback(tbs: bytes) -> bytes:
        ders.append(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
        return ders[-1]

    good, _ = sign_asset(_picture(), "image/jpeg", _manifest(), ManifestSigner(chain=chain.chain_pem, callback=callback))
    der = ders[-1]
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    at = good.find(b"\x58\x40" + raw)  # CBOR byte string of 64 bytes: the COSE signature
    pad = good.rfind(b"pad\x59", 0, at)  # "pad": a byte string with a 2-byte length
    assert at > 0 and pad > 0
    (pad_len,) = struct.unpack(">H", good[pad + 4 : pad + 6])
    assert good[pad + 6 : pad + 6 + pad_len] == bytes(pad_len)
    grow = len(der) - len(raw)
    bad = (
        good[: pad + 4]
        + struct.pack(">H", pad_len - grow)
        + bytes(pad_len - grow)
        + good[pad + 6 + pad_len : at]
        + bytes([0x58, len(der)])
        + der
        + good[at + 2 + len(raw) :]
    )
    assert len(bad) == len(good)
    return good, bad


def test_der_encoded_signature_is_named_not_blamed_on_the_certificate(chain: c2pa_chains.Chain) -> None:
    good, bad = _with_der_signature(chain)
    trust = chain.root_pem.decode()
    assert verify_bytes(good, trust_pem=trust).state == "trusted"  # the same signature, in r||s, validates
    v = verify_bytes(bad, trust_pem=trust)
    assert v.state == "invalid" and v.signer is None
    # c2pa-rs's code for it is signingCredential.invalid; its explanation names the encoding
    assert "signingCredential.invalid" in v.validation_codes
    assert any("P1363" in (s.explanation or "") for s in v.validation_statuses if s.code == "signingCredential.invalid")
    assert "DER-encoded" in v.reason and "r||s" in v.reason and "the certificate is not at fault" in v.reason, v.reason
    assert "certificate profile" not in v.reason and "was altered" not in v.reason, v.reason


# -- a CAWG identity assertion whose credential is not trusted -----------------------------------------
def _with_identity_assertion(chain: c2pa_chains.Chain, identity: c2pa_chains.Chain) -> bytes:
    """A JPEG whose manifest ``chain`` signs and that carries a CAWG X.509 identity assertion
    signed by ``identity``. c2pa-rs adds the assertion when it builds the signer from settings
    (``signer`` + ``cawg_x509_signer``); c2pa-python 0.38 signs with a context's signer only when
    it was handed a Signer object, so the flag that tells it the context has one is set here."""
    settings = {
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"remote_manifest_fetch": False},
        "signer": {"local": {"alg": "es256", "sign_cert": chain.chain_pem.decode(), "private_key": chain.key_pem.decode()}},
        "cawg_x509_signer": {
            "local": {
                "alg": "es256",
                "sign_cert": identity.chain_pem.decode(),
                "private_key": identity.key_pem.decode(),
                "referenced_assertions": ["c2pa.actions"],
            }
        },
    }
    builder = c2pa.Builder(_manifest(), c2pa.Context(c2pa.Settings.from_dict(settings)))
    builder._has_context_signer = True
    out = io.BytesIO()
    builder.sign("image/jpeg", io.BytesIO(_picture()), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def with_identity(chain: c2pa_chains.Chain) -> bytes:
    return _with_identity_assertion(chain, c2pa_chains.build(None))


def test_untrusted_identity_assertion_does_not_make_a_trusted_signer_untrusted(chain, with_identity, tmp_path) -> None:  # type: ignore[no-untyped-def]
    v = verify_bytes(with_identity, trust_pem=chain.root_pem.decode())
    # c2pa-rs keeps the manifest Valid, not Trusted: its identity assertion's credential is not trusted.
    assert v.state == "valid" and v.signer is not None and v.signer["trusted"] is True
    assert "cawg.x509.credential.untrusted" in v.validation_codes
    assert "the signer is trusted" in v.reason and "NOT in your trust list" not in v.reason, v.reason
    assert "CAWG identity assertion cawg.identity" in v.reason and "is NOT trusted" in v.reason, v.reason
    [identity] = v.identity_assertions
    assert identity.state == "untrusted" and identity.signer == "test signer" and identity.sig_type == "cawg.x509.cose"
    data = v.to_dict()
    assert data["signer"]["trusted"] is True
    assert data["identity_assertions"] == [
        {
            "label": "cawg.identity",
            "sig_type": "cawg.x509.cose",
            "signer": "test signer",
            "issuer": identity.issuer,
            "state": "untrusted",
            "codes": ["cawg.x509.credential.untrusted"],
        }
    ]
    # The CLI says the same: a trusted signer, an untrusted identity assertion.
    (tmp_path / "id.jpg").write_bytes(with_identity)
    (tmp_path / "root.pem").write_bytes(chain.root_pem)
    res = CliRunner().invoke(main, ["verify", "--no-store", "--trust", str(tmp_path / "root.pem"), str(tmp_path / "id.jpg")])
    assert res.exit_code == 0, res.output
    assert "from a signer you trust, but an identity assertion in them is not trusted" in res.stdout
    assert "signer: test signer" in res.stdout and ", untrusted" not in res.stdout.split("signer: ", 1)[1].splitlines()[0]
    assert "identity assertion cawg.identity: test signer (untrusted)" in res.stdout


def test_untrusted_signer_and_identity_are_both_said(with_identity) -> None:  # type: ignore[no-untyped-def]
    v = verify_bytes(with_identity)
    assert v.state == "valid" and v.signer is not None and v.signer["trusted"] is False
    assert "NOT in your trust list" in v.reason and "is NOT trusted" in v.reason
    assert [i.state for i in v.identity_assertions] == ["untrusted"]


def test_identity_assertion_state_follows_its_own_codes(chain, with_identity) -> None:  # type: ignore[no-untyped-def]
    """The states an identity assertion can take, from the validation results of the real file
    with its credential status replaced as c2pa-rs words the other outcomes."""
    reader = c2pa.Reader.try_create("image/jpeg", io.BytesIO(with_identity), None, _context(trust_pem=chain.root_pem.decode()))
    with reader:
        manifest, results = reader.get_active_manifest(), reader.get_validation_results()
    active = results["activeManifest"]
    [untrusted] = [s for s in active["failure"] if s["code"] == "cawg.x509.credential.untrusted"]
    rest = [s for s in active["failure"] if s is not untrusted]

    def state(success: list, failure: list) -> str:  # type: ignore[type-arg]
        changed = {**results, "activeManifest": {**active, "success": active["success"] + success, "failure": rest + failure}}
        [identity] = identity_assertions(manifest, parse_statuses(changed))
        return identity.state

    assert state([], [untrusted]) == "untrusted"
    assert state([{**untrusted, "code": "cawg.x509.credential.trusted"}], []) == "trusted"
    assert state([], [{**untrusted, "code": "cawg.x509.signature.mismatch"}]) == "invalid"
    assert state([], [untrusted, {**untrusted, "code": "cawg.x509.credential.invalid"}]) == "invalid"
    assert state([], []) == "valid"


# -- a manifest that cannot be read, by cause ----------------------------------------------------------
def _unreadable(v, code: str, said: str) -> None:  # type: ignore[no-untyped-def]
    assert v.state == "invalid" and v.signer is None, v.to_dict()
    assert v.validation_codes == [code], v.validation_codes
    assert code.startswith("manifest.unreadable.")  # scripts that match the prefix keep working
    assert said in v.reason and "not attributed" in v.reason, v.reason
    [status] = v.validation_statuses
    assert status.code == code and status.kind == "failure" and status.explanation


@pytest.mark.parametrize("fmt", list(MIME))
def test_truncated_file_is_named_as_truncated(signed, fmt) -> None:  # type: ignore[no-untyped-def]
    data = signed[fmt]
    at = data.find(b"jumb")
    for cut in (data[: at + 2000], data[: len(data) * 3 // 4] if fmt != "JPEG" else data[: at + 40]):
        _unreadable(verify_bytes(cut), "manifest.unreadable.truncated", "the file is cut short (truncated)")


def test_truncated_file_without_a_manifest_has_no_credential() -> None:
    data = _picture("PNG")
    v = verify_bytes(data[: len(data) // 2])
    assert v.state == "no_credential" and v.validation_codes == [], v.to_dict()


def test_malformed_file_that_is_not_cut_short_is_named(signed) -> None:  # type: ignore[no-untyped-def]
    data = signed["PNG"]
    at = data.find(b"IDAT")  # a chunk length that runs past the end, though the file ends with IEND
    broken = data[: at - 4] + struct.pack(">I", 0x7FFFFFFF) + data[at:]
    _unreadable(verify_bytes(broken), "manifest.unreadable.asset", "not a well-formed image of its type")


def test_corrupt_jumbf_and_unparsable_claim_are_told_apart(signed) -> None:  # type: ignore[no-untyped-def]
    data = signed["JPEG"]
    label = data.find(b"c2pa.claim")
    boxes = data[:label] + bytes(10) + data[label + 10 :]  # a JUMBF description box without its label
    _unreadable(verify_bytes(boxes), "manifest.unreadable.jumbf", "its JUMBF boxes cannot be parsed")
    cbor = data.find(b"cbor", label) + 8  # the claim's CBOR, right after its box header
    claim = data[:cbor] + b"\xff" * 32 + data[cbor + 32 :]
    _unreadable(verify_bytes(claim), "manifest.unreadable.claim", "its claim cannot be parsed")


def test_a_manifest_store_in_a_format_c2pa_cannot_read_is_named(signed) -> None:  # type: ignore[no-untyped-def]
    view = read_manifest(b"BM\0" + signed["JPEG"][3:], "image/jpeg")  # the JPEG's signature bytes overwritten
    assert view is not None and view.state == "invalid" and view.failures == ("manifest.unreadable.format",)
    assert read_manifest(b"BM\0" + _picture()[3:], "image/jpeg") is None  # without a manifest store: no manifest


def test_an_io_error_is_named() -> None:
    # c2pa-python raises the C API's "Io: ..." as C2paError.Io; a BytesIO never fails, so the error is raised here.
    err = c2pa.C2paError.Io("Io: failed to fill whole buffer")
    assert unreadable_cause(str(err), None) == ("manifest.unreadable.io", "failed to fill whole buffer")


# -- every status passed through ---------------------------------------------------------------------------
def test_every_status_is_passed_through(chain: c2pa_chains.Chain) -> None:
    """A TSA under another root: c2pa-rs notes timeStamp.untrusted (informational) and still trusts
    the manifest; the JSON keeps it, the OCSP note and the successes, beside the old keys."""
    other = c2pa_chains.build(None)
    tsa = rfc3161.TimestampAuthority(*rfc3161.tsa_certificate(other.intermediate, other.intermediate_key), [other.intermediate])
    with rfc3161.serve(tsa) as url:
        signer = ManifestSigner(chain=chain.chain_pem, key_pem=chain.key_pem, tsa_url=url)
        data, _ = sign_asset(_picture(), "image/jpeg", _manifest(), signer)
    v = verify_bytes(data, trust_pem=chain.root_pem.decode())
    assert v.state == "trusted" and v.validation_codes == []
    out = json.loads(json.dumps(v.to_dict()))
    assert set(out) >= VERIFY_KEYS | {"reason", "kind", "remote_manifest"}
    statuses = out["validation_statuses"]
    assert all(set(s) == {"code", "url", "explanation", "kind", "ingredient"} for s in statuses)
    kinds = {s["code"]: s["kind"] for s in statuses}
    assert kinds["timeStamp.untrusted"] == "informational"
    assert kinds["signingCredential.ocsp.skipped"] == "informational"
    assert kinds["timeStamp.validated"] == "success" and kinds["claimSignature.validated"] == "success"
    assert kinds["signingCredential.trusted"] == "success" and kinds["assertion.dataHash.match"] == "success"
    assert out["identity_assertions"] == []


def test_ingredient_statuses_are_passed_through(chain: c2pa_chains.Chain, signed) -> None:  # type: ignore[no-untyped-def]
    opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["p"]}}
    manifest = {
        "claim_generator_info": [{"name": "test"}],
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [opened]}}],
    }
    builder = c2pa.Builder(manifest, _context())
    parent = {"title": "parent.jpg", "relationship": "parentOf", "label": "p"}
    builder.add_ingredient(parent, "image/jpeg", io.BytesIO(signed["JPEG"]))
    out = io.BytesIO()
    with ManifestSigner(chain=chain.chain_pem, key_pem=chain.key_pem).native() as signer:
        builder.sign(signer, "image/jpeg", io.BytesIO(_picture()), out)
    v = verify_bytes(out.getvalue(), trust_pem=chain.root_pem.decode())
    assert v.state == "trusted"
    ingredient = [s for s in v.to_dict()["validation_statuses"] if s["ingredient"] is not None]
    assert {"ingredient.manifest.validated"} <= {s["code"] for s in ingredient}
    assert all("c2pa.ingredient" in s["ingredient"] for s in ingredient)


def test_an_unreadable_manifest_keeps_its_status_in_the_json(signed) -> None:  # type: ignore[no-untyped-def]
    data = signed["WEBP"]
    out = verify_bytes(data[: data.find(b"jumb") + 2000]).to_dict()
    assert out["validation_codes"] == ["manifest.unreadable.truncated"]
    [status] = out["validation_statuses"]
    assert status["code"] == "manifest.unreadable.truncated" and status["kind"] == "failure" and status["explanation"]
