"""Golden vectors: the keyed hash, key derivation and scoring stay bit-identical across versions,
and an independent scalar re-implementation of the spec agrees with the vectorised one."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dojang.keys import Key
from dojang.keys._keys import _key_id_for
from dojang.text._hash import candidate_hash, context_hash, key_words, mix32
from dojang.text._scoring import score_document, seeds_and_values
from dojang.text.config import config_from_dict

SPEC = Path(__file__).parents[1] / "docs" / "spec"
VECTORS = json.loads((SPEC / "text_vectors.json").read_text())
SECRET = bytes.fromhex(VECTORS["secret_hex"])
KEY = Key(key_id=_key_id_for(SECRET), _secret=SECRET)


def _spec_mix32(x: int) -> int:
    """docs/spec/text.md section 2, written out with Python ints."""
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & m
    x ^= x >> 12
    x = (x * 0x297A2D39) & m
    return x ^ (x >> 15)


def _spec_words(scheme: str) -> list[int]:
    prk = hmac.new(b"dojang/v1", SECRET, hashlib.sha256).digest()
    okm = hmac.new(prk, b"dojang/text/v1/" + scheme.encode() + b"\x01", hashlib.sha256).digest()
    return [int.from_bytes(okm[4 * i : 4 * i + 4], "little") for i in range(8)]


def test_key_id() -> None:
    assert KEY.key_id == VECTORS["key_id"]


def test_mix32_vectors_and_scalar_spec() -> None:
    for x, want in VECTORS["mix32"].items():
        assert int(mix32(np.int64(int(x)))) == want
        assert _spec_mix32(int(x)) == want


def test_numpy_and_torch_give_the_same_bits() -> None:
    xs = np.random.default_rng(0).integers(0, 2**32, size=100_000, dtype=np.int64)
    assert np.array_equal(mix32(xs), mix32(torch.from_numpy(xs)).numpy())


def test_mix32_is_a_bijection_on_a_sample() -> None:
    xs = np.arange(0, 2_000_000, dtype=np.int64) * 2_003 % (2**32)
    assert np.unique(mix32(xs)).size == np.unique(xs).size


@pytest.mark.parametrize("name", sorted(VECTORS["configs"]))
def test_config_vectors(name: str) -> None:
    vec = VECTORS["configs"][name]
    cfg = config_from_dict(vec["config"])
    ids = np.asarray(VECTORS["token_ids"], dtype=np.int64)
    words = key_words(KEY, cfg.scheme)
    assert list(words) == vec["subkey_words"] == _spec_words(cfg.scheme)
    assert context_hash(ids, words).tolist() == vec["context_hash"]
    assert candidate_hash(ids, words).tolist() == vec["candidate_hash"]
    assert [_spec_mix32(int(t) ^ words[0]) for t in ids] == vec["context_hash"]
    positions = np.asarray(vec["positions"], dtype=np.int64)
    seeds, values = seeds_and_values(ids, positions, cfg, words)
    assert seeds.tolist() == vec["seeds"]
    assert values.tolist() == vec["u"]
    scored = score_document(ids, 0, cfg, words)
    assert scored.positions.tolist() == vec["scored_positions"]
    assert np.allclose(scored.scores, vec["scores"], rtol=0, atol=1e-9)
    assert scored.log_p_whole == pytest.approx(vec["log_p_whole"], abs=1e-9)


def test_spec_document_quotes_the_vectors() -> None:
    spec = (SPEC / "text.md").read_text()
    assert VECTORS["key_id"] in spec
    for want in VECTORS["mix32"].values():
        assert str(want) in spec
    default = VECTORS["configs"]["preset:default"]
    assert str(default["u"][0]) in spec
