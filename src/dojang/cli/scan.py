"""``dojang scan``: check a corpus for marks, locally or on a Ray cluster."""

from __future__ import annotations

import json

import click

from dojang.cli._common import friendly_errors


@click.command("scan")
@click.option("--key", "key_paths", multiple=True, required=True, help="Key file; repeat for a key ring.")
@click.option("--text-column", default=None, help="Column or field holding the text (default: 'text', or the only text column).")
@click.option("--id-column", default=None, help="Column or field that names each row in the output (default: file#row).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--fpr", default=1e-9, show_default=True, type=float, help="False-positive rate per item.")
@click.option("--out", "out", default="scan-results.parquet", show_default=True, help="Output file, .parquet or .jsonl.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--ray-address", default=None, help="Join this Ray cluster (default: start a local Ray instance).")
@click.option("--workers", default=None, type=click.IntRange(1), help="Local engine: processes (default: all cores).")
@click.option(
    "--shard-size", default=10_000, show_default=True, type=click.IntRange(1), help="Table rows per shard (the unit of resume)."
)
@click.option("--scheme", "schemes", multiple=True, help="Only try this text scheme or preset (repeatable; default: all).")
@click.option("--spans", is_flag=True, help="Also search texts for marked passages (much slower).")
@click.option(
    "--canonical",
    is_flag=True,
    help="Also test each text's canonical form, as single checks do (about 5x slower; see docs/scan.md).",
)
@click.option("--no-image-search", is_flag=True, help="Skip the search for crops and rotations in images (faster).")
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@friendly_errors
def scan(
    key_paths: tuple[str, ...],
    text_column: str | None,
    id_column: str | None,
    engine: str,
    fpr: float,
    out: str,
    as_json: bool,
    ray_address: str | None,
    workers: int | None,
    shard_size: int,
    schemes: tuple[str, ...],
    spans: bool,
    canonical: bool,
    no_image_search: bool,
    inputs: tuple[str, ...],
) -> None:
    """Scan INPUT... (JSONL, CSV, Parquet, text or image files and directories; local paths or
    fsspec URLs) and write one row per item to --out. An interrupted scan resumes when run again."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from dojang.keys import KeyRing
    from dojang.scan import scan as run_scan

    keys = KeyRing.from_files(key_paths)  # a bad key file stops here, before any work
    progress = Progress(
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} items/s"),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
        disable=as_json,
    )
    state: dict[str, int] = {"start_done": 0}
    task = TaskID(0)

    def on_plan(total: int, done: int) -> None:
        nonlocal task
        task = progress.add_task("scan", total=total, completed=done, rate="-")
        state["start_done"] = done

    def on_shard(_index: int, items: int) -> None:
        progress.advance(task, items)
        t = progress.tasks[task]
        elapsed = t.elapsed or 0.0
        rate = (t.completed - state["start_done"]) / elapsed if elapsed > 0 else 0.0
        progress.update(task, rate=f"{rate:,.0f}")

    with progress:
        summary = run_scan(
            list(inputs),
            keys,
            out=out,
            engine=engine,
            alpha=fpr,
            text_column=text_column,
            id_column=id_column,
            schemes=schemes,
            spans=spans,
            canonical=canonical,
            image_search=not no_image_search,
            workers=workers,
            rows_per_shard=shard_size,
            ray_address=ray_address,
            progress=on_shard,
            on_plan=on_plan,
        )
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
        return
    d = summary.to_dict()
    click.echo(
        f"{d['items']} items: {d['detected']} detected, {d['not_detected']} not detected, "
        f"{d['inconclusive']} inconclusive, {d['errors']} errors"
    )
    click.echo(f"false positives expected at fpr {fpr:g}: {d['expected_false_positives']:.3g}")
    for key_id, n in d["detected_by_key"].items():
        click.echo(f"  {key_id}: {n} detected")
    rate = d["items"] / d["seconds"] if d["seconds"] else 0.0
    click.echo(f"wrote {d['output']} ({d['seconds']:.1f} s, {rate:,.0f} items/s)", err=True)
