"""Batch scans through the library: every input format, detection, summaries, bad items,
refusals and resume, on real texts, real images and real Parquet."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dojang.errors import ConfigError, InputError
from dojang.keys import KeyRing
from dojang.scan import Item, Scorer, scan
from dojang.scan._score import default_tokenizer_json
from dojang.text import TextDetector
from tests.helpers import fixed_key
from tests.scan_data import KILL_TEXT, MARK_KEY, OTHER_KEY, DyingScorer, human_sample, make_marked, write_jsonl

KEY = fixed_key(MARK_KEY)


@pytest.fixture(scope="module")
def tok_json() -> str:
    return default_tokenizer_json()


@pytest.fixture(scope="module")
def marked(tiny_model, tokenizer) -> list[str]:
    return make_marked(tiny_model, tokenizer)


@pytest.fixture(scope="module")
def human() -> list[str]:
    return human_sample(40)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder tree of real photographs: two marked under KEY, one unmarked, one corrupt."""
    from PIL import Image

    from dojang.image import embed

    skdata = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("images")
    (root / "a" / "b").mkdir(parents=True)
    embed(Image.fromarray(skdata.coffee()), KEY, "00112233445566ff").save(root / "a" / "coffee.png")
    embed(Image.fromarray(skdata.astronaut()), KEY, "0123456789abcdef").save(root / "a" / "b" / "astronaut.png")
    Image.fromarray(skdata.chelsea()).save(root / "chelsea.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff this is not a jpeg")
    (root / "notes.bin").write_bytes(b"\x00\x01")  # neither text nor image: skipped
    return root


def _rows(path) -> list[dict]:
    if str(path).endswith(".jsonl"):
        return [json.loads(line) for line in open(path, encoding="utf-8")]
    return pq.read_table(path).to_pylist()


# -- the scoring function ---------------------------------------------------------------------------
def test_scorer_finds_marked_texts_and_not_human_ones(marked, human, tok_json) -> None:
    scorer = Scorer(keys=KeyRing([fixed_key(OTHER_KEY), KEY]), tokenizer_json=tok_json)
    rows = scorer.score(
        [Item(f"m{i}", "text", t) for i, t in enumerate(marked)] + [Item(f"h{i}", "text", t) for i, t in enumerate(human)]
    )
    assert [r.id for r in rows] == [f"m{i}" for i in range(len(marked))] + [f"h{i}" for i in range(len(human))]
    hits = rows[: len(marked)]
    assert all(
        r.verdict == "detected" and r.key_id == KEY.key_id and r.p_value is not None and r.p_value <= 1e-9 for r in hits
    ), hits
    assert all(r.verdict == "not_detected" and r.key_id is None for r in rows[len(marked) :])
    assert all(r.error is None and r.tokens_scored for r in rows)


def test_a_row_depends_only_on_its_item(marked, human, tok_json, tokenizer) -> None:
    """Batching is for speed only: one item at a time gives the same rows, and the same verdict
    and p-value as the single-document detector without the span scan and the canonical form."""
    scorer = Scorer(keys=KEY, tokenizer_json=tok_json)
    items = [Item(str(i), "text", t) for i, t in enumerate([*marked[:3], *human[:12]])]
    together = scorer.score(items)
    assert together == [scorer.score([item])[0] for item in items]
    single = TextDetector(keys=KEY, tokenizer=tokenizer, alpha=1e-9, scan=False, canonical=False)
    for item, row in zip(items, together, strict=True):
        det = single.detect(item.content)
        assert row.verdict == det.verdict.value and row.tokens_scored == det.tokens_scored
        assert math.isclose(row.log10_p_value, det.log10_p_value, rel_tol=1e-9, abs_tol=1e-9)


def _evade(text: str) -> str:
    """The edits that single checks see through (docs/spec/text.md step 8): a zero-width space
    after every word, every space doubled, a full-width comma."""
    return text.replace(" ", "\u200b  ").replace(",", "\uff0c")


@pytest.mark.parametrize("spans", [False, True])
def test_canonical_option_sees_through_invisible_and_whitespace_edits(marked, human, tok_json, tokenizer, spans) -> None:
    """With ``canonical`` a scan gives each text the p-value of the single check
    (TextDetector.detect, canonical form on), for edited and unedited, English and Korean texts."""
    korean = [t for t in human_sample(400) if not t[:80].isascii()][:3]
    texts = (
        [_evade(m) for m in marked[:3]] + [marked[3]] + [_evade(h) for h in human[:3]] + korean + [human[4].replace(" ", "  ")]
    )
    items = [Item(str(i), "text", t) for i, t in enumerate(texts)]
    plain = Scorer(keys=KEY, tokenizer_json=tok_json, spans=spans).score(items)
    canon = Scorer(keys=KEY, tokenizer_json=tok_json, spans=spans, canonical=True).score(items)
    single = TextDetector(keys=KEY, tokenizer=tokenizer, alpha=1e-9, scan=spans, canonical=True)
    for item, row in zip(items, canon, strict=True):
        det = single.detect(item.content)
        assert row.verdict == det.verdict.value and row.tokens_scored == det.tokens_scored, item.item_id
        assert math.isclose(row.log10_p_value, det.log10_p_value, rel_tol=1e-9, abs_tol=1e-9), item.item_id
    assert [r.verdict for r in canon[:4]] == ["detected"] * 4
    assert all(r.verdict == "not_detected" for r in canon[4:]), [(r.id, r.verdict, r.tokens_scored, r.error) for r in canon[4:]]
    assert sum(r.verdict == "detected" for r in plain[:3]) < 3  # the edits hide the mark without it


def test_spans_option_finds_a_marked_passage_inside_human_text(marked, human, tok_json) -> None:
    mixed = human[0][:600] + " " + marked[0] + " " + human[1][:600]
    whole, spans = (
        Scorer(keys=KEY, tokenizer_json=tok_json, spans=s).score([Item("x", "text", mixed)])[0] for s in (False, True)
    )
    assert spans.verdict == "detected"
    assert spans.log10_p_value is not None and whole.log10_p_value is not None


def test_scorer_never_shows_the_secret(tok_json) -> None:
    scorer = Scorer(keys=KEY, tokenizer_json=tok_json)
    assert KEY._secret.hex() not in repr(scorer) and KEY.key_id in repr(scorer)
    assert KEY._secret.hex() not in json.dumps(scorer.identity())


def test_bad_fpr_and_scheme_are_refused() -> None:
    with pytest.raises(ConfigError, match="false-positive rate"):
        Scorer(keys=KEY, alpha=0.0)
    with pytest.raises(ConfigError, match="unknown scheme"):
        Scorer(keys=KEY, schemes=("nope",))


# -- formats ---------------------------------------------------------------------------------------
def test_jsonl_scan_with_bad_items_summary_and_jsonl_output(tmp_path, marked, human) -> None:
    records: list = [{"text": t} for t in marked] + [{"text": t} for t in human[:10]]
    records += ["{not json", {"body": "no text field"}, {"text": 42}, {"text": "   "}]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    with open(src, "ab") as handle:
        handle.write(b'{"text": "caf\xe9"}\n\n\n')  # Latin-1 byte: not UTF-8; then blank lines (no items)
    out = tmp_path / "out.jsonl"
    summary = scan([str(src)], KEY, out=out, rows_per_shard=7, workers=1)
    rows = _rows(out)
    assert len(rows) == len(records) + 1 == summary.items
    assert [r["verdict"] for r in rows[: len(marked)]] == ["detected"] * len(marked)
    errors = [r["error"] for r in rows if r["error"]]
    assert len(errors) == 5 == summary.errors
    assert any("not a JSON record" in e for e in errors) and any("no field 'text'" in e for e in errors)
    assert any("not a string" in e for e in errors) and any("empty" in e for e in errors) and any("UTF-8" in e for e in errors)
    assert rows[-1]["id"].endswith(f"in.jsonl:{len(records) + 1}")  # 1-based line numbers
    assert (summary.detected, summary.not_detected, summary.inconclusive) == (len(marked), 10, 0)
    assert summary.by_key == {KEY.key_id: len(marked)}
    d = summary.to_dict()
    assert d["expected_false_positives"] == pytest.approx(1e-9 * summary.items)
    assert {"items", "detected", "not_detected", "inconclusive", "errors", "expected_false_positives"} <= set(d)
    assert json.loads((tmp_path / "out.jsonl.summary.json").read_text())["items"] == summary.items
    assert not (tmp_path / "out.jsonl.parts").exists()


def test_parquet_and_csv_inputs_give_the_same_verdicts(tmp_path, marked, human) -> None:
    texts = [*marked, *human[:8]]
    table = pa.table({"id": list(range(len(texts))), "body": texts})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=5)
    pacsv.write_csv(table, tmp_path / "in.csv")
    verdicts = {}
    for name in ("in.parquet", "in.csv"):
        out = tmp_path / f"{name}.out.parquet"
        scan([str(tmp_path / name)], KEY, out=out, text_column="body", rows_per_shard=3, workers=1)
        rows = _rows(out)
        assert [r["id"] for r in rows] == [f"{tmp_path / name}#{i}" for i in range(len(texts))]
        verdicts[name] = [(r["verdict"], r["log10_p_value"]) for r in rows]
    assert verdicts["in.parquet"] == verdicts["in.csv"]
    assert [v for v, _ in verdicts["in.csv"]] == ["detected"] * len(marked) + ["not_detected"] * 8


def test_bad_csv_rows_become_error_rows_and_the_scan_goes_on(tmp_path, marked, human) -> None:
    """A row with too many or too few fields, bytes that are not UTF-8, a quoted field over
    several lines and a field longer than Python's default csv limit (128 KiB)."""
    long_human = (human[0] + " ") * (140_000 // len(human[0]) + 1)
    src = tmp_path / "in.csv"
    with open(src, "wb") as f:
        f.write(b"id,body\n")
        f.write(b'm0,"' + marked[0].replace('"', '""').encode() + b'"\n')
        f.write(b"x1,one,too many\n")
        f.write(b"x2\n")
        f.write(b"x3,caf\xe9 latin-1\n")
        f.write(b'h4,"' + human[1].replace('"', '""').encode() + b'\nwith a second line"\n')
        f.write(b'h5,"' + long_human.replace('"', '""').encode() + b'"\n')
        f.write(b'm6,"' + marked[1].replace('"', '""').encode() + b'"\n')
    summary = scan([str(src)], KEY, out=tmp_path / "o.parquet", text_column="body", rows_per_shard=2, workers=1)
    rows = _rows(tmp_path / "o.parquet")
    assert [r["id"] for r in rows] == [f"{src}#{i}" for i in range(7)]
    assert [r["verdict"] for r in rows] == ["detected", None, None, None, "not_detected", "not_detected", "detected"]
    assert rows[1]["error"] == "malformed CSV row: 3 fields, the header has 2"
    assert rows[2]["error"] == "malformed CSV row: 1 fields, the header has 2"
    assert rows[3]["error"] == "column 'body' is not UTF-8 text"
    assert rows[5]["error"] is None and rows[5]["tokens_scored"] > 0  # over the default csv limit: read whole
    assert summary.items == 7 and summary.errors == 3


def test_id_column_names_the_rows_of_every_table_format(tmp_path, marked, human) -> None:
    texts = [marked[0], human[0], human[1]]
    names = ["doc-a", None, "doc-c"]
    table = pa.table({"uid": names, "text": texts})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=2)
    pacsv.write_csv(table, tmp_path / "in.csv")
    write_jsonl(tmp_path / "in.jsonl", [{"uid": n, "text": t} for n, t in zip(names, texts, strict=True)])
    for name, fallback in (("in.parquet", "#1"), ("in.csv", "#1"), ("in.jsonl", ":2")):
        out = tmp_path / f"{name}.out.jsonl"
        scan([str(tmp_path / name)], KEY, out=out, id_column="uid", rows_per_shard=2, workers=1)
        rows = _rows(out)
        assert [r["id"] for r in rows] == ["doc-a", f"{tmp_path / name}{fallback}", "doc-c"], name
        assert [r["verdict"] for r in rows] == ["detected", "not_detected", "not_detected"], name


def test_text_column_is_guessed_and_a_missing_one_is_named(tmp_path, human) -> None:
    pq.write_table(pa.table({"n": [1, 2], "content": human[:2]}), tmp_path / "one.parquet")
    summary = scan([str(tmp_path / "one.parquet")], KEY, out=tmp_path / "o.parquet", workers=1)
    assert summary.not_detected == 2  # the only text column
    pq.write_table(pa.table({"a": human[:2], "b": human[2:4]}), tmp_path / "two.parquet")
    with pytest.raises(InputError, match="--text-column"):
        scan([str(tmp_path / "two.parquet")], KEY, out=tmp_path / "o2.parquet")
    with pytest.raises(InputError, match="no column 'body'"):
        scan([str(tmp_path / "two.parquet")], KEY, out=tmp_path / "o3.parquet", text_column="body")
    # missing in one file only: that file's rows are errors, the rest is scanned
    pq.write_table(pa.table({"body": human[:3]}), tmp_path / "good.parquet")
    summary = scan(
        [str(tmp_path / "good.parquet"), str(tmp_path / "two.parquet")], KEY, out=tmp_path / "o4.parquet", text_column="body"
    )
    assert (summary.items, summary.not_detected, summary.errors) == (5, 3, 2)
    assert not (tmp_path / "o2.parquet").exists() and not (tmp_path / "o3.parquet.parts").exists()


def test_text_directory_recursive_with_undecodable_file(tmp_path, marked, human) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "m.txt").write_text(marked[0], encoding="utf-8")
    (root / "sub" / "h.md").write_text(human[0], encoding="utf-8")
    (root / "sub" / "bad.txt").write_bytes(b"\xff\xfe\x00broken")
    out = tmp_path / "o.parquet"
    scan([str(root)], KEY, out=out)
    rows = {r["id"].rsplit("/", 1)[-1]: r for r in _rows(out)}
    assert rows["m.txt"]["verdict"] == "detected" and rows["h.md"]["verdict"] == "not_detected"
    assert "not UTF-8" in rows["bad.txt"]["error"] and rows["bad.txt"]["verdict"] is None


def test_image_directory_recursive_with_payloads_and_a_corrupt_file(tmp_path, images) -> None:
    out = tmp_path / "img.parquet"
    summary = scan([str(images)], KeyRing([fixed_key(OTHER_KEY), KEY]), out=out, image_search=False, images_per_shard=2)
    rows = {r["id"].rsplit("/", 1)[-1]: r for r in _rows(out)}
    assert set(rows) == {"coffee.png", "astronaut.png", "chelsea.png", "broken.jpg"}
    assert rows["coffee.png"]["payload"] == "00112233445566ff" and rows["coffee.png"]["key_id"] == KEY.key_id
    assert rows["astronaut.png"]["payload"] == "0123456789abcdef" and rows["astronaut.png"]["kind"] == "image"
    assert rows["chelsea.png"]["verdict"] == "not_detected" and rows["chelsea.png"]["payload"] is None
    assert rows["broken.jpg"]["error"] and rows["broken.jpg"]["verdict"] is None
    assert (summary.detected, summary.not_detected, summary.errors) == (2, 1, 1)


def test_fsspec_url_input(tmp_path, marked, human) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    with fs.open("/corpus/part-0.jsonl", "w") as handle:
        for t in [marked[0], human[0], human[1]]:
            handle.write(json.dumps({"text": t}) + "\n")
    with fs.open("/corpus/sub/note.txt", "w") as handle:
        handle.write(marked[1])
    out = tmp_path / "o.jsonl"
    summary = scan(["memory://corpus"], KEY, out=out, workers=1)
    rows = _rows(out)
    assert [r["id"] for r in rows] == ["memory:///corpus/part-0.jsonl:1", "memory:///corpus/part-0.jsonl:2",
                                       "memory:///corpus/part-0.jsonl:3", "memory:///corpus/sub/note.txt"]  # fmt: skip
    assert [r["verdict"] for r in rows] == ["detected", "not_detected", "not_detected", "detected"]
    assert summary.detected == 2


# -- refusals --------------------------------------------------------------------------------------
def test_missing_input_stops_before_any_output(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        scan([str(tmp_path / "nothere.jsonl")], KEY, out=tmp_path / "o.parquet")
    assert list(tmp_path.iterdir()) == []


def test_output_must_be_parquet_or_jsonl(tmp_path, human) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": human[0]}])
    with pytest.raises(InputError, match=r"\.parquet or \.jsonl"):
        scan([str(src)], KEY, out=tmp_path / "o.csv")


def test_parts_of_a_different_scan_are_never_mixed_in(tmp_path, human) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in human[:6]])
    out = tmp_path / "o.parquet"
    with pytest.raises(KeyboardInterrupt):
        scan([str(src)], KEY, out=out, rows_per_shard=2, progress=_interrupt_after(1))
    with pytest.raises(ConfigError, match="different scan"):
        scan([str(src)], fixed_key(OTHER_KEY), out=out, rows_per_shard=2)


# -- resume ----------------------------------------------------------------------------------------
def _interrupt_after(n: int):  # type: ignore[no-untyped-def]
    seen: list[int] = []

    def hook(index: int, items: int) -> None:
        seen.append(index)
        if len(seen) >= n:
            raise KeyboardInterrupt  # what Ctrl-C does mid-scan

    return hook


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_interrupted_scan_resumes_without_redoing_finished_shards(tmp_path, marked, human, suffix) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in [*human[:14], *marked]] + ["{bad"])
    clean = tmp_path / f"clean.{suffix}"
    scan([str(src)], KEY, out=clean, rows_per_shard=3, workers=1)
    out = tmp_path / f"o.{suffix}"
    with pytest.raises(KeyboardInterrupt):
        scan([str(src)], KEY, out=out, rows_per_shard=3, workers=1, progress=_interrupt_after(2))
    assert not out.exists()  # never a partial file under the output's name
    parts = tmp_path / f"o.{suffix}.parts"
    assert sorted(p.name for p in parts.glob("*.done")) == ["00000.done", "00001.done"]
    redone: list[int] = []
    summary = scan([str(src)], KEY, out=out, rows_per_shard=3, workers=1, progress=lambda i, n: redone.append(i))
    assert sorted(redone) == list(range(2, 7))
    assert summary.shards == 7 and summary.shards_resumed == 2
    assert out.read_bytes() == clean.read_bytes() if suffix == "jsonl" else _rows(out) == _rows(clean)
    assert summary.items == 21 and summary.detected == len(marked) and summary.errors == 1
    assert not parts.exists()


def test_process_pool_gives_the_same_rows_as_one_process(tmp_path, marked, human) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in [*human[:20], *marked]])
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    scan([str(src)], KEY, out=one, rows_per_shard=4, workers=1)
    scan([str(src)], KEY, out=two, rows_per_shard=4, workers=2)
    assert _rows(one) == _rows(two)
    assert np.sum([r["verdict"] == "detected" for r in _rows(two)]) == len(marked)


def test_a_worker_killed_mid_scan_stops_it_with_a_clear_error_and_the_scan_resumes(tmp_path, human, monkeypatch) -> None:
    # multiprocessing.Pool replaced a killed worker but lost its shard, and the scan waited forever
    from dojang.errors import DetectionError
    from dojang.scan import _api

    texts = [*human[:7], KILL_TEXT]
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "o.parquet"
    monkeypatch.setattr(_api, "Scorer", DyingScorer)
    with pytest.raises(DetectionError, match=r"worker process died .* run the same scan again to resume"):
        scan([str(src)], KEY, out=out, rows_per_shard=2, workers=2)
    monkeypatch.setattr(_api, "Scorer", Scorer)
    summary = scan([str(src)], KEY, out=out, rows_per_shard=2, workers=1)
    assert summary.items == len(texts) and summary.errors == 0
    clean = tmp_path / "clean.parquet"
    scan([str(src)], KEY, out=clean, rows_per_shard=2, workers=1)
    assert _rows(out) == _rows(clean)


def test_a_parts_folder_stopped_before_its_plan_is_reused(tmp_path, human) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in human[:2]])
    (tmp_path / "o.parquet.parts").mkdir()  # killed between creating the folder and writing plan.json
    assert scan([str(src)], KEY, out=tmp_path / "o.parquet", workers=1).not_detected == 2


def test_a_file_named_on_its_own_is_text_whatever_its_suffix(tmp_path, marked) -> None:
    (tmp_path / "answer.log").write_text(marked[2], encoding="utf-8")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "answer.log").write_text(marked[2], encoding="utf-8")
    assert scan([str(tmp_path / "answer.log")], KEY, out=tmp_path / "o.parquet").detected == 1
    with pytest.raises(InputError, match="nothing to scan"):  # inside a directory, unknown suffixes are skipped
        scan([str(tmp_path / "dir")], KEY, out=tmp_path / "o2.parquet")


def test_jsonl_records_are_judged_one_by_one(tmp_path, marked, human) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"title": "no body here"}, {"body": marked[0]}, {"body": human[0]}])
    summary = scan([str(src)], KEY, out=tmp_path / "o.parquet", text_column="body")
    assert (summary.errors, summary.detected, summary.not_detected) == (1, 1, 1)
