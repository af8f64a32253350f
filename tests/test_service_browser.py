"""The web page in a real headless Chromium (Debian's package, driven by Playwright): paste a text,
upload an image, read the verdict card and the C2PA panel, in English and Korean. Screenshots go
to ``test-artifacts/`` (or ``$DOJANG_TEST_ARTIFACTS``)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from dojang.provenance import init_dev_chain
from dojang.text import generate_batch
from tests.conftest import HUMAN_EN
from tests.service_env import build_env, png_bytes

pytestmark = pytest.mark.browser
pytest.importorskip("playwright")
skdata = pytest.importorskip("skimage.data")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium): the browser test could not run", allow_module_level=True
    )
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("DOJANG_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_model, tokenizer):  # type: ignore[no-untyped-def]
    import uvicorn

    root = tmp_path_factory.mktemp("browser")
    chain = init_dev_chain(root / "certs")
    # Fixed keys (build_env's default): with a fresh random key, about 1 text in 10 (120 tokens) or
    # 40 (200 tokens) of this tiny model is detected as a whole while no single passage reaches
    # alpha on its own, and the page then has no passage to mark.
    env = build_env(f"sqlite:///{root / 'service.sqlite3'}", root, trust_anchors_pem=chain.root.read_text())
    c = env.client
    up = c.put(
        "/v1/signing-key",
        files={"chain": ("c.pem", chain.chain.read_bytes()), "key": ("k.pem", chain.signing_key.read_bytes())},
        headers=env.acme,
    )
    assert up.status_code == 200, up.text
    st = c.post(
        "/v1/image/stamp",
        files={"file": ("gen.png", png_bytes(Image.fromarray(skdata.astronaut())), "image/png")},
        data={"generator": "acme-imagegen 3", "format": "jpeg"},
        headers=env.acme,
    )
    assert st.status_code == 200, st.text
    (root / "stamped.jpg").write_bytes(st.content)
    marked = generate_batch(
        ["Begin:"],
        key=env.acme_key,
        scheme="default",
        model=tiny_model,
        tokenizer=tokenizer,
        max_new_tokens=200,
        temperature=1.0,
        seed=4,
        chat=False,
    )[0].text
    env.app.state.services.tokenizer()  # load before the browser waits on it
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(env.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    assert server.started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield {
        "url": f"http://127.0.0.1:{port}/",
        "stamped": root / "stamped.jpg",
        "marked": marked,
        "acme_token": env.acme["Authorization"].split()[1],
    }
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_english_page_text_and_image(site, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(locale="en-US", accept_downloads=True)
    page = ctx.new_page()
    page.goto(site["url"])
    assert "check content" in page.locator("h1").inner_text()
    # A human text: not detected, and the card says what that does not mean.
    page.fill("#text", HUMAN_EN)
    page.click("#check-text")
    page.wait_for_selector("#verdict.not_detected")
    assert page.inner_text("#verdict-title") == "Not detected"
    assert "does not mean a person made it" in page.inner_text("#verdict-text")
    # The stamped image: detected, the provider, and the C2PA panel.
    page.set_input_files("#file", str(site["stamped"]))
    page.wait_for_selector("#verdict.detected")
    assert page.inner_text("#verdict-title") == "Detected"
    assert page.inner_text("#provider") == "acme-ai"
    assert page.inner_text("#pvalue") == "shown only to the key's owner"
    page.wait_for_selector("#c2pa:not([hidden])")
    assert page.inner_text("#c2pa-signer") == "dojang dev signer"
    assert page.inner_text("#c2pa-trusted") == "yes" and page.inner_text("#c2pa-ai") == "yes"
    assert "c2pa.created (acme-imagegen 3)" in page.inner_text("#c2pa-actions")
    assert page.inner_text("#c2pa-state").startswith("valid, trusted signer")
    page.screenshot(path=str(ARTIFACTS / "page-en-image.png"), full_page=True)
    # JSON export of what is shown.
    with page.expect_download() as dl:
        page.click("#export")
    data = json.loads(Path(dl.value.path()).read_text())
    assert data["state"] == "trusted" and data["watermark"]["verdict"] == "detected"
    ctx.close()


def test_owner_sees_p_value_and_marked_spans(site, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(locale="en-GB")
    page = ctx.new_page()
    page.goto(site["url"])
    page.fill("#token", site["acme_token"])
    page.dispatch_event("#token", "change")
    text = "A note written by a person before the generated part.\n\n" + site["marked"]
    page.fill("#text", text)
    page.click("#check-text")
    page.wait_for_selector("#verdict.detected")
    assert "e-" in page.inner_text("#pvalue")  # a real p-value, e.g. 3.1e-12
    page.wait_for_selector("#spans-card:not([hidden])")
    marks = page.locator("#spans mark")
    assert marks.count() >= 1
    assert page.inner_text("#spans").replace("\r", "") == text.replace("\r", "")
    page.screenshot(path=str(ARTIFACTS / "page-en-owner-spans.png"), full_page=True)
    ctx.close()


def test_korean_page(site, browser) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(locale="ko-KR")
    page = ctx.new_page()
    page.goto(site["url"])
    assert page.evaluate("document.documentElement.lang") == "ko"
    assert "워터마크" in page.locator("h1").inner_text()
    page.fill("#text", HUMAN_EN)
    page.click("#check-text")
    page.wait_for_selector("#verdict.not_detected")
    assert page.inner_text("#verdict-title") == "탐지되지 않음"
    assert "사람이 만들었다는 뜻은 아닙니다" in page.inner_text("#verdict-text")
    page.set_input_files("#file", str(site["stamped"]))
    page.wait_for_selector("#verdict.detected")
    assert page.inner_text("#verdict-title") == "탐지됨" and page.inner_text("#c2pa-ai") == "예"
    page.screenshot(path=str(ARTIFACTS / "page-ko-image.png"), full_page=True)
    ctx.close()
