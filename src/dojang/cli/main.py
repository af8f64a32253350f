"""``dojang``: top-level group, ``keygen`` and ``demo``."""

from __future__ import annotations

import click

from dojang import __version__
from dojang.cli._common import friendly_errors, quiet_third_party, setup_logging
from dojang.cli.bench import bench
from dojang.cli.image import image
from dojang.cli.provenance import certs, stamp, verify
from dojang.cli.scan import scan
from dojang.cli.serve import serve, tokens, worker
from dojang.cli.text import text


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dojang")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """dojang: stamp AI-generated content and check it later."""
    setup_logging(verbose)
    quiet_third_party()


@main.command()
@click.option("-o", "--output", "output", required=True, help="Where to write the new key file (mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@friendly_errors
def keygen(output: str, force: bool) -> None:
    """Write a new watermark key: a key id and a 256-bit secret."""
    from dojang.keys import generate_key, save_key

    key = generate_key()
    path = save_key(key, output, overwrite=force)
    click.echo(f"wrote {key.key_id} to {path}")


@main.command()
@click.option("--prompt", default="Write a short paragraph on why people enjoy walking in the rain.", show_default=True)
@click.option("--scheme", default="default", show_default=True, help="Scheme or preset to stamp the text with.")
@click.option("--max-new-tokens", default=120, show_default=True, type=int)
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--seed", default=None, type=int, help="Fix the sampling noise.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the lines.")
@friendly_errors
def demo(prompt: str, scheme: str, max_new_tokens: int, temperature: float, seed: int | None, as_json: bool) -> None:
    """Every capability on the embedded defaults, under a fresh in-memory key: a marked and an
    unmarked answer from the default model, a marked picture read after a JPEG round trip and a
    crop (and the picture unmarked), and a stamped picture whose stripped copy recovers its
    credentials. One verdict per line; exit status 1 if any verdict is not the expected one."""
    import json
    import sys

    from rich.console import Console
    from rich.markup import escape

    from dojang.cli._demo import Step, run_demo

    console = Console(stderr=as_json)
    colours = {"detected": "green", "trusted": "green", "recovered": "green", "not_detected": "yellow", "skipped": "blue"}

    def show(step: Step) -> None:
        if as_json:
            return
        colour = colours.get(step.verdict, "red") if step.as_expected else "bold red"
        p = f"p = {step.p_value:.3g}" if step.p_value is not None else ""
        console.print(f"{step.capability:10s} {escape(step.case):42s} [{colour}]{step.verdict:12s}[/] {p}", soft_wrap=True)
        console.print(f"{'':10s} [dim]{escape(step.detail)} ({step.seconds:.1f} s)[/]", soft_wrap=True)
        if step.text is not None:
            console.print(f"{'':10s} [dim]{escape(' '.join(step.text.split())[:160])}...[/]", soft_wrap=True)

    if not as_json:
        console.print(f"dojang demo: a fresh key, in memory only; text scheme [bold]{scheme}[/]")
    key_id, steps = run_demo(prompt, scheme, max_new_tokens, temperature, seed, on_step=show, status=console.status)
    ok = all(step.as_expected for step in steps)
    if as_json:
        click.echo(json.dumps({"key_id": key_id, "as_expected": ok, "steps": [s.to_dict() for s in steps]}, indent=1))
    else:
        console.print("every verdict as expected" if ok else "[bold red]a verdict was not the expected one[/]")
    if not ok:
        sys.exit(1)


main.add_command(text)
main.add_command(image)
main.add_command(certs)
main.add_command(stamp)
main.add_command(verify)
main.add_command(serve)
main.add_command(tokens)
main.add_command(worker)
main.add_command(bench)
main.add_command(scan)
