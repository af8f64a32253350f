"""Regenerate docs/spec/text_vectors.json from the reference implementation.

Run only when the spec changes on purpose (a new spec version): the tests pin these values so
that marks made by one version stay detectable by every later one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dojang.keys import Key
from dojang.keys._keys import _key_id_for
from dojang.text._hash import candidate_hash, context_hash, key_words, mix32
from dojang.text._scoring import score_document, seeds_and_values
from dojang.text.config import PRESETS, SCHEME_DEFAULTS

TEST_SECRET = bytes(range(32))  # a public test vector, never a usable default


def main() -> None:
    key = Key(key_id=_key_id_for(TEST_SECRET), _secret=TEST_SECRET)
    mix_inputs = [0, 1, 2, 12345, 0x7FFFFFFF, 0xFFFFFFFF]
    tokens = [1, 42, 9906, 28, 30, 49151, 42, 9906, 28, 30, 17, 3]
    ids = np.asarray(tokens, dtype=np.int64)
    out: dict = {
        "secret_hex": TEST_SECRET.hex(),
        "key_id": key.key_id,
        "mix32": {str(x): int(mix32(np.int64(x))) for x in mix_inputs},
        "token_ids": tokens,
        "configs": {},
    }
    configs = {**{f"preset:{k}": v for k, v in PRESETS.items()}, "scheme:kgw": SCHEME_DEFAULTS["kgw"]}
    for name, cfg in configs.items():
        words = key_words(key, cfg.scheme)
        positions = np.arange(cfg.context_width, ids.size, dtype=np.int64)
        seeds, values = seeds_and_values(ids, positions, cfg, words)
        scored = score_document(ids, 0, cfg, words)
        out["configs"][name] = {
            "config": cfg.to_dict(),
            "subkey_words": list(words),
            "context_hash": [int(v) for v in context_hash(ids, words)],
            "candidate_hash": [int(v) for v in candidate_hash(ids, words)],
            "positions": positions.tolist(),
            "seeds": seeds.tolist(),
            "u": values.tolist(),
            "scored_positions": scored.positions.tolist(),
            "scores": [round(float(s), 12) for s in scored.scores],
            "log_p_whole": round(scored.log_p_whole, 12),
        }
    path = Path(__file__).with_name("text_vectors.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
