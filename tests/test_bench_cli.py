"""End to end: ``dojang bench image`` and ``dojang bench text`` (real model) on tiny suites write a
self-contained report.html and a results.json with the documented keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dojang.cli import main
from dojang.keys import save_key
from tests.helpers import fixed_key

TOP_KEYS = {"schema_version", "modality", "scheme", "key_id", "suite", "seconds", "environment", "flags", "null", "attacks",
            "length", "sweeps", "quality"}  # fmt: skip
NULL_KEYS = {"count", "sources", "fpr_nominal", "uniformity", "uniformity_by_source", "histogram", "log10_p_values"}
ATTACK_KEYS = {"name", "count", "tpr_nominal", "tpr_empirical", "fpr_achieved", "auc", "roc", "median_log10_p", "mean_size",
               "expected_failure", "note", "fpr_attacked_null", "log10_p_values"}  # fmt: skip


def _check_report(out: Path, secret: bytes) -> dict:
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.count("data:image/png;base64,") >= 3  # ROC, length, null histogram (+ sweeps when run)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", report), "external resource in the report"
    assert "<script" not in report and "<link" not in report
    data = json.loads((out / "results.json").read_text())
    assert set(data) == TOP_KEYS
    assert set(data["null"]) == NULL_KEYS
    assert all(set(a) == ATTACK_KEYS for a in data["attacks"])
    for blob in (report, json.dumps(data)):
        assert secret.hex() not in blob and secret.hex().upper() not in blob
    return data


def test_bench_image_tiny_suite(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        '[image]\nimages = ["camera", "synthetic:flat"]\nattacks = ["none", "crop 0.8 + jpeg 75"]\n'
        "sweeps = { jpeg = [20, 90] }\nexamples = 1\nmax_side = 256\n"
    )
    key = fixed_key(7)
    save_key(key, tmp_path / "k.key")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["bench", "image", "--suite", str(suite), "--key", str(tmp_path / "k.key"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = _check_report(out, key._secret)
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 7  # + original, marked, difference
    assert data["key_id"] == key.key_id and data["modality"] == "image"
    assert data["scheme"] == "image/v3 + image/v4"  # the photo gets layout 3, flat graphics layout 4
    names = [a["name"] for a in data["attacks"]]
    assert names == ["none", "crop 80% centre + jpeg 75"]
    assert data["attacks"][0]["tpr_nominal"]["1e-06"] == 1.0  # the unattacked mark is found
    assert data["null"]["fpr_nominal"]["0.001"] == 0.0
    assert set(data["sweeps"]) == {"jpeg"} and data["sweeps"]["jpeg"]["x"] == [20.0, 90.0]
    q = data["quality"]["camera"]
    assert 35 < q["psnr_db"] < 60 and 0.9 < q["ssim"] <= 1.0 and 0 < q["ciede2000_mean"] < 2


@pytest.mark.slow
def test_bench_text_tiny_suite_on_the_real_model(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "text:\n  prompts: 2\n  max_new_tokens: 32\n  human_texts: 20\n  lengths: [16, 32]\n"
        "  attacks: [none, nfd, delete 0.1 + swap 0.1]\n  sweeps: {}\n"
    )
    key = fixed_key(8)
    save_key(key, tmp_path / "k.key")
    out = tmp_path / "out"
    args = ["bench", "text", "--scheme", "kgw", "--suite", str(suite), "--key", str(tmp_path / "k.key"), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = _check_report(out, key._secret)
    assert data["scheme"] == "kgw" and data["suite"]["scheme"] == "kgw"
    assert [a["name"] for a in data["attacks"]] == ["none", "nfd", "delete 0.1 + swap 0.1"]
    none, nfd = data["attacks"][0], data["attacks"][1]
    assert nfd["log10_p_values"] == none["log10_p_values"]  # NFC normalisation undoes NFD exactly
    assert data["null"]["count"] == 22 and data["null"]["sources"]["unmarked generations"] == 2
    assert data["quality"]["marked"]["perplexity"] > 1.0
