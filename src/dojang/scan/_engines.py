"""Engines move shards to workers and rows back; they never score anything themselves.

Both call :func:`score_shard` (read a shard, score its items with the one scoring function)
and hand each finished shard's rows to ``on_done`` in the driver, which alone writes files. So
the rows cannot depend on the engine, and a Ray cluster needs no shared file system for output.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any

from dojang.scan._deps import require
from dojang.scan._inputs import Shard, read
from dojang.scan._score import Scorer

log = logging.getLogger(__name__)

OnDone = Callable[[int, Any], None]  # (shard index, pyarrow.Table of its rows)
ENGINES = ("local", "ray")


def score_shard(scorer: Scorer, shard: Shard) -> Any:
    """Read ``shard`` and score it: a pyarrow table with one row per item, in order."""
    table = scorer.score_table(read(shard))
    if table.num_rows != shard.count:  # an input changed under us: refuse rather than misnumber
        from dojang.errors import InputError

        raise InputError(
            f"{shard.source}: expected {shard.count} items in shard {shard.index}, read {table.num_rows}; did the input change?"
        )
    return table


# -- local: a process pool on this machine ------------------------------------------------------
_WORKER_SCORER: Scorer | None = None


def _init_worker(scorer: Scorer) -> None:
    import signal

    global _WORKER_SCORER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the pool
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER_SCORER = scorer


def _work(shard: Shard) -> tuple[int, Any]:
    assert _WORKER_SCORER is not None
    return shard.index, score_shard(_WORKER_SCORER, shard)


def run_local(scorer: Scorer, shards: Sequence[Shard], on_done: OnDone, *, workers: int | None = None) -> None:
    """All cores of this machine (``workers`` processes; one runs in this process).

    A worker that dies (killed by the system, out of memory) stops the scan with a clear error
    instead of waiting forever for its shard: the shards already written are kept, so running
    the same scan again resumes it. ``multiprocessing.Pool`` replaces a dead worker but loses its
    task, and ``imap_unordered`` then never returns; ``ProcessPoolExecutor`` notices."""
    n = min(workers or os.cpu_count() or 1, len(shards))
    if n <= 1:
        for shard in shards:
            on_done(shard.index, score_shard(scorer, shard))
        return
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the parent may hold threads (tokenizers, pyarrow) that fork would break
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(scorer,))
    pending = {pool.submit(_work, shard) for shard in shards}
    written = 0
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index, table = future.result()
                on_done(index, table)
                written += 1
    except BaseException as err:
        _stop(pool)  # an error or Ctrl-C does not wait for the running shards
        if isinstance(err, BrokenProcessPool):
            from dojang.errors import DetectionError

            raise DetectionError(
                f"a scan worker process died (killed by the system, perhaps out of memory) with {len(shards) - written} "
                "shard(s) unfinished; the shards already written are kept: run the same scan again to resume it "
                "(with fewer workers or smaller shards if memory ran out)"
            ) from err
        raise
    pool.shutdown(wait=True)


def _stop(pool: Any) -> None:
    """Cancel the shards that have not started and end the workers now."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.join(timeout=5)


# -- ray: Ray Data over the shard list ------------------------------------------------------------
def _ray_shard(record: dict[str, Any], scorer: Scorer) -> dict[str, Any]:
    import pyarrow as pa

    shard = Shard.from_dict(record["shard"])
    table = score_shard(scorer, shard)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"index": shard.index, "rows": sink.getvalue().to_pybytes()}


def run_ray(scorer: Scorer, shards: Sequence[Shard], on_done: OnDone, *, address: str | None = None) -> None:
    """Ray Data: each shard is one block, scored by a Ray task; ``address`` joins an existing
    cluster, otherwise a local Ray instance is started (and stopped again)."""
    ray = require("ray")
    require("ray.data")
    import pyarrow as pa

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        records = [{"shard": s.to_dict()} for s in shards]
        ds = ray.data.from_items(records, override_num_blocks=len(records))
        ds = ds.map(_ray_shard, fn_kwargs={"scorer": scorer}, num_cpus=1)
        for out in ds.iter_rows():
            with pa.ipc.open_stream(out["rows"]) as reader:
                on_done(int(out["index"]), reader.read_all())
    finally:
        if started:
            ray.shutdown()
