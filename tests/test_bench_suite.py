"""Suite files: defaults, pipelines, TOML and YAML, and one clear error for every mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dojang.bench import ImageSuite, TextSuite, load_suite
from dojang.bench._suite import IMAGE_ATTACKS, TEXT_ATTACKS, parse_pipeline
from dojang.cli import main
from dojang.errors import ConfigError
from tests.helpers import one_error_line


def test_default_suites_are_valid_and_shrink_for_quick_runs() -> None:
    text, image = load_suite(None, "text"), load_suite(None, "image")
    assert isinstance(text, TextSuite) and isinstance(image, ImageSuite)
    assert len(text.pipelines) == len(text.attacks) and ("emoji", ()) in [p[0] for p in text.pipelines]
    assert text.quick().prompts < text.prompts and text.quick().human_texts < text.human_texts
    assert len(image.quick().images) < len(image.images)
    assert dict(image.sweeps)["jpeg"][0] == 10 and dict(image.sweeps)["rotate"][-1] == 45
    quick = dict(image.quick().sweeps)  # thinned, but still over the whole range
    assert quick["jpeg"] == (10, 40, 70, 100) and quick["crop"] == (0.5, 0.7, 0.8, 1.0)
    assert quick["rotate"] == (0, 5, 15, 45)


def test_pipelines_parse_with_types_and_defaults() -> None:
    assert parse_pipeline("crop 0.9 + jpeg 75", IMAGE_ATTACKS) == (("crop", (0.9,)), ("jpeg", (75,)))
    assert parse_pipeline("homoglyphs", TEXT_ATTACKS) == (("homoglyphs", (0.1,)),)
    assert parse_pipeline("case upper", TEXT_ATTACKS) == (("case", ("upper",)),)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("jpg 75", "unknown attack 'jpg'"),
        ("jpeg", "takes 1 argument(s), got 0"),
        ("jpeg high", "'high' is not a valid int"),
        ("crop 0.9 +", "empty step"),
        ("standard + jpeg 50", "cannot be chained"),
        ("rotate nan", "not a finite number"),
    ],
)
def test_bad_pipelines(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_pipeline(spec, IMAGE_ATTACKS)


def test_toml_and_yaml_read_the_same(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[text]\nprompts = 3\nattacks = ["none", "delete 0.1 + swap 0.1"]\nsweeps = { delete = [0.0, 0.2] }\n'
                    'paraphraser = "/models/big"\n')  # fmt: skip
    yaml = tmp_path / "s.yaml"
    yaml.write_text("text:\n  prompts: 3\n  attacks: [none, delete 0.1 + swap 0.1]\n  sweeps: {delete: [0.0, 0.2]}\n"
                    "  paraphraser: /models/big\n")  # fmt: skip
    a, b = load_suite(toml, "text"), load_suite(yaml, "text")
    assert a == b and isinstance(a, TextSuite) and a.prompts == 3 and a.sweeps == (("delete", (0.0, 0.2)),)
    assert a.paraphraser == "/models/big" and a.to_dict()["paraphraser"] == "/models/big"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.toml", "[text]\nprompt = 3\n", "unknown key 'prompt'"),
        ("b.toml", "[text]\nattacks = ['paraphrse']\n", "unknown attack 'paraphrse'"),
        ("c.toml", "[txt]\n", "unknown section"),
        ("d.toml", "[image]\n", "no [text] section"),
        ("e.toml", "[text\n", "not valid TOML"),
        ("f.toml", "[text]\nprompts = 'many'\n", "expected an integer"),
        ("g.toml", "[text]\nfprs = [0.0]\n", "strictly between 0 and 1"),
        ("h.toml", "[text]\nscheme = 'kwg'\n", "unknown"),
        ("i.toml", "[text]\nsweeps = { paraphrase = [0, 1] }\n", "cannot sweep 'paraphrase'"),
        ("j.json", "{}", "must end in .toml"),
        ("k.yaml", "text: [1, 2\n", "not valid YAML"),
        ("l.toml", "[text]\nparaphraser = 3\n", "paraphraser: expected a path"),
    ],
)
def test_bad_suite_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_suite(path, "text")
    assert str(path) in str(err.value)


def test_image_null_set_needs_two_items(tmp_path: Path) -> None:
    from dojang.bench._suite import STANDARD_COUNT
    from dojang.image.attacks import standard

    assert len(standard()) == STANDARD_COUNT
    with pytest.raises(ConfigError, match="at least two unmarked items"):
        ImageSuite(images=("camera",), attacks=("none",))
    assert len(ImageSuite(images=("camera",), attacks=("none", "jpeg 50")).pipelines) == 2
    assert ImageSuite(images=("camera",), attacks=("standard",)).images == ("camera",)
    path = tmp_path / "one.toml"
    path.write_text('[image]\nimages = ["camera"]\nattacks = ["none"]\n')
    result = CliRunner().invoke(main, ["bench", "image", "--suite", str(path), "--out", str(tmp_path / "o")])
    assert "at least two unmarked items" in one_error_line(result)  # not a traceback after the whole run


def test_cli_bad_suite_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[image]\nattacks = ['jpeg 75', 'sharpen 2']\n")
    result = CliRunner().invoke(main, ["bench", "image", "--suite", str(path), "--out", str(tmp_path / "o")])
    line = one_error_line(result)
    assert line.startswith("dojang: error:") and "unknown attack 'sharpen'" in line and "attacks[1]" in line
    missing = CliRunner().invoke(main, ["bench", "text", "--suite", str(tmp_path / "nope.toml"), "--out", str(tmp_path)])
    assert "suite file not found" in one_error_line(missing)
    assert not (tmp_path / "o").exists()
