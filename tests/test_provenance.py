"""C2PA provenance with real signing and real validation (c2pa-python), certificates generated in
the run: stamp -> trusted/valid, tamper -> invalid, strip + re-encode -> recovered through the
watermark, a copied watermark -> not recovered, broken chains -> explained."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from dojang.errors import ProvenanceError
from dojang.image import embed, random_payload
from dojang.provenance import (
    IMAGE_MATCH_BITS,
    SOFT_BINDING_ALG,
    ManifestSigner,
    SQLiteStore,
    check_chain,
    hamming,
    image_fingerprint,
    init_dev_chain,
    read_manifest,
    sign_asset,
    stamp,
    stamp_bytes,
    verify,
    verify_bytes,
)
from dojang.provenance._c2pa import TRAINED_ALGORITHMIC_MEDIA
from dojang.provenance._certs import sign_with_key
from tests import c2pa_chains, tamper
from tests.helpers import fixed_key

c2pa = pytest.importorskip("c2pa")
skdata = pytest.importorskip("skimage.data")

EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("prov")
    chain = init_dev_chain(root / "certs")
    signer = ManifestSigner.from_files(str(chain.chain), str(chain.signing_key))
    store = SQLiteStore(root / "store.sqlite3")
    Image.fromarray(skdata.astronaut()).save(root / "astronaut.png")
    Image.fromarray(skdata.coffee()).save(root / "coffee.png")
    Image.fromarray(skdata.chelsea()).save(root / "chelsea.jpg", quality=92)
    return {"root": root, "chain": chain, "signer": signer, "store": store, "key": fixed_key(1), "trust": chain.root.read_text()}


@pytest.fixture(scope="module")
def stamped(env):  # type: ignore[no-untyped-def]
    """The astronaut stamped into each format."""
    out = {}
    for fmt, ext in EXT.items():
        dst = env["root"] / f"stamped{ext}"
        info = stamp(
            env["root"] / "astronaut.png",
            dst,
            key=env["key"],
            signer=env["signer"],
            store=env["store"],
            generator="test-imagegen 1.0",
        )
        out[fmt] = (dst, info)
    return out


# -- certificates -----------------------------------------------------------------------------------
def test_dev_chain_passes_the_profile_and_keeps_the_key_private(env) -> None:  # type: ignore[no-untyped-def]
    chain = env["chain"]
    assert check_chain(chain.chain, private_key=chain.signing_key.read_bytes()) == []
    assert oct(chain.signing_key.stat().st_mode & 0o777) == "0o600"
    assert "TESTING ONLY" in (chain.chain.parent / "README.txt").read_text()
    with pytest.raises(ProvenanceError, match="already exists"):
        init_dev_chain(chain.chain.parent)


CHAIN_WORDS = {
    "no_eku": "has no extended key usage",
    "wrong_eku": "none that C2PA validators accept",
    "any_eku": "anyExtendedKeyUsage, which C2PA forbids",
    "no_email_eku": "but not emailProtection",
    "responder_eku": "combines timeStamping with other extended key usages",
    "leaf_is_ca": "is a CA (basicConstraints CA:TRUE)",
    "wrong_order": "the chain is in the wrong order",
    "expired": "expired on",
    "no_aki": "has no authority key identifier",
    "unsupported_key": "uses the elliptic curve secp256k1",
}


@pytest.mark.parametrize("defect", c2pa_chains.DEFECTS)
def test_each_broken_chain_is_rejected_by_c2pa_and_explained(defect, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ch = c2pa_chains.build(defect)
    # The real library refuses to sign with it, and says only something opaque.
    signer = c2pa.Signer.from_callback(
        lambda d: sign_with_key(ch.key_pem, "es256", d) if defect != "unsupported_key" else bytes(64),
        c2pa.C2paSigningAlg.ES256,
        ch.chain_pem.decode(),
        None,
    )
    manifest = {
        "claim_generator_info": [{"name": "t"}],
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]},
            }
        ],
    }
    src = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 200)).save(src, "JPEG")
    with pytest.raises(c2pa.C2paError):
        c2pa.Builder(manifest).sign(signer, "image/jpeg", io.BytesIO(src.getvalue()), io.BytesIO())
    # dojang names the rule, in words.
    problems = check_chain(ch.chain_pem)
    assert [p.code for p in problems] == [defect]
    assert CHAIN_WORDS[defect] in problems[0].message, problems[0].message
    with pytest.raises(ProvenanceError, match="would be rejected") as err:
        ManifestSigner(chain=ch.chain_pem, key_pem=ch.key_pem)
    assert ch.key_pem.decode().splitlines()[1] not in str(err.value)


def test_the_good_test_chain_really_signs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ch = c2pa_chains.build(None)
    assert check_chain(ch.chain_pem) == []
    signer = ManifestSigner(chain=ch.chain_pem, key_pem=ch.key_pem)
    src = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 200)).save(src, "JPEG")
    from dojang.provenance import ai_image_manifest

    manifest = ai_image_manifest(title="t.jpg", generator="g", payload=bytes(8), when="2026-01-01T00:00:00Z", key_id="dk-x")
    signed, _ = sign_asset(src.getvalue(), "image/jpeg", manifest, signer)
    view = read_manifest(signed, "image/jpeg", trust_pem=ch.root_pem.decode())
    assert view is not None and view.state == "trusted"


def test_key_that_does_not_match_the_leaf_is_named(env) -> None:  # type: ignore[no-untyped-def]
    other = c2pa_chains.build(None)
    problems = check_chain(env["chain"].chain, private_key=other.key_pem)
    assert [p.code for p in problems] == ["key_mismatch"]


# -- stamping ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", list(EXT))
def test_stamped_file_is_trusted_with_the_anchor_and_valid_without(env, stamped, fmt) -> None:  # type: ignore[no-untyped-def]
    path, info = stamped[fmt]
    trusted = verify(path, trust_pem=env["trust"])
    assert trusted.state == "trusted" and trusted.signer == {
        "name": "dojang dev signer",
        "issuer": trusted.signer["issuer"],
        "trusted": True,
    }
    assert trusted.ai_generated is True
    created = [a for a in trusted.actions if a["action"] == "c2pa.created"]
    assert created[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert created[0]["softwareAgent"] == "test-imagegen 1.0"
    assert any(a["action"] == "c2pa.watermarked" for a in trusted.actions)
    assert trusted.validation_codes == []
    view = trusted.embedded
    assert view is not None and view.soft_binding_payload() == bytes.fromhex(info.content_id)
    assert (SOFT_BINDING_ALG, bytes.fromhex(info.content_id)) in view.soft_bindings
    assert "thumbnail" not in view.raw  # thumbnails are off by default

    untrusted = verify(path)
    assert untrusted.state == "valid" and untrusted.signer is not None and untrusted.signer["trusted"] is False
    assert "signingCredential.untrusted" in untrusted.validation_codes
    stranger = verify(path, trust_pem=c2pa_chains.build(None).root_pem.decode())  # an anchor, but not this chain's
    assert stranger.state == "valid" and stranger.signer is not None and stranger.signer["trusted"] is False

    record = env["store"].get_manifest(info.content_id)
    assert record is not None and record.generator == "test-imagegen 1.0" and record.mime == MIME[fmt]


def test_stamp_overhead_is_small_without_thumbnails(env, stamped) -> None:  # type: ignore[no-untyped-def]
    path, _ = stamped["JPEG"]
    with Image.open(path) as im:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=95, subsampling=0)
    assert os.path.getsize(path) - len(buf.getvalue()) < 20_000


def test_verify_with_the_key_reports_the_watermark(env, stamped) -> None:  # type: ignore[no-untyped-def]
    path, info = stamped["PNG"]
    v = verify(path, keys=env["key"], trust_pem=env["trust"], store=env["store"])
    assert v.state == "trusted"
    assert v.watermark is not None and v.watermark.payload is not None and v.watermark.payload.hex() == info.content_id
    d = v.to_dict()
    assert set(d) >= {
        "state",
        "ai_generated",
        "signer",
        "signed_at",
        "actions",
        "watermark",
        "recovered_from",
        "validation_codes",
    }
    assert "embedded_manifest" not in d  # embedded and recovered manifests are the same one


def test_callback_signer_keeps_the_key_outside(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    key_pem = env["chain"].signing_key.read_bytes()
    calls = []

    def hsm(data: bytes) -> bytes:  # stands in for an HSM/KMS call
        calls.append(len(data))
        return sign_with_key(key_pem, "es256", data)

    signer = ManifestSigner(chain=env["chain"].chain.read_bytes(), callback=hsm)
    assert "BEGIN" not in repr(signer) and "callback" in repr(signer)
    info = stamp(env["root"] / "coffee.png", tmp_path / "c.jpg", key=env["key"], signer=signer, store=env["store"])
    assert calls and verify(tmp_path / "c.jpg", trust_pem=env["trust"]).state == "trusted"
    assert info.generator == "unnamed AI generator"


def test_expired_chain_refuses_to_stamp_and_writes_nothing(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from dojang.cli import main
    from dojang.keys import save_key
    from tests.helpers import one_error_line

    ch = c2pa_chains.build("expired")
    with pytest.raises(ProvenanceError, match="expired"):
        ManifestSigner(chain=ch.chain_pem, key_pem=ch.key_pem)
    (tmp_path / "chain.pem").write_bytes(ch.chain_pem)
    (tmp_path / "key.pem").write_bytes(ch.key_pem)
    save_key(env["key"], tmp_path / "wm.key")
    args = ["stamp", "--key", str(tmp_path / "wm.key"), "--cert", str(tmp_path / "chain.pem")]
    args += ["--signing-key", str(tmp_path / "key.pem"), "--store", str(tmp_path / "s.db")]
    res = CliRunner().invoke(main, [*args, str(env["root"] / "coffee.png"), str(tmp_path / "x.jpg")])
    assert "expired on" in one_error_line(res)
    assert not (tmp_path / "x.jpg").exists() and not (tmp_path / "x.jpg.partial").exists()


def test_timestamped_manifest_outlives_its_certificate(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With an RFC 3161 TSA (a local one) the signing time is the TSA's, and validators judge the
    certificate at that time: after it expires the file stays trusted and a copy still recovers."""
    import datetime as dt
    import time

    from tests import rfc3161

    ch = c2pa_chains.build(None, leaf_lifetime=dt.timedelta(seconds=8))
    tsa = rfc3161.TimestampAuthority(*rfc3161.tsa_certificate(ch.intermediate, ch.intermediate_key), [ch.intermediate])
    trust = ch.root_pem.decode()
    dst = tmp_path / "timestamped.jpg"
    with rfc3161.serve(tsa) as url:
        signer = ManifestSigner(chain=ch.chain_pem, key_pem=ch.key_pem, tsa_url=url)
        info = stamp(env["root"] / "coffee.png", dst, key=env["key"], signer=signer, store=env["store"])
    assert tsa.requests == 1
    expires = c2pa_chains.leaf_expiry(ch)
    if dt.datetime.now(dt.UTC) >= expires:  # pragma: no cover - only on a badly overloaded machine
        pytest.skip("stamping outlived the 8-second certificate")
    v = verify(dst, trust_pem=trust)
    assert v.state == "trusted" and v.embedded is not None and v.embedded.timestamped_at is not None
    assert v.signed_at == v.embedded.timestamped_at  # the TSA's time, not the time the signer claims
    time.sleep((expires - dt.datetime.now(dt.UTC)).total_seconds() + 1.5)
    after = verify(dst, trust_pem=trust)
    assert after.state == "trusted" and after.validation_codes == [], after.to_dict()
    copy = tamper.reencode(dst.read_bytes(), "JPEG", quality=90)
    rec = verify_bytes(copy, keys=env["key"], trust_pem=trust, store=env["store"])
    assert rec.state == "recovered" and rec.recovered_from is not None and rec.recovered_from["content_id"] == info.content_id


# -- tampering ---------------------------------------------------------------------------------------
def _assert_invalid(v, *codes: str, said: str = "") -> None:  # type: ignore[no-untyped-def]
    assert v.state == "invalid", v.to_dict()
    assert v.signer is None and v.actions == []  # never attributed to the claimed signer
    for code in codes:
        assert code in v.validation_codes, v.validation_codes
    assert said in v.reason and "not attributed" in v.reason, v.reason


@pytest.mark.parametrize(
    ("fmt", "edit"),
    [("PNG", tamper.change_png_pixel), ("JPEG", tamper.flip_jpeg_scan), ("WEBP", tamper.flip_webp_data)],
)
def test_changed_pixels_make_it_invalid(env, stamped, fmt, edit) -> None:  # type: ignore[no-untyped-def]
    path, _ = stamped[fmt]
    data = edit(path.read_bytes())
    if fmt == "PNG":  # exactly one pixel differs, by one level
        import numpy as np

        a = np.asarray(Image.open(path)).astype(int)
        b = np.asarray(Image.open(io.BytesIO(data))).astype(int)
        assert np.count_nonzero(np.any(a != b, axis=-1)) == 1 and np.abs(a - b).max() == 1
    _assert_invalid(verify_bytes(data, trust_pem=env["trust"]), "assertion.dataHash.mismatch", said="image data changed")


def test_edited_action_makes_it_invalid(env, stamped) -> None:  # type: ignore[no-untyped-def]
    path, _ = stamped["JPEG"]
    data = path.read_bytes()
    assert data.count(b"test-imagegen") == 1
    _assert_invalid(
        verify_bytes(data.replace(b"test-imagegen", b"human-camera!"), trust_pem=env["trust"]),
        "assertion.hashedURI.mismatch",
        said="(such as its actions) was edited",
    )


def test_flipped_signature_makes_it_invalid(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    key_pem = env["chain"].signing_key.read_bytes()
    signatures = []

    def capture(data: bytes) -> bytes:
        sig = sign_with_key(key_pem, "es256", data)
        signatures.append(sig)
        return sig

    signer = ManifestSigner(chain=env["chain"].chain.read_bytes(), callback=capture)
    stamp(env["root"] / "coffee.png", tmp_path / "s.jpg", key=env["key"], signer=signer, store=env["store"])
    data = (tmp_path / "s.jpg").read_bytes()
    at = data.find(signatures[-1])
    assert at > 0
    broken = data[: at + 10] + bytes([data[at + 10] ^ 0xFF]) + data[at + 11 :]
    v = verify_bytes(broken, trust_pem=env["trust"])
    _assert_invalid(v, said="signature does not match")
    assert any("signature" in c.lower() for c in v.validation_codes), v.validation_codes


def test_manifest_moved_onto_another_image_is_invalid(env, stamped) -> None:  # type: ignore[no-untyped-def]
    path, _ = stamped["JPEG"]
    moved = tamper.move_jpeg_manifest(path.read_bytes(), (env["root"] / "chelsea.jpg").read_bytes())
    _assert_invalid(verify_bytes(moved, trust_pem=env["trust"]), "assertion.dataHash.mismatch", said="moved from another file")


def test_certificate_that_expires_after_signing_makes_it_invalid_without_a_timestamp(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No TSA: validators judge the certificate at "now", so once it expires the manifest is invalid,
    the words say so (not "tampered"), and a re-encoded copy is no longer recovered."""
    import datetime as dt
    import time

    ch = c2pa_chains.build(None, leaf_lifetime=dt.timedelta(seconds=8))
    signer = ManifestSigner(chain=ch.chain_pem, key_pem=ch.key_pem)
    trust = ch.root_pem.decode()
    dst = tmp_path / "short.jpg"
    info = stamp(env["root"] / "coffee.png", dst, key=env["key"], signer=signer, store=env["store"])
    expires = c2pa_chains.leaf_expiry(ch)
    if dt.datetime.now(dt.UTC) >= expires:  # pragma: no cover - only on a badly overloaded machine
        pytest.skip("stamping outlived the 8-second certificate")
    assert verify(dst, trust_pem=trust).state == "trusted"
    time.sleep((expires - dt.datetime.now(dt.UTC)).total_seconds() + 1.5)
    _assert_invalid(verify(dst, trust_pem=trust), "signingCredential.expired", said="certificate has expired")
    copy = tamper.reencode(dst.read_bytes(), "JPEG", quality=90)
    v = verify_bytes(copy, keys=env["key"], trust_pem=trust, store=env["store"])
    assert v.state == "no_credential" and v.recovered_from is None, v.to_dict()
    assert v.watermark is not None and v.watermark.payload is not None and v.watermark.payload.hex() == info.content_id
    assert "signingCredential.expired" in v.reason


@pytest.mark.parametrize(
    ("label", "code", "said"),
    [
        (b"c2pa.claim", "manifest.unreadable.jumbf", "its JUMBF boxes cannot be parsed"),
        (b"c2pa.signature", "claimSignature.missing", "signature is missing"),
    ],
)
def test_damaged_manifest_is_invalid_not_an_exception(env, stamped, label, code, said) -> None:  # type: ignore[no-untyped-def]
    path, _ = stamped["JPEG"]
    data = path.read_bytes()
    at = data.find(label)
    assert at > 0
    v = verify_bytes(data[:at] + bytes(len(label)) + data[at + len(label) :], trust_pem=env["trust"])
    _assert_invalid(v, code, said=said)


# -- durable credentials ----------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "to"), [("JPEG", "JPEG"), ("PNG", "JPEG"), ("WEBP", "PNG")])
def test_stripped_and_reencoded_file_is_recovered(env, stamped, fmt, to) -> None:  # type: ignore[no-untyped-def]
    path, info = stamped[fmt]
    reencoded = tamper.reencode(path.read_bytes(), to, **({"quality": 80} if to == "JPEG" else {}))
    assert read_manifest(reencoded, MIME[to]) is None  # the manifest is gone
    v = verify_bytes(reencoded, keys=env["key"], trust_pem=env["trust"], store=env["store"])
    assert v.state == "recovered", v.to_dict()
    assert v.recovered_from is not None and v.recovered_from["content_id"] == info.content_id
    assert v.recovered_from["fingerprint_distance"] <= IMAGE_MATCH_BITS
    assert v.signer is not None and v.signer["trusted"] is True and v.ai_generated is True
    assert set(v.validation_codes) <= {"assertion.dataHash.mismatch"}
    # Without the key nothing can be recovered.
    assert verify_bytes(reencoded, trust_pem=env["trust"], store=env["store"]).state == "no_credential"


def test_copied_watermark_does_not_recover_the_other_manifest(env, stamped) -> None:  # type: ignore[no-untyped-def]
    _, info = stamped["PNG"]
    # The strongest copy attack: the very same mark (key and content id) on a different picture.
    forged = embed(Image.open(env["root"] / "coffee.png"), env["key"], info.content_id)
    buf = io.BytesIO()
    forged.save(buf, "PNG")
    v = verify_bytes(buf.getvalue(), keys=env["key"], trust_pem=env["trust"], store=env["store"])
    assert v.watermark is not None and v.watermark.payload is not None and v.watermark.payload.hex() == info.content_id
    assert v.state == "no_credential" and v.signer is None and v.recovered_from is None
    assert "different picture" in v.reason


def test_embedded_and_recovered_manifests_that_differ_are_both_shown(env, stamped, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path, info = stamped["JPEG"]
    # Someone strips the credentials and signs the (still watermarked) picture with a new manifest.
    stripped = tamper.reencode(path.read_bytes(), "JPEG", quality=92)
    from dojang.provenance import ai_image_manifest

    manifest = ai_image_manifest(
        title="re.jpg", generator="someone-else", payload=random_payload(), when="2026-01-01T00:00:00Z", key_id="dk-other"
    )
    resigned, _ = sign_asset(stripped, "image/jpeg", manifest, env["signer"])
    v = verify_bytes(resigned, keys=env["key"], trust_pem=env["trust"], store=env["store"])
    d = v.to_dict()
    assert v.state == "trusted"
    assert d["embedded_manifest"]["generator"] == "someone-else"
    assert d["recovered_manifest"]["generator"] == "test-imagegen 1.0"
    assert d["embedded_manifest"]["state"] == "trusted" and d["recovered_manifest"]["state"] == "recovered"
    assert d["recovered_from"]["content_id"] == info.content_id


def test_unmarked_unsigned_image_has_no_credential(env) -> None:  # type: ignore[no-untyped-def]
    v = verify(env["root"] / "chelsea.jpg", keys=env["key"], store=env["store"])
    assert v.state == "no_credential" and v.ai_generated is None
    assert "does not mean" in v.reason


# -- fingerprint and store ---------------------------------------------------------------------------
def test_fingerprint_separates_pictures_and_survives_reencoding() -> None:
    names = [
        "astronaut",
        "coffee",
        "chelsea",
        "camera",
        "rocket",
        "coins",
        "moon",
        "page",
        "horse",
        "text",
        "immunohistochemistry",
    ]
    images = [Image.fromarray(getattr(skdata, n)()) for n in names]
    prints = [image_fingerprint(im) for im in images]
    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            assert hamming(prints[i], prints[j]) > IMAGE_MATCH_BITS, (names[i], names[j])
    for im, fp in zip(images, prints, strict=True):
        small = im.convert("RGB").resize((im.width // 2, im.height // 2))
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=60)
        assert hamming(image_fingerprint(Image.open(buf)), fp) <= 6


def test_store_never_reuses_an_id_and_keeps_what_it_had(env, stamped, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, info = stamped["JPEG"]
    store = env["store"]
    before = store.get_manifest(info.content_id)
    with pytest.raises(ProvenanceError, match="already in the store"):
        stamp_bytes(
            env["root"] / "coffee.png",
            "JPEG",
            key=env["key"],
            signer=env["signer"],
            store=store,
            generator="x",
            payload=bytes.fromhex(info.content_id),
        )
    assert store.get_manifest(info.content_id) == before
    # A store written by a newer dojang is refused, not silently altered.
    import sqlite3

    path = tmp_path / "future.sqlite3"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(ProvenanceError, match="newer dojang"):
        SQLiteStore(path)


def test_not_a_store_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "junk.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ProvenanceError, match="cannot open the manifest store"):
        SQLiteStore(bad)
    assert bad.read_bytes() == b"this is not a database" * 100
