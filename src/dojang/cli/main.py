"""``dojang``: top-level group, ``keygen`` and ``demo``."""

from __future__ import annotations

import click

from dojang import __version__
from dojang.cli._common import friendly_errors, quiet_third_party, setup_logging
from dojang.cli.bench import bench
from dojang.cli.image import image
from dojang.cli.provenance import certs, stamp, verify
from dojang.cli.scan import scan
from dojang.cli.serve import serve
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
@click.option("--prompt", default="In three sentences, why do people enjoy walking in the rain?", show_default=True)
@click.option("--scheme", default="default", show_default=True, help="Scheme or preset to stamp with.")
@click.option("--max-new-tokens", default=120, show_default=True, type=int)
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--seed", default=None, type=int, help="Fix the sampling noise.")
@friendly_errors
def demo(prompt: str, scheme: str, max_new_tokens: int, temperature: float, seed: int | None) -> None:
    """Generate an answer with the default model under a fresh key, detect it, and detect an
    unwatermarked answer too."""
    from rich.console import Console
    from rich.panel import Panel

    from dojang.keys import generate_key
    from dojang.text import TextDetector, generate_batch
    from dojang.text.models import load_model

    console = Console()
    with console.status("loading the default model (first run converts it, ~20 s)"):
        model, tokenizer = load_model()
    key = generate_key()  # lives in memory only
    console.print(f"fresh key [bold]{key.key_id}[/] (in memory only), scheme [bold]{scheme}[/]")
    detector = TextDetector(keys=key, tokenizer=tokenizer)
    settings = dict(model=model, tokenizer=tokenizer, max_new_tokens=max_new_tokens, temperature=temperature)
    for label, use_key in (("watermarked", key), ("not watermarked", None)):
        with console.status(f"generating the {label} answer"):
            gen = generate_batch([prompt], key=use_key, scheme=scheme, seed=seed, **settings)[0]
        result = detector.detect(gen.text)
        colour = {"detected": "green", "not_detected": "yellow", "inconclusive": "blue"}[result.verdict.value]
        verdict = (
            f"[bold {colour}]{result.verdict.value}[/]  p = {result.p_value:.3g}  "
            f"(log10 p = {result.log10_p_value:.1f}), {result.tokens_scored} tokens scored, scheme {result.scheme}"
        )
        console.print(Panel(gen.text, title=f"{label} answer", subtitle=verdict))


main.add_command(text)
main.add_command(image)
main.add_command(certs)
main.add_command(stamp)
main.add_command(verify)
main.add_command(serve)
main.add_command(bench)
main.add_command(scan)
