"""``dojang certs init|check``, ``dojang stamp`` and ``dojang verify``."""

from __future__ import annotations

import json
from typing import Any

import click

from dojang.cli._common import friendly_errors
from dojang.errors import ProvenanceError

STATE_WORDS = {
    "trusted": "TRUSTED: valid Content Credentials from a signer you trust",
    "valid": "VALID: the Content Credentials are intact, but the signer is NOT in your trust list",
    "invalid": "INVALID: the Content Credentials were tampered with or broken; nothing here is attributed to the signer",
    "recovered": "RECOVERED: the file had no credentials; the watermark recovered them from the store",
    "no_credential": "NO CREDENTIAL: no Content Credentials and nothing recovered",
    "remote": "REMOTE: the file's Content Credentials live at a URL that was not fetched",
}
# "valid" with a trusted signer: c2pa-rs withheld "trusted" for something beside the signer.
VALID_TRUSTED_IDENTITY = (
    "VALID: intact Content Credentials from a signer you trust, but an identity assertion in them is not trusted"
)
VALID_TRUSTED_OTHER = (
    "VALID: intact Content Credentials from a signer you trust, but not marked trusted (see the validation codes)"
)


@click.group()
def certs() -> None:
    """C2PA signing certificates: make a development chain, explain why a chain is rejected."""


@certs.command("init")
@click.argument("directory", metavar="DIR")
@click.option("--force", is_flag=True, help="Replace an existing chain in DIR.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650), help="Validity of the signing certificate.")
@friendly_errors
def certs_init(directory: str, force: bool, days: int) -> None:
    """Write a development chain (root CA -> intermediate CA -> signer) into DIR. FOR TESTING ONLY."""
    from dojang.provenance._certs import DEV_NOTICE, init_dev_chain

    paths = init_dev_chain(directory, force=force, days=days)
    click.secho(DEV_NOTICE, fg="yellow", err=True)
    click.echo(f"chain (leaf + intermediate): {paths.chain}")
    click.echo(f"signing key (mode 0600):     {paths.signing_key}")
    click.echo(f"trust anchor (root CA):      {paths.root}")


@certs.command("check")
@click.argument("cert", metavar="CERT")
@click.option("--signing-key", "key_path", default=None, help="Also check that this PEM key belongs to the signing certificate.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly_errors
def certs_check(cert: str, key_path: str | None, as_json: bool) -> None:
    """Explain, in words, why C2PA validators would reject the chain in CERT (leaf first)."""
    from dojang.provenance._certs import check_chain, load_chain

    chain = load_chain(cert)
    key = None
    if key_path is not None:
        from pathlib import Path

        try:
            key = Path(key_path).read_bytes()
        except OSError as err:
            raise ProvenanceError(f"cannot read signing key {key_path}: {err.strerror}") from None
    problems = check_chain(chain, private_key=key)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": not problems,
                    "certificates": len(chain),
                    "problems": [{"code": p.code, "message": p.message} for p in problems],
                }
            )
        )
    elif not problems:
        click.echo(f"{cert}: OK, {len(chain)} certificate(s); C2PA signers accept this chain")
    else:
        click.echo(f"{cert}: would be rejected ({len(problems)} problem{'s' if len(problems) > 1 else ''}):")
        for p in problems:
            click.echo(f"  - {p.message}")
    if problems:
        raise SystemExit(1)


def _signer(cert: str, signing_key: str | None, tsa_url: str | None) -> Any:
    from dojang.provenance import ManifestSigner

    if signing_key is None:
        raise ProvenanceError("--signing-key is required (or sign through a callback from Python for an HSM/KMS key)")
    return ManifestSigner.from_files(cert, signing_key, tsa_url=tsa_url)


@click.command()
@click.option("--key", "key_path", required=True, help="Watermark key file from 'dojang keygen'.")
@click.option("--cert", "cert", required=True, help="Signing certificate chain (PEM, leaf first).")
@click.option("--signing-key", "signing_key", required=True, help="The signing certificate's private key (PEM).")
@click.option(
    "--generator", default="unnamed AI generator", show_default=True, help="The AI model or product that made the image."
)
@click.option("--store", "store_path", default=None, help="Manifest store (SQLite path; default: your data directory).")
@click.option("--tsa-url", default=None, help="RFC 3161 timestamp authority URL (optional).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.argument("src", metavar="IN")
@click.argument("dst", metavar="OUT")
@friendly_errors
def stamp(
    key_path: str,
    cert: str,
    signing_key: str,
    generator: str,
    store_path: str | None,
    tsa_url: str | None,
    as_json: bool,
    src: str,
    dst: str,
) -> None:
    """Stamp an AI image: watermark (random 64-bit content id), sign C2PA Content Credentials, file them."""
    from dojang.keys import load_key
    from dojang.provenance import open_store
    from dojang.provenance import stamp as do_stamp

    key = load_key(key_path)
    signer = _signer(cert, signing_key, tsa_url)
    store = open_store(store_path)
    result = do_stamp(src, dst, key=key, signer=signer, store=store, generator=generator)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo(f"content id {result.content_id}")
    click.echo(
        f"wrote {result.path}: watermarked (key {result.key_id}, PSNR {result.psnr:.1f} dB), signed by "
        f"{result.signer} as AI-generated by {result.generator}; manifest filed in {result.store}",
        err=True,
    )


@click.command()
@click.option("--key", "key_paths", multiple=True, help="Watermark key file; repeat for several providers' keys.")
@click.option("--trust", "trust_path", default=None, help="PEM file of trust anchors (root CAs) whose signers you trust.")
@click.option(
    "--store", "store_path", default=None, help="Manifest store to recover credentials from (default: your data directory)."
)
@click.option("--no-store", is_flag=True, help="Do not look anything up in a store.")
@click.option(
    "--allow-remote-manifest",
    "remote_allow",
    multiple=True,
    metavar="URL_PREFIX",
    help="Fetch a manifest the file names by URL when the URL starts with this prefix (repeatable; default: never fetch).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.argument("file", metavar="FILE")
@friendly_errors
def verify(
    key_paths: tuple[str, ...],
    trust_path: str | None,
    store_path: str | None,
    no_store: bool,
    remote_allow: tuple[str, ...],
    as_json: bool,
    file: str,
) -> None:
    """Verify any file (image or text): its Content Credentials, its watermark, and what the store recovers."""
    from pathlib import Path

    from dojang.keys import KeyRing, load_key
    from dojang.provenance import default_store_path, open_store
    from dojang.provenance import verify as do_verify

    keys = KeyRing([load_key(p) for p in key_paths]) if key_paths else None
    trust = None
    if trust_path is not None:
        from dojang.provenance import load_chain

        load_chain(trust_path)  # fail clearly on a bad anchors file
        trust = Path(trust_path).read_text()
    store = None
    if not no_store and (store_path is not None or default_store_path().exists()):
        store = open_store(store_path)
    result = do_verify(file, keys=keys, trust_pem=trust, store=store, remote_allow=remote_allow)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    colours = {"trusted": "green", "valid": "yellow", "invalid": "red", "recovered": "cyan", "remote": "yellow"}
    colour = colours.get(result.state)
    headline = STATE_WORDS[result.state]
    if result.state == "valid" and result.signer is not None and result.signer["trusted"]:
        unconfirmed = any(i.state != "trusted" for i in result.identity_assertions)
        headline = VALID_TRUSTED_IDENTITY if unconfirmed else VALID_TRUSTED_OTHER
    click.secho(headline, fg=colour, bold=True)
    click.echo(f"  {result.reason}")
    if result.signer:
        click.echo(
            f"  signer: {result.signer['name']} (issuer {result.signer['issuer']})"
            + ("" if result.signer["trusted"] else ", untrusted")
        )
    for identity in result.identity_assertions:
        click.echo(f"  identity assertion {identity.label}: {identity.signer or '?'} ({identity.state})")
    if result.signed_at:
        click.echo(f"  signed: {result.signed_at}")
    if result.ai_generated is not None:
        click.echo(f"  AI-generated: {'yes' if result.ai_generated else 'not declared'}")
    for action in result.actions:
        click.echo(f"  action: {action.get('action')} by {action.get('softwareAgent', '?')}")
    if result.watermark is not None:
        w = result.watermark
        payload = f", content id {w.payload.hex()}" if w.payload else ""
        click.echo(f"  watermark: {w.verdict.value} (p = {w.p_value:.3g}, key {w.key_id}{payload})")
    if result.validation_codes:
        click.echo("  validation: " + ", ".join(result.validation_codes))
    data = result.to_dict()
    for which in ("embedded", "recovered"):
        if f"{which}_manifest" in data:
            m = data[f"{which}_manifest"]
            who = "claims to be signed by" if m["state"] == "invalid" else "signed by"  # an invalid one is not attributed
            click.echo(f"  {which} manifest: {m['label']} ({m['state']}), {who} {m['signer']}")
