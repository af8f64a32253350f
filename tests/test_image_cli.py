"""``dojang image embed`` / ``dojang image detect``: the contract flags and JSON keys, and one
clear line for every bad input."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from dojang.cli import main
from tests.helpers import one_error_line

skdata = pytest.importorskip("skimage.data")
CONTRACT_KEYS = {"verdict", "p_value", "payload", "key_id", "bit_errors_corrected"}


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def files(runner, tmp_path):  # type: ignore[no-untyped-def]
    for name in ("k1.json", "k2.json"):
        assert runner.invoke(main, ["keygen", "-o", str(tmp_path / name)]).exit_code == 0
    Image.fromarray(skdata.chelsea()).save(tmp_path / "cat.jpg", quality=92)
    return tmp_path


def test_embed_then_detect_with_json(runner, files) -> None:  # type: ignore[no-untyped-def]
    out = files / "out.png"
    res = runner.invoke(
        main,
        [
            "image",
            "embed",
            "--key",
            str(files / "k1.json"),
            "--payload",
            "00112233445566ff",
            "--json",
            str(files / "cat.jpg"),
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["payload"] == "00112233445566ff" and info["verified"] and info["psnr"] > 38

    res = runner.invoke(
        main, ["image", "detect", "--key", str(files / "k2.json"), "--key", str(files / "k1.json"), "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert set(got) >= CONTRACT_KEYS
    assert got["verdict"] == "detected" and got["payload"] == "00112233445566ff" and got["p_value"] < 1e-6
    assert got["bit_errors_corrected"] == 0 and got["keys_tried"] == 2

    res = runner.invoke(main, ["image", "detect", "--key", str(files / "k2.json"), "--json", str(out)])
    got = json.loads(res.stdout)
    assert got["verdict"] == "not_detected" and got["payload"] is None and got["bit_errors_corrected"] is None


def test_json_names_the_layout_written_and_read(runner, files) -> None:  # type: ignore[no-untyped-def]
    """A photo gets layout 3 and a flat graphic layout 4 (cells twice as wide); both JSON outputs say which."""
    from dojang.bench._image import synthetic_images

    synthetic_images()["flat"].save(files / "flat.png")
    for src, version in (("cat.jpg", 3), ("flat.png", 4)):
        out = files / f"marked-{version}.webp"
        res = runner.invoke(main, ["image", "embed", "--key", str(files / "k1.json"), "--json", str(files / src), str(out)])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["version"] == version
        res = runner.invoke(main, ["image", "detect", "--key", str(files / "k1.json"), "--json", str(out)])
        got = json.loads(res.stdout)
        assert got["verdict"] == "detected" and got["scheme"] == f"image/v{version}"


def test_random_payload_is_printed(runner, files) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(main, ["image", "embed", "--key", str(files / "k1.json"), str(files / "cat.jpg"), str(files / "o.jpg")])
    assert res.exit_code == 0, res.output
    payload = res.stdout.strip().removeprefix("payload ")
    assert len(payload) == 16 and int(payload, 16) >= 0
    res = runner.invoke(main, ["image", "detect", "--key", str(files / "k1.json"), str(files / "o.jpg")])
    assert res.exit_code == 0 and "detected" in res.stdout and payload in res.stdout.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["detect", "--key", "{d}/k1.json", "{d}/missing.png"], "no such file"),
        (["detect", "--key", "{d}/k1.json", "{d}/junk.png"], "not an image"),
        (["detect", "--key", "{d}/k1.json", "{d}/tiny.png"], "at least 128 px"),
        (["detect", "--key", "{d}/nokey.json", "{d}/cat.jpg"], "key file not found"),
        (["embed", "--key", "{d}/k1.json", "{d}/tiny.png", "{d}/o.png"], "at least 256 px"),
        (["embed", "--key", "{d}/k1.json", "{d}/cat.jpg", "{d}/o.gif"], "unsupported output format"),
        (["embed", "--key", "{d}/k1.json", "--payload", "12", "{d}/cat.jpg", "{d}/o.png"], "payload must be 16 hex digits"),
    ],
)
def test_bad_input_gives_one_line(runner, files, args, expect) -> None:  # type: ignore[no-untyped-def]
    (files / "junk.png").write_bytes(b"not an image at all")
    Image.new("RGB", (100, 90)).save(files / "tiny.png")
    res = runner.invoke(main, ["image", *[a.format(d=files) for a in args]])
    assert expect in one_error_line(res)


def test_a_forged_pattern_is_inconclusive_and_says_why(runner, files) -> None:  # type: ignore[no-untyped-def]
    """The sync layer averaged from marked images and added to a clean photo: the CLI says
    inconclusive, with the reason, and --json says a keyed pattern was seen without a payload."""
    import numpy as np
    from PIL import Image

    from dojang.bench._adversary import estimate
    from dojang.image import embed
    from dojang.keys import load_key

    key = load_key(files / "k1.json")
    cat = Image.open(files / "cat.jpg").convert("RGB").crop((0, 0, 256, 256))
    views = [cat.rotate(angle).resize((256, 256)) for angle in (0, 90, 180, 270)]
    marked = [np.asarray(embed(v, key, "00112233445566ff"), dtype=np.float32) for v in views]
    est = estimate("pairs", marked, [np.asarray(v, dtype=np.float32) for v in views], 64)
    clean = np.asarray(Image.open(files / "cat.jpg").convert("RGB").crop((40, 40, 296, 296)), dtype=np.float32)
    Image.fromarray(np.clip(np.rint(clean + 3 * est), 0, 255).astype(np.uint8)).save(files / "forged.png")
    res = runner.invoke(main, ["image", "detect", "--key", str(files / "k1.json"), "--no-search", str(files / "forged.png")])
    assert res.exit_code == 0 and "inconclusive" in res.stdout and "no payload verifies" in res.stdout
    res = runner.invoke(main, ["image", "detect", "--key", str(files / "k1.json"), "--json", str(files / "forged.png")])
    got = json.loads(res.stdout)
    assert got["verdict"] == "inconclusive" and got["keyed_pattern_seen"] is True and got["payload_verified"] is False
    assert got["payload"] is None
