"""Forgery, copy and removal at small N (the adversary harness's attacks, a few images each):
format v3 marks cannot be planted or lifted, and the same attacks do plant layout 1 marks (so the
attacks have teeth). The full harness is ``dojang bench image --adversary``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dojang.bench._adversary import SOURCES_CLEAN, SOURCES_MARKED, _sources, _views, estimate
from dojang.cli.main import main
from dojang.image import ImageDetector, psnr
from dojang.image._api import embed_pixels
from dojang.image._io import from_array
from dojang.stats import Verdict
from tests.helpers import fixed_key

pytest.importorskip("skimage.data")
SIDE = 256
PERIOD = 64  # px: the tile (64 units) at 256 px on the short side
PAYLOAD = bytes.fromhex("00c0ffee00c0ffee")  # one payload on every image: the averaging attack's best case


@pytest.fixture(scope="module")
def sets() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    originals = [np.asarray(v, dtype=np.float32) for v in _views(_sources(SOURCES_MARKED[:4]), 6, SIDE, rng)]
    victims = [np.asarray(v, dtype=np.float32) for v in _views(_sources(SOURCES_CLEAN[:3]), 3, SIDE, rng)]
    out: dict[str, list[np.ndarray]] = {"originals": originals, "victims": victims}
    for version in (1, 3):
        out[f"v{version}"] = [
            embed_pixels(from_array(o.astype(np.uint8)), fixed_key(7), PAYLOAD, version=version).pixels.colour.astype(np.float32)
            for o in originals
        ]
    return out


def _verdict(x: np.ndarray, *, search: bool = False) -> Verdict:
    return ImageDetector(keys=fixed_key(7), search=search).detect(np.clip(np.rint(x), 0, 255).astype(np.uint8)).verdict


@pytest.mark.parametrize("kind", ["gaussian", "pairs"])
def test_an_average_of_marked_images_plants_nothing(sets: dict[str, list[np.ndarray]], kind: str) -> None:
    marked, originals, victims = sets["v3"], sets["originals"], sets["victims"]
    est = estimate(kind, marked, originals, PERIOD)
    for scale in (1.0, 3.0):
        for v in victims:
            forged = np.clip(np.rint(v + scale * est), 0, 255)
            got = ImageDetector(keys=fixed_key(7), search=False).detect(forged.astype(np.uint8))
            assert got.verdict is not Verdict.DETECTED and got.payload is None
            assert got.to_dict()["payload_verified"] is False
    # the averaged sync layer is what the forged image carries: a keyed pattern, reported apart
    forged = ImageDetector(keys=fixed_key(7), search=False).detect(
        np.clip(np.rint(victims[0] + 3 * est), 0, 255).astype(np.uint8)
    )
    assert forged.verdict is Verdict.INCONCLUSIVE and forged.keyed_pattern_seen and forged.reason is not None


def test_the_same_average_plants_a_layout_1_mark(sets: dict[str, list[np.ndarray]]) -> None:
    """The attack has teeth: on marks made before forgery resistance it accuses clean photos."""
    est = estimate("pairs", sets["v1"], sets["originals"], PERIOD)
    planted = [_verdict(v + 2.0 * est) for v in sets["victims"]]
    assert planted.count(Verdict.DETECTED) >= 2


def test_a_copied_mark_does_not_verify(sets: dict[str, list[np.ndarray]]) -> None:
    """Kutter's copy attack: the exact residual of one original/marked pair, added to other photos."""
    residual = sets["v3"][0] - sets["originals"][0]
    for v in sets["victims"]:
        for scale in (1.0, 2.0):
            assert _verdict(v + scale * residual) is not Verdict.DETECTED
    assert _verdict(sets["originals"][0] + residual) is Verdict.DETECTED  # where it was made, it reads


def test_subtracting_the_average_keeps_the_mark(sets: dict[str, list[np.ndarray]]) -> None:
    est = estimate("gaussian", sets["v3"], sets["originals"], PERIOD)
    for m in sets["v3"][:3]:
        attacked = np.clip(np.rint(m - 2.0 * est), 0, 255)
        assert psnr(attacked.astype(np.uint8), m.astype(np.uint8)) > 35.0
        assert _verdict(attacked) is Verdict.DETECTED


def test_bench_image_adversary_writes_its_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(
        main, ["bench", "image", "--adversary", "--quick", "--sizes", "1,4", "--victims", "2", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["modality"] == "image-adversary" and (tmp_path / "report.html").exists()
    assert {c["estimator"] for c in data["cells"]} == {"gaussian", "median", "tv", "wavelet", "pairs", "copy"}
    assert all(c["forgery_rate"] == 0.0 for c in data["cells"])
    assert data["baseline"]["marked_detected"] == data["baseline"]["marked"]
    bad = CliRunner().invoke(main, ["bench", "image", "--adversary", "--sizes", "x", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--sizes" in bad.output


def test_a_scan_counts_keyed_patterns_apart(tmp_path, sets: dict[str, list[np.ndarray]]) -> None:  # type: ignore[no-untyped-def]
    """A scan reports a forged image as inconclusive and counts it under keyed_pattern_only,
    naming the key whose pattern it carries, never as a detection of that key."""
    from PIL import Image

    from dojang.keys import KeyRing
    from dojang.scan import scan

    est = estimate("pairs", sets["v3"], sets["originals"], PERIOD)
    Image.fromarray(np.clip(np.rint(sets["victims"][0] + 3 * est), 0, 255).astype(np.uint8)).save(tmp_path / "forged.png")
    Image.fromarray(sets["v3"][0].astype(np.uint8)).save(tmp_path / "marked.png")
    Image.fromarray(sets["victims"][1].astype(np.uint8)).save(tmp_path / "clean.png")
    summary = scan([str(tmp_path)], KeyRing([fixed_key(7)]), out=tmp_path / "out.jsonl", image_search=False)
    got = summary.to_dict()
    assert (got["detected"], got["inconclusive"], got["not_detected"], got["keyed_pattern_only"]) == (1, 1, 1, 1)
    assert got["detected_by_key"] == {fixed_key(7).key_id: 1}
    rows = {
        json.loads(line)["id"].rsplit("/", 1)[-1]: json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()
    }
    assert rows["forged.png"]["verdict"] == "inconclusive" and rows["forged.png"]["key_id"] == fixed_key(7).key_id
    assert rows["forged.png"]["payload"] is None
