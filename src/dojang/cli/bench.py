"""``dojang bench text`` and ``dojang bench image``: run an evaluation suite and write a report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import click

from dojang.cli._common import friendly_errors


@click.group()
def bench() -> None:
    """Evaluation workbench: robustness and quality under attack, with plots and a report."""


@contextmanager
def _progress(title: str) -> Iterator[Callable[[str, int, int], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:  # a log or a pipe: a live bar would only show at the end, so one line a step

        def line(stage: str, done: int, total: int) -> None:
            click.echo(f"{title}: [{done}/{total}] {stage}", err=True)

        yield line
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bar:  # fmt: skip
        task = bar.add_task(title, total=None)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"{title}: {stage}", completed=done, total=total)

        yield update


def _key(path: str | None) -> Any:
    from dojang.keys import load_key

    return load_key(path) if path else None


def _finish(result: Any, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from dojang.bench import write_report

    json_path, html_path = write_report(result, out)
    console = Console(stderr=True)
    fprs = list(result.attacks[0].tpr_nominal) if result.attacks else []
    table = Table(title=f"dojang bench {result.modality}: {result.scheme}, key {result.key_id}")
    for col in ["attack", *[f"TPR p<={a:g}" for a in fprs], "AUC"]:
        table.add_column(col, justify="left" if col == "attack" else "right")
    for a in result.attacks:
        table.add_row(a.name + (" (expected failure)" if a.expected_failure else ""),
                      *[f"{a.tpr_nominal[f]:.2f}" for f in fprs], f"{a.auc:.3f}")  # fmt: skip
    console.print(table)
    for flag in result.flags:
        console.print(f"[bold red]flag:[/] {flag}")
    click.echo(f"wrote {html_path} and {json_path}")


@bench.command("text")
@click.option("--scheme", default=None, help="Scheme or preset to measure (default: the suite's, 'default').")
@click.option("--suite", "suite_path", default=None, help="Suite file (.toml, .yaml); default: the built-in suite.")
@click.option("--quick", is_flag=True, help="A small version of the suite (a smoke run).")
@click.option("--key", "key_path", default=None, help="Key file (default: a fresh key, kept in memory only).")
@click.option("--model", "model_path", default=None, help="Local transformers model to generate (and paraphrase) with.")
@click.option("--oracle", "oracle_path", default=None, help="Local model that scores perplexity (default: the generator).")
@click.option("--paraphraser", "paraphraser_path", default=None,
              help="Local model the paraphrase attack rewrites with (default: the generator).")  # fmt: skip
@click.option("--out", "out", required=True, help="Folder for report.html and results.json.")
@friendly_errors
def text_cmd(
    scheme: str | None, suite_path: str | None, quick: bool, key_path: str | None, model_path: str | None,
    oracle_path: str | None, paraphraser_path: str | None, out: str,
) -> None:  # fmt: skip
    """Generate marked and unmarked answers, attack them, detect, and report."""
    from dojang.bench import TextSuite, load_suite, run_text

    suite = load_suite(suite_path, "text")
    if not isinstance(suite, TextSuite):  # pragma: no cover - load_suite returns the modality asked for
        raise TypeError("expected a text suite")
    given = (("scheme", scheme), ("model", model_path), ("oracle", oracle_path), ("paraphraser", paraphraser_path))
    changes: dict[str, Any] = {k: v for k, v in given if v is not None}
    suite = replace(suite, **changes) if changes else suite
    suite = suite.quick() if quick else suite
    key = _key(key_path)
    with _progress("bench text") as progress:
        result = run_text(suite, key=key, progress=progress)
    _finish(result, out)


@bench.command("image")
@click.option("--suite", "suite_path", default=None, help="Suite file (.toml, .yaml); default: the built-in suite.")
@click.option("--quick", is_flag=True, help="A small version of the suite (a smoke run).")
@click.option("--key", "key_path", default=None, help="Key file (default: a fresh key, kept in memory only).")
@click.option("--adversary", is_flag=True,
              help="Forge and remove the mark instead: averaging (4 denoisers), pairs and the copy attack.")  # fmt: skip
@click.option("--sizes", default=None, help="With --adversary: marked-set sizes N, comma-separated (default 1,10,100).")
@click.option("--victims", type=int, default=None, help="With --adversary: clean and marked images per attack (default 20).")
@click.option("--side", type=int, default=None, help="With --adversary: side of the square test images in px (default 512).")
@click.option("--out", "out", required=True, help="Folder for report.html and results.json.")
@friendly_errors
def image_cmd(
    suite_path: str | None,
    quick: bool,
    key_path: str | None,
    adversary: bool,
    sizes: str | None,
    victims: int | None,
    side: int | None,
    out: str,
) -> None:
    """Mark test images, attack them, detect, and report."""
    if adversary:
        _adversary(quick, key_path, sizes, victims, side, out)
        return
    from dojang.bench import ImageSuite, load_suite, run_image

    suite = load_suite(suite_path, "image")
    if not isinstance(suite, ImageSuite):  # pragma: no cover - load_suite returns the modality asked for
        raise TypeError("expected an image suite")
    suite = suite.quick() if quick else suite
    key = _key(key_path)
    with _progress("bench image") as progress:
        result = run_image(suite, key=key, progress=progress)
    _finish(result, out)


def _adversary(quick: bool, key_path: str | None, sizes: str | None, victims: int | None, side: int | None, out: str) -> None:
    from dojang.bench._adversary import AdversarySuite, run_adversary, write_adversary_report
    from dojang.errors import ConfigError

    suite = AdversarySuite().quick() if quick else AdversarySuite()
    changes: dict[str, Any] = {}
    if sizes is not None:
        try:
            changes["sizes"] = tuple(int(x) for x in sizes.split(","))
        except ValueError:
            raise ConfigError(f"--sizes: expected comma-separated counts such as 1,10,100, got {sizes!r}") from None
    if victims is not None:
        changes["victims"] = victims
    if side is not None:
        changes["side"] = side
    suite = replace(suite, **changes) if changes else suite
    with _progress("bench image --adversary") as progress:
        result = run_adversary(suite, key=_key(key_path), progress=progress)
    json_path, html_path = write_adversary_report(result, out)
    click.echo(f"{'estimator':10s} {'N':>5s} {'scale':>5s} {'forged':>7s} {'pattern':>7s} {'dB':>6s} {'removed':>7s} {'dB':>6s}")
    for c in result["cells"]:
        click.echo(f"{c['estimator']:10s} {c['n']:5d} {c['scale']:5.1f} {c['forgery_rate']:7.3f} {c['pattern_only_rate']:7.2f} "
                   f"{c['forged_psnr_db'] or 0:6.1f} {c['removal_rate']:7.3f} {c['removal_psnr_db'] or 0:6.1f}")  # fmt: skip
    click.echo(f"wrote {html_path} and {json_path}")
