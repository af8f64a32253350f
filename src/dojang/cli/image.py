"""``dojang image embed`` and ``dojang image detect``."""

from __future__ import annotations

import json

import click

from dojang.cli._common import friendly_errors


@click.group()
def image() -> None:
    """Image watermarks: embed an invisible keyed mark with a payload, detect it later."""


@image.command("embed")
@click.option("--key", "key_path", required=True, help="Key file from 'dojang keygen'.")
@click.option("--payload", default=None, help="64-bit payload as 16 hex digits (default: random).")
@click.option("--quality", default=None, type=click.IntRange(1, 100), help="JPEG/WebP quality (default 95).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.argument("src", metavar="IN")
@click.argument("dst", metavar="OUT")
@friendly_errors
def embed_cmd(key_path: str, payload: str | None, quality: int | None, as_json: bool, src: str, dst: str) -> None:
    """Write IN, marked, to OUT (PNG, JPEG or WebP by suffix); prints the payload used."""
    from dojang.image import embed_file, parse_payload
    from dojang.keys import load_key

    key = load_key(key_path)
    chosen = parse_payload(payload) if payload is not None else None  # fail early on a bad payload
    result = embed_file(src, dst, key, chosen, quality=quality)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo(f"payload {result.payload.hex()}")
    click.echo(
        f"wrote {result.path} ({result.width}x{result.height} {result.format}, PSNR {result.psnr:.1f} dB, key {result.key_id}, "
        "read back and verified)",
        err=True,
    )


@image.command("detect")
@click.option("--key", "key_paths", multiple=True, required=True, help="Key file; repeat for a key ring.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--alpha", default=1e-6, show_default=True, type=float, help="False-positive rate per image.")
@click.option("--no-search", is_flag=True, help="Skip the search for crops and rotations (faster).")
@click.argument("src", metavar="IN")
@friendly_errors
def detect_cmd(key_paths: tuple[str, ...], as_json: bool, alpha: float, no_search: bool, src: str) -> None:
    """Check the image IN for a dojang image mark."""
    from dojang.image import ImageDetector
    from dojang.keys import KeyRing

    detector = ImageDetector(keys=KeyRing.from_files(key_paths), alpha=alpha, search=not no_search)
    result = detector.detect_file(src)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console()
    colour = {"detected": "bold green", "not_detected": "bold yellow", "inconclusive": "bold blue"}[result.verdict.value]
    console.print(Text(result.verdict.value.replace("_", " "), style=colour), end="  ")
    if result.reason and not result.detected:
        console.print(result.reason)
        return
    line = f"p = {result.p_value:.3g} (log10 p = {result.log10_p_value:.1f}); key {result.key_id}"
    if result.payload is not None:
        line += f"; payload {result.payload.hex()} ({result.bit_errors_corrected} bit errors corrected)"
    console.print(line)
    if result.reason:  # a mark made before forgery resistance
        console.print(result.reason)
