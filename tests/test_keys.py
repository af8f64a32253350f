from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from dojang import DojangError, DojangKeyError, KeyRing, generate_key, load_key, save_key


def test_keygen_file_mode_and_round_trip(tmp_path) -> None:
    key = generate_key()
    path = save_key(key, tmp_path / "k.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_key(path)
    assert loaded.key_id == key.key_id
    assert loaded.same_secret(key)


def test_refuses_to_overwrite(tmp_path) -> None:
    path = tmp_path / "k.json"
    save_key(generate_key(), path)
    before = path.read_text()
    with pytest.raises(DojangKeyError, match="exists"):
        save_key(generate_key(), path)
    assert path.read_text() == before  # nothing stored is lost


def test_secret_never_in_repr_str_or_logs(tmp_path, caplog) -> None:
    key = generate_key()
    secret = key._secret.hex()
    ring = KeyRing([key])
    caplog.set_level(logging.DEBUG)
    logging.getLogger("dojang").info("using %s / %s", key, ring)
    for shown in (repr(key), str(key), repr(ring), caplog.text):
        assert secret not in shown
        assert key.key_id in shown


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "not a dojang key file"),
        (b"\xff\xfe", "not a dojang key file"),
        (json.dumps({"format": "other"}).encode(), "not a dojang key file"),
        (json.dumps({"format": "dojang-key", "version": 9}).encode(), "unsupported key file version"),
        (json.dumps({"format": "dojang-key", "version": 1, "key_id": "dk-0", "secret": "abcd"}).encode(), "malformed"),
        (json.dumps({"format": "dojang-key", "version": 1, "key_id": "dk-0", "secret": "zz" * 32}).encode(), "malformed"),
    ],
)
def test_bad_key_files(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(DojangKeyError, match=message):
        load_key(path)


def test_tampered_key_id_is_rejected_without_leaking(tmp_path) -> None:
    key = generate_key()
    data = json.loads(key.to_json())
    data["key_id"] = "dk-0000000000000000"
    path = tmp_path / "k.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DojangKeyError) as info:
        load_key(path)
    assert data["secret"] not in str(info.value)


def test_missing_key_file(tmp_path) -> None:
    with pytest.raises(DojangError, match="not found"):
        load_key(tmp_path / "nope.json")


def test_derived_subkeys_are_separated() -> None:
    key = generate_key()
    a = key.derive("text/v1/kgw")
    assert a == key.derive("text/v1/kgw")
    assert a != key.derive("text/v1/synthid")
    assert a != key.derive("text/v1/kgw", tenant="acme")
    assert key.derive("text/v1/kgw", tenant="acme") != key.derive("text/v1/kgw", tenant="other")
    assert a != generate_key().derive("text/v1/kgw")


def test_key_ring_dedupes_and_rejects_empty() -> None:
    key = generate_key()
    assert len(KeyRing([key, key])) == 1
    with pytest.raises(DojangKeyError):
        KeyRing([])
    with pytest.raises(DojangKeyError):
        KeyRing(["not a key"])  # type: ignore[list-item]


def test_parse_key_rejects_text_that_is_not_unicode() -> None:
    import pytest

    from dojang.errors import DojangKeyError
    from dojang.keys import parse_key

    with pytest.raises(DojangKeyError, match="not a dojang key file"):
        parse_key("\ud800 broken")


def test_weighted_rings_split_the_budget() -> None:
    """Without weights every key pays log n; with weights each pays -log of its share, and the
    shares of one group do not move when another group's keys are added."""
    import math

    from dojang.keys import KeyRing, generate_key

    a, b, c, d = (generate_key() for _ in range(4))
    plain = KeyRing([a, b, c])
    assert all(plain.log_correction(k.key_id) == pytest.approx(math.log(3)) for k in plain)
    two_providers = KeyRing([a, b, c], weights={a.key_id: 0.5, b.key_id: 0.25, c.key_id: 0.25})
    assert two_providers.log_correction(a.key_id) == pytest.approx(math.log(2))
    more = KeyRing([a, b, c, d], weights={a.key_id: 0.5, b.key_id: 1 / 6, c.key_id: 1 / 6, d.key_id: 1 / 6})
    assert more.log_correction(a.key_id) == pytest.approx(math.log(2))  # the other provider's new key costs a nothing
    with pytest.raises(DojangKeyError, match="positive"):
        KeyRing([a, b], weights={a.key_id: 1.0})
    with pytest.raises(DojangKeyError, match="positive"):
        KeyRing([a, b], weights={a.key_id: 1.0, b.key_id: 0.0})
