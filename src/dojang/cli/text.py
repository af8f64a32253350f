"""``dojang text generate`` and ``dojang text detect``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from dojang.cli._common import friendly_errors
from dojang.errors import InputError


def _read_text(path: str | None) -> str:
    """The text to check, from FILE or stdin, as strict UTF-8."""
    if path is None or path == "-":
        raw = sys.stdin.buffer.read()
        where = "stdin"
    else:
        where = path
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory") from None
        except OSError as err:
            raise InputError(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})") from None
    if not text.strip():
        raise InputError(f"{where}: the text is empty")
    return text


@click.group()
def text() -> None:
    """Text watermarks: generate stamped answers, detect them later."""


@text.command("generate")
@click.option("--key", "key_path", required=True, help="Key file from 'dojang keygen'.")
@click.option(
    "--scheme", default="default", show_default=True, help="kgw, synthid, gumbel, or a preset (default, robust, distortion-free)."
)
@click.option("--max-new-tokens", default=200, show_default=True, type=int)
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--top-p", default=None, type=float, help="Nucleus sampling mass.")
@click.option("--top-k", default=None, type=int, help="Sample among the k most likely tokens.")
@click.option("--seed", default=None, type=int, help="Fix the sampling noise (the mark depends only on the key).")
@click.option(
    "--model",
    "model_path",
    default=None,
    help="A local transformers model directory (default: the embedded SmolLM2-135M-Instruct).",
)
@click.option("--no-chat", is_flag=True, help="Feed PROMPT as raw text instead of through the chat template.")
@click.option(
    "--store",
    "store_path",
    default=None,
    help="Record a provenance entry (key id, scheme, model, time, hash of the text) in this manifest store "
    "(a SQLite path; 'default' for the one in your data directory).",
)
@click.option(
    "--c2pa",
    "c2pa",
    is_flag=True,
    help="Sign a C2PA manifest (AI-generated, watermarked) into the answer as invisible Unicode variation selectors "
    "(~14 KB for a short answer; many editors drop them on copy-paste). Needs --cert and --signing-key.",
)
@click.option("--cert", "cert", default=None, help="With --c2pa: signing certificate chain (PEM, leaf first).")
@click.option("--signing-key", "signing_key", default=None, help="With --c2pa: the signing certificate's private key (PEM).")
@click.option(
    "--generator", default=None, help="With --c2pa: the AI model or product named in the manifest (default: the model)."
)
@click.option("--tsa-url", default=None, help="With --c2pa: RFC 3161 timestamp authority URL (optional).")
@click.argument("prompt")
@friendly_errors
def generate_cmd(
    key_path: str,
    scheme: str,
    max_new_tokens: int,
    temperature: float,
    top_p: float | None,
    top_k: int | None,
    seed: int | None,
    model_path: str | None,
    no_chat: bool,
    store_path: str | None,
    c2pa: bool,
    cert: str | None,
    signing_key: str | None,
    generator: str | None,
    tsa_url: str | None,
    prompt: str,
) -> None:
    """Generate a watermarked answer to PROMPT; prints only the answer (with --c2pa, its invisible manifest too)."""
    from dojang.keys import load_key
    from dojang.text import generate_batch, resolve
    from dojang.text.models import load_model

    key = load_key(key_path)
    config = resolve(scheme)  # fail on a bad scheme before loading the model
    if not prompt.strip():
        raise InputError("the prompt is empty")
    store = None
    if store_path is not None:  # open it before generating: a bad path fails fast
        from dojang.provenance import open_store

        store = open_store(None if store_path == "default" else store_path)
    signer = _c2pa_signer(c2pa, cert, signing_key, generator, tsa_url)  # before the model: a bad chain fails fast
    model, tokenizer = load_model(model_path)
    gen = generate_batch(
        [prompt],
        key=key,
        scheme=config,
        model=model,
        tokenizer=tokenizer,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        chat=not no_chat,
    )[0]
    from dojang.text.models import DEFAULT_MODEL_NAME

    model_name = model_path or DEFAULT_MODEL_NAME
    signed = None
    if signer is not None:
        from dojang.provenance import sign_text

        signed = sign_text(gen.text, signer=signer, generator=generator or model_name, key_id=key.key_id, scheme=scheme)
    click.echo(signed.text if signed is not None else gen.text)
    if store is not None:
        from dojang.provenance import record_text

        entry = record_text(store, gen.text, key_id=key.key_id, scheme=scheme, model=model_name)
        click.echo(f"recorded provenance entry {entry.entry_id} in {store.location}", err=True)
    if signed is not None:
        click.echo(
            f"signed C2PA manifest {signed.label} by {signed.signer} embedded as {signed.wrapper_bytes} bytes of invisible "
            "characters (many editors drop them on copy-paste)",
            err=True,
        )


def _c2pa_signer(c2pa: bool, cert: str | None, signing_key: str | None, generator: str | None, tsa_url: str | None) -> Any:
    """The signer for --c2pa, or None; the signing options without --c2pa are a mistake, said plainly."""
    if not c2pa:
        given = [
            name
            for name, value in (
                ("--cert", cert),
                ("--signing-key", signing_key),
                ("--generator", generator),
                ("--tsa-url", tsa_url),
            )
            if value is not None
        ]
        if given:
            raise InputError(f"{', '.join(given)} only apply with --c2pa")
        return None
    if cert is None or signing_key is None:
        raise InputError("--c2pa needs --cert CHAIN and --signing-key PEM (make a test chain with 'dojang certs init DIR')")
    if generator is not None and not generator.strip():
        raise InputError("the generator name must not be empty")
    from dojang.provenance import ManifestSigner

    return ManifestSigner.from_files(cert, signing_key, tsa_url=tsa_url)


@text.command("detect")
@click.option("--key", "key_paths", multiple=True, required=True, help="Key file; repeat for a key ring.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--scheme", "schemes", multiple=True, help="Only try this scheme or preset (repeatable; default: all).")
@click.option("--alpha", default=1e-4, show_default=True, type=float, help="False-positive rate per document.")
@click.option("--prompt", default=None, help="The prompt the answer followed (context only, never scored).")
@click.option("--no-scan", is_flag=True, help="Skip the span scan (whole-document test only).")
@click.option("--model", "model_path", default=None, help="Tokenizer of this local model (default: the embedded model's).")
@click.argument("file", required=False)
@friendly_errors
def detect_cmd(
    key_paths: tuple[str, ...],
    as_json: bool,
    schemes: tuple[str, ...],
    alpha: float,
    prompt: str | None,
    no_scan: bool,
    model_path: str | None,
    file: str | None,
) -> None:
    """Check FILE (or stdin) for a dojang text watermark."""
    from dojang.keys import KeyRing
    from dojang.text import TextDetector, resolve
    from dojang.text.models import load_tokenizer

    keys = KeyRing.from_files(key_paths)
    configs = [resolve(s) for s in schemes] or None
    content = _read_text(file)
    detector = TextDetector(keys=keys, tokenizer=load_tokenizer(model_path), configs=configs, alpha=alpha, scan=not no_scan)
    result = detector.detect(content, prompt=prompt)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    _render(content, result)


def _render(content: str, result) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.text import Text

    from dojang.text import normalize

    console = Console()
    colour = {"detected": "bold green", "not_detected": "bold yellow", "inconclusive": "bold blue"}[result.verdict.value]
    console.print(Text(result.verdict.value.replace("_", " "), style=colour), end="  ")
    console.print(
        f"p = {result.p_value:.3g} (log10 p = {result.log10_p_value:.1f}); {result.tokens_scored} tokens scored; "
        f"scheme {result.scheme}; key {result.key_id}"
    )
    if result.spans:
        shown = Text(normalize(content))
        for span in result.spans:
            shown.stylize("black on green", span.start, span.end)
        console.print(f"{len(result.spans)} marked span(s), highlighted:")
        console.print(shown)
