"""``dojang scan`` on the command line: the contract flags and JSON keys, and one clear line for
every input that stops a scan."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dojang.cli import main
from dojang.keys import save_key
from tests.helpers import fixed_key, one_error_line
from tests.scan_data import MARK_KEY, OTHER_KEY, human_sample, make_marked, write_jsonl

SUMMARY_KEYS = {"items", "detected", "not_detected", "inconclusive", "errors", "expected_false_positives"}


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tiny_model, tokenizer):
    root = tmp_path_factory.mktemp("cli")
    marked = make_marked(tiny_model, tokenizer, n=3)
    src = write_jsonl(root / "in.jsonl", [{"text": t} for t in [*marked, *human_sample(5)]] + ["{broken"])
    keys = [save_key(fixed_key(i), root / f"k{i}.json") for i in (MARK_KEY, OTHER_KEY)]
    return src, keys


def test_json_summary_has_the_contract_keys(runner, corpus, tmp_path) -> None:
    src, (k1, k2) = corpus
    out = tmp_path / "hits.parquet"
    result = runner.invoke(main, ["scan", "--key", str(k1), "--key", str(k2), "--out", str(out), "--json", str(src)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # stdout holds the one JSON object, nothing else
    assert set(summary) >= SUMMARY_KEYS
    assert (summary["items"], summary["detected"], summary["not_detected"], summary["errors"]) == (9, 3, 5, 1)
    assert summary["inconclusive"] == 0
    assert summary["expected_false_positives"] == pytest.approx(9e-9)
    assert summary["detected_by_key"] == {fixed_key(MARK_KEY).key_id: 3}
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 9 and {"id", "verdict", "p_value", "key_id", "payload", "error"} <= set(rows[0])
    for i in (MARK_KEY, OTHER_KEY):
        assert fixed_key(i)._secret.hex() not in result.output


def test_fpr_option_sets_the_rate_and_the_expected_false_positives(runner, corpus, tmp_path) -> None:
    src, (k1, _) = corpus
    args = ["scan", "--key", str(k1), "--fpr", "1e-4", "--out", str(tmp_path / "o.jsonl"), "--json", str(src)]
    summary = json.loads(runner.invoke(main, args).stdout)
    assert summary["fpr"] == 1e-4 and summary["expected_false_positives"] == pytest.approx(9e-4)


def test_plain_output_names_counts_and_keys(runner, corpus, tmp_path) -> None:
    src, (k1, _) = corpus
    result = runner.invoke(main, ["scan", "--key", str(k1), "--out", str(tmp_path / "o.parquet"), str(src)])
    assert result.exit_code == 0, result.output
    assert "9 items: 3 detected, 5 not detected, 0 inconclusive, 1 errors" in result.stdout
    assert fixed_key(MARK_KEY).key_id in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--key", "{tmp}/nokey.json", "{src}"], "key file not found"),
        (["--key", "{src}", "{src}"], "not a dojang key file"),
        (["--key", "{k1}", "{tmp}/missing.jsonl"], "no such file or directory"),
        (["--key", "{k1}", "--text-column", "body", "{src}"], "no column 'body'"),
        (["--key", "{k1}", "--fpr", "2", "{src}"], "false-positive rate"),
        (["--key", "{k1}", "--out", "{tmp}/o.csv", "{src}"], ".parquet or .jsonl"),
    ],
)
def test_stops_with_one_clear_line(runner, corpus, tmp_path, args, expected) -> None:
    src, (k1, _) = corpus
    filled = [a.format(tmp=tmp_path, src=src, k1=k1) for a in args]
    result = runner.invoke(main, ["scan", "--out", str(tmp_path / "o.parquet"), *filled])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line.startswith("dojang: error:") and expected in line
    assert fixed_key(MARK_KEY)._secret.hex() not in result.output
    assert not (tmp_path / "o.parquet").exists()


def test_engine_choice_is_checked(runner, corpus, tmp_path) -> None:
    src, (k1, _) = corpus
    result = runner.invoke(main, ["scan", "--key", str(k1), "--engine", "spark", str(src)])
    assert result.exit_code == 2 and "spark" in result.output


def test_a_killed_scan_resumes_to_the_same_output(tmp_path, corpus) -> None:
    """SIGKILL (no chance to clean up) in the middle of a scan, then the same command again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from dojang.scan import scan
    from tests.scan_data import human_texts

    _, (k1, _) = corpus
    chunks = [t[i : i + 300] for t in human_texts()[:600] for i in range(0, 1500, 300)]
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": c} for c in chunks[:3000]])
    out = tmp_path / "o.parquet"
    dojang = os.path.join(os.path.dirname(sys.executable), "dojang")  # the installed console script
    cmd = [dojang, "scan", "--key", str(k1), "--shard-size", "100", "--workers", "1"]
    cmd += ["--out", str(out), "--json", str(src)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = tmp_path / "o.parquet.parts"
    deadline = time.monotonic() + 120
    while len(list(parts.glob("*.done"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("*.done")))
    assert not out.exists() and 3 <= done < 30
    rerun = subprocess.run(cmd, capture_output=True, text=True, check=True)
    summary = json.loads(rerun.stdout)
    assert summary["shards"] == 30 and summary["shards_resumed"] == done and summary["items"] == 3000
    clean = tmp_path / "clean.parquet"
    scan([str(src)], fixed_key(MARK_KEY), out=clean, rows_per_shard=100, workers=1)
    assert pq.read_table(out).equals(pq.read_table(clean))
