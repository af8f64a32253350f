"""``dojang demo``: every shipped capability on the embedded defaults, one verdict per line.

The steps run under a fresh key that lives in memory only, in a temporary folder that is removed
afterwards: text (a marked and an unmarked answer from the default model), images (the embedded
demo picture marked, then read after a JPEG round trip and a crop; the unmarked picture), and
provenance (the picture stamped with a development certificate chain, its metadata stripped,
its credentials recovered from the watermark). A capability whose extra is not installed is
reported as skipped, with the install command.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

MIN_NEW_TOKENS = 80  # the answers are held to at least this many tokens: a one-line answer is too short to judge
DEMO_IMAGE = "demo_astronaut.jpg"  # NASA, public domain (scikit-image's "astronaut"), 512 x 512


@dataclass
class Step:
    capability: str  # text, image, provenance
    case: str
    verdict: str  # detected / not_detected / inconclusive, a provenance state, or "skipped"
    p_value: float | None = None
    detail: str = ""
    seconds: float = 0.0
    expected: str = ""  # the verdict this case should give
    text: str | None = None  # the answer, for text steps

    @property
    def as_expected(self) -> bool:
        return self.verdict == self.expected or self.verdict == "skipped"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_expected"] = self.as_expected
        return out


def demo_image() -> bytes:
    return (resources.files("dojang") / "data" / DEMO_IMAGE).read_bytes()


def text_steps(prompt: str, scheme: str, max_new_tokens: int, temperature: float, seed: int | None, key: Any) -> Iterator[Step]:
    from dojang.text import TextDetector, generate_batch
    from dojang.text.models import load_model

    model, tokenizer = load_model()
    detector = TextDetector(keys=key, tokenizer=tokenizer)
    settings = dict(
        model=model,
        tokenizer=tokenizer,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min(MIN_NEW_TOKENS, max_new_tokens),
        temperature=temperature,
    )
    for case, use_key, expected in (("marked answer", key, "detected"), ("unmarked answer", None, "not_detected")):
        t0 = time.perf_counter()
        gen = generate_batch([prompt], key=use_key, scheme=scheme, seed=seed, **settings)[0]
        result = detector.detect(gen.text)
        yield Step(
            "text",
            case,
            result.verdict.value,
            result.p_value,
            f"{result.tokens_scored} tokens scored, scheme {result.scheme}",
            time.perf_counter() - t0,
            expected,
            gen.text,
        )


def image_steps(key: Any) -> Iterator[Step]:
    from PIL import Image

    from dojang.image import attacks, detect, embed, random_payload

    original = Image.open(io.BytesIO(demo_image())).convert("RGB")
    payload = random_payload()
    t0 = time.perf_counter()
    marked = embed(original, key, payload)
    embedded = time.perf_counter() - t0

    def read(case: str, image: Image.Image, expected: str, extra: float = 0.0) -> Step:
        t0 = time.perf_counter()
        result = detect(image, key)
        found = result.payload.hex() if result.payload is not None else "none"
        good = " (the one written)" if result.payload == payload else ""
        return Step("image", case, result.verdict.value, result.p_value, f"payload {found}{good}",
                    time.perf_counter() - t0 + extra, expected)  # fmt: skip

    edited = attacks.crop(0.8)(attacks.jpeg(75)(marked))
    yield read("marked, JPEG 75 and an 80 % crop", edited, "detected", embedded)
    yield read("the picture unmarked", original, "not_detected")


def provenance_steps(key: Any, workdir: Path) -> Iterator[Step]:
    try:
        from dojang.provenance import ManifestSigner, SQLiteStore, init_dev_chain, stamp_bytes, verify_bytes
    except ImportError as err:  # the c2pa extra
        yield Step("provenance", "stamped, metadata stripped", "skipped",
                   detail=f"needs the c2pa extra (pip install 'dojang[c2pa]'): {err}")  # fmt: skip
        return
    from PIL import Image

    t0 = time.perf_counter()
    chain = init_dev_chain(workdir / "certs")
    signer = ManifestSigner.from_files(str(chain.chain), str(chain.signing_key))
    store = SQLiteStore(workdir / "manifests.sqlite3")
    stamped, _info = stamp_bytes(demo_image(), "JPEG", key=key, signer=signer, store=store, generator="dojang demo")
    trust = chain.root.read_text()
    signed = verify_bytes(stamped, name="stamped.jpg", keys=key, trust_pem=trust, store=store)
    yield Step("provenance", "stamped (watermark + signed C2PA manifest)", signed.state, None, signed.reason,
               time.perf_counter() - t0, "trusted")  # fmt: skip
    t0 = time.perf_counter()
    buf = io.BytesIO()
    Image.open(io.BytesIO(stamped)).convert("RGB").save(buf, "JPEG", quality=85)  # pixels only: the manifest is gone
    stripped = verify_bytes(buf.getvalue(), name="stripped.jpg", keys=key, trust_pem=trust, store=store)
    yield Step("provenance", "metadata stripped, re-encoded", stripped.state, None, stripped.reason,
               time.perf_counter() - t0, "recovered")  # fmt: skip


def run_demo(
    prompt: str,
    scheme: str,
    max_new_tokens: int,
    temperature: float,
    seed: int | None,
    *,
    on_step: Callable[[Step], None] | None = None,
    status: Callable[[str], Any] | None = None,
) -> tuple[str, list[Step]]:
    """Run every step under a fresh key; returns the key id and the steps (also passed to
    ``on_step`` as each finishes)."""
    from contextlib import nullcontext

    from dojang.keys import generate_key

    key = generate_key()
    steps: list[Step] = []

    def note(label: str) -> Any:
        return status(label) if status is not None else nullcontext()

    def run(label: str, gen: Iterator[Step]) -> None:
        while True:
            with note(label):
                step = next(gen, None)
            if step is None:
                return
            steps.append(step)
            if on_step is not None:
                on_step(step)

    run("text: loading the default model (the first run converts it, ~20 s) and generating",
        text_steps(prompt, scheme, max_new_tokens, temperature, seed, key))  # fmt: skip
    run("image: marking the demo picture and reading it back", image_steps(key))
    with tempfile.TemporaryDirectory(prefix="dojang-demo-") as tmp:
        run("provenance: a development chain, stamping, stripping, recovering", provenance_steps(key, Path(tmp)))
    return key.key_id, steps
