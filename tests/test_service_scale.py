"""Scale-out: two `dojang serve` replicas and a `dojang worker` on PostgreSQL and Redis; one
replica and then the worker are killed with SIGKILL mid-load (tests/scale_scenario.py). Every
acknowledged stamp is in the database exactly once, with one audit entry, and nothing else is."""

from __future__ import annotations

import pytest

from tests.scale_scenario import run_scenario
from tests.service_env import postgres_url
from tests.test_service_jobs import redis_db  # noqa: F401  (a fixture)


@pytest.mark.slow
def test_two_replicas_and_a_worker_lose_nothing_and_write_nothing_twice(tmp_path, redis_db) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url, drop = postgres_url()
    try:
        out = run_scenario(url, tmp_path, seconds=40.0)
    finally:
        drop()
    acknowledged, stored = out["acknowledged"], out["stored"]
    assert out["clients_stuck"] == 0, "clients still waiting four minutes after the load ended"
    assert not out["problems"], out["problems"][:5]
    assert 0 < out["acknowledged_before_kill"] < len(acknowledged)
    assert out["retried"] > 0, "no request was cut off by the kills: the test did not test them"
    assert len(stored) == len(set(stored))
    assert set(acknowledged.values()) == set(stored), "stored stamps differ from the acknowledged ones"
    assert len(set(acknowledged.values())) == len(acknowledged), "two requests were answered with one stamp"
    assert out["audit_entries"] == out["job_answers"] == len(stored)
