"""The Ray engine (a local Ray instance started by the scan itself) gives exactly the rows of
the local engine on the same 10,000 items."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from dojang.scan import scan
from tests.helpers import fixed_key
from tests.scan_data import MARK_KEY, human_texts, make_marked, write_jsonl

pytest.importorskip("ray.data")


@pytest.mark.slow
def test_ray_and_local_engines_give_identical_rows_on_10000_items(tmp_path, tiny_model, tokenizer) -> None:
    marked = make_marked(tiny_model, tokenizer, n=4)
    chunks = [t[i : i + 240] for t in human_texts() for i in range(0, min(len(t), 2400), 240)]
    records: list = [{"text": c} for c in chunks[:9_998]]
    records[::2500] = [{"text": m} for m in marked]  # marked items spread over the shards
    records += ["{broken", {"text": ""}]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    assert len(records) == 10_000
    local, ray = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    a = scan([str(src)], fixed_key(MARK_KEY), out=local, engine="local", rows_per_shard=2500, workers=1)
    b = scan([str(src)], fixed_key(MARK_KEY), out=ray, engine="ray", rows_per_shard=2500)
    assert pq.read_table(local).equals(pq.read_table(ray))
    assert a.to_dict() | {"seconds": 0, "output": None} == b.to_dict() | {"seconds": 0, "output": None}
    assert a.items == 10_000 and a.errors == 2 and a.detected == len(marked)
    detected = [r["id"] for r in pq.read_table(ray).to_pylist() if r["verdict"] == "detected"]
    assert [d.rsplit(":", 1)[1] for d in detected] == ["1", "2501", "5001", "7501"], json.dumps(detected)


@pytest.mark.slow
def test_scan_joins_an_existing_two_node_cluster(tmp_path, tiny_model, tokenizer) -> None:
    """``--ray-address``: a Ray cluster of two nodes (two raylets on this machine, one CPU each,
    as Ray's own multi-node tests run them) that the scan joins and leaves running."""
    import ray
    from ray.cluster_utils import Cluster

    marked = make_marked(tiny_model, tokenizer, n=2)
    chunks = [t[i : i + 240] for t in human_texts() for i in range(0, min(len(t), 2400), 240)]
    records: list = [{"text": c} for c in chunks[:1_198]] + [{"text": m} for m in marked]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        b = scan(
            [str(src)],
            fixed_key(MARK_KEY),
            out=tmp_path / "ray.parquet",
            engine="ray",
            ray_address=cluster.address,
            rows_per_shard=150,
        )
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        assert sum(n["Alive"] for n in ray.nodes()) == 2  # the cluster outlives the scan that joined it
        ray.shutdown()
    finally:
        cluster.shutdown()
    a = scan([str(src)], fixed_key(MARK_KEY), out=tmp_path / "local.parquet", engine="local", rows_per_shard=150, workers=1)
    assert pq.read_table(tmp_path / "local.parquet").equals(pq.read_table(tmp_path / "ray.parquet"))
    assert b.items == 1_200 and b.detected == 2 == a.detected
