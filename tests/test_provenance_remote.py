"""A file that names its C2PA manifest by URL (a remote manifest): reading it never makes a request
the file chose. Real signing (c2pa-python, a remote URL in the file's XMP), a real HTTP server on
localhost that counts the requests it gets; `dojang verify` (library and CLI) and the service's
settings."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from dojang.cli.main import main
from dojang.image import embed, random_payload
from dojang.provenance import ManifestSigner, ai_image_manifest, init_dev_chain, verify_bytes
from dojang.provenance._c2pa import REMOTE_NOT_FETCHED, _context, remote_allowed
from tests.helpers import fixed_key

c2pa = pytest.importorskip("c2pa")


@dataclass
class Server:
    url: str
    manifest: bytes = b""
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            body = state.manifest if self.path == "/manifests/one.c2pa" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/c2pa")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    httpd.shutdown()


@pytest.fixture(scope="module")
def remote_file(server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A marked JPEG whose manifest is not embedded but named by URL; the server holds it."""
    root = tmp_path_factory.mktemp("remote")
    chain = init_dev_chain(root / "certs")
    signer = ManifestSigner.from_files(str(chain.chain), str(chain.signing_key))
    payload = random_payload()
    rng = np.random.default_rng(3)
    picture = Image.fromarray(rng.integers(0, 255, (320, 320, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(1))
    marked = embed(picture, fixed_key(1), payload)
    buf = io.BytesIO()
    marked.save(buf, "JPEG", quality=95)
    manifest = ai_image_manifest(title="remote", generator="test", payload=payload, when="2026-12-07T00:00:00Z", key_id="dk-x")
    builder = c2pa.Builder(manifest, _context())
    builder.set_no_embed()
    url = server.url + "/manifests/one.c2pa"
    builder.set_remote_url(url)
    out = io.BytesIO()
    server.manifest = bytes(builder.sign(signer.native(), "image/jpeg", io.BytesIO(buf.getvalue()), out))
    return out.getvalue(), chain.root.read_text()


def test_a_remote_manifest_is_not_fetched_by_default(server: Server, remote_file: tuple[bytes, str]) -> None:
    data, trust = remote_file
    server.hits.clear()
    result = verify_bytes(data, name="remote.jpg", keys=fixed_key(1), trust_pem=trust)
    assert server.hits == []  # no request left this process
    assert result.state == "remote" and result.remote_manifest == server.url + "/manifests/one.c2pa"
    assert REMOTE_NOT_FETCHED in result.validation_codes
    assert "lives at " + server.url in result.reason and "not fetched" in result.reason
    assert result.watermark is not None and result.watermark.detected  # the watermark is still read
    assert result.ai_generated is True and result.signer is None  # nothing attributed to a signer unread
    out = result.to_dict()
    assert out["state"] == "remote" and out["remote_manifest"] == result.remote_manifest


def test_an_allowed_prefix_fetches_and_validates_it(server: Server, remote_file: tuple[bytes, str]) -> None:
    data, trust = remote_file
    server.hits.clear()
    result = verify_bytes(data, name="remote.jpg", trust_pem=trust, remote_allow=[server.url + "/manifests/"])
    assert server.hits == ["/manifests/one.c2pa"]
    assert result.state == "trusted" and result.signer is not None and result.remote_manifest is None
    server.hits.clear()
    other = verify_bytes(data, name="remote.jpg", trust_pem=trust, remote_allow=[server.url + "/elsewhere/"])
    assert server.hits == [] and other.state == "remote"


def test_allowed_prefixes_match_whole_hosts() -> None:
    assert remote_allowed("https://cr.example.com/m/1.c2pa", ["https://cr.example.com"])
    assert not remote_allowed("https://cr.example.com.evil.net/m.c2pa", ["https://cr.example.com"])
    assert not remote_allowed("http://cr.example.com/m.c2pa", ["https://cr.example.com/"])
    assert not remote_allowed("https://cr.example.com/m.c2pa", [])


def test_the_cli_reports_the_url_and_fetches_only_when_allowed(
    server: Server, remote_file: tuple[bytes, str], tmp_path: Path
) -> None:
    data, _trust = remote_file
    path = tmp_path / "remote.jpg"
    path.write_bytes(data)
    server.hits.clear()
    runner = CliRunner()
    res = runner.invoke(main, ["verify", "--no-store", "--json", str(path)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["state"] == "remote" and server.hits == []
    res = runner.invoke(main, ["verify", "--no-store", str(path)])
    assert "REMOTE" in res.output and "not fetched" in res.output
    res = runner.invoke(main, ["verify", "--no-store", "--json", "--allow-remote-manifest", server.url, str(path)])
    assert json.loads(res.output)["state"] == "valid" and server.hits == ["/manifests/one.c2pa"]


def test_the_service_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from dojang.errors import ServiceError
    from dojang.service.config import Settings

    monkeypatch.setenv("DOJANG_MASTER_KEY", "00" * 32)
    monkeypatch.setenv("DOJANG_REMOTE_MANIFEST_ALLOW", "https://cr.example.com/, https://other.example/m/")
    assert Settings.from_env().remote_manifest_allow == ("https://cr.example.com/", "https://other.example/m/")
    monkeypatch.setenv("DOJANG_REMOTE_MANIFEST_ALLOW", "file:///etc/passwd")
    with pytest.raises(ServiceError, match="not an http"):
        Settings.from_env()
    monkeypatch.delenv("DOJANG_REMOTE_MANIFEST_ALLOW")
    assert Settings.from_env().remote_manifest_allow == ()


def test_a_remote_manifest_that_cannot_be_fetched_is_named(server: Server, tmp_path: Path) -> None:
    chain = init_dev_chain(tmp_path / "certs")
    signer = ManifestSigner.from_files(str(chain.chain), str(chain.signing_key))
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 160)).save(buf, "JPEG")
    manifest = ai_image_manifest(title="gone", generator="test", payload=bytes(8), when="2026-12-07T00:00:00Z", key_id="dk-x")
    builder = c2pa.Builder(manifest, _context())
    builder.set_no_embed()
    url = server.url + "/manifests/missing.c2pa"  # the server answers 404
    builder.set_remote_url(url)
    out = io.BytesIO()
    builder.sign(signer.native(), "image/jpeg", io.BytesIO(buf.getvalue()), out)
    server.hits.clear()
    result = verify_bytes(out.getvalue(), remote_allow=[server.url + "/manifests/"])
    assert server.hits == ["/manifests/missing.c2pa"]
    assert result.state == "invalid" and result.validation_codes == ["manifest.unreadable.remote"], result.to_dict()
    assert "the remote manifest could not be fetched or read" in result.reason and url in result.reason
