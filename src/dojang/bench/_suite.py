"""Suite files: what a benchmark run measures, as frozen dataclasses loaded from TOML or YAML.

One file may hold a ``[text]`` and an ``[image]`` table; every key is optional and falls back to
the built-in default suite. Attacks are written as pipelines of steps, ``"NAME ARG"`` joined by
``+``: ``"delete 0.1 + swap 0.05"``, ``"crop 0.9 + jpeg 75"``. Everything is checked when the file
is read, before any model is loaded: unknown keys, attacks and bad values are one clear error.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dojang.errors import ConfigError

__all__ = ["IMAGE_ATTACKS", "TEXT_ATTACKS", "ImageSuite", "Step", "TextSuite", "load_suite", "parse_pipeline"]

Step = tuple[str, tuple[Any, ...]]  # (attack name, its arguments)

# name -> (argument types, defaults for the trailing arguments, what it does)
TEXT_ATTACKS: dict[str, tuple[tuple[type, ...], tuple[Any, ...], str]] = {
    "none": ((), (), "no change"),
    "substitute": ((float,), (), "replace a fraction of the tokens with random vocabulary tokens"),
    "delete": ((float,), (), "delete a fraction of the words"),
    "insert": ((float,), (), "insert copies of random words of the text (fraction of the word count)"),
    "swap": ((float,), (), "swap a fraction of the words with their neighbour"),
    "copy_paste": ((float,), (), "paste the answer into human text; the answer is this fraction of the words"),
    "paraphrase": ((), (), "rewrite with a local language model (no watermark; the suite's paraphraser)"),
    "case": ((str,), ("lower",), "lower, upper, title or swap case"),
    "whitespace": ((float,), (0.5,), "replace a fraction of the spaces with double spaces, newlines, tabs"),
    "homoglyphs": ((float,), (0.1,), "replace a fraction of Latin letters with Cyrillic/Greek look-alikes"),
    "zero_width": ((float,), (0.1,), "insert zero-width spaces after a fraction of the characters"),
    "nfd": ((), (), "Unicode NFD decomposition"),
    "fullwidth": ((float,), (1.0,), "turn a fraction of ASCII characters into full-width forms"),
    "emoji": ((), (), "expected failure: ask for an emoji after every word, generate marked, remove the emoji"),
    "emoji-forced": ((), (), "expected failure: as emoji, but an emoji is forced after every word while generating"),
}
IMAGE_ATTACKS: dict[str, tuple[tuple[type, ...], tuple[Any, ...], str]] = {
    "none": ((), (), "no change"),
    "standard": ((), (), "the 26 standard image attacks (dojang.image.attacks.standard())"),
    "jpeg": ((int,), (), "JPEG at this quality"),
    "webp": ((int,), (), "WebP at this quality"),
    "resize": ((float,), (), "rescale by this factor and back"),
    "resize_width": ((int,), (), "resize to this width in pixels"),
    "crop": ((float,), (), "keep this fraction of each side, centred"),
    "rotate": ((float,), (), "rotate by this many degrees"),
    "blur": ((float,), (), "Gaussian blur with this sigma (px)"),
    "noise": ((float,), (), "Gaussian noise with this sigma (0..1 scale)"),
    "brightness": ((float,), (), "brightness factor"),
    "contrast": ((float,), (), "contrast factor"),
    "saturation": ((float,), (), "saturation factor"),
    "gamma": ((float,), (), "gamma curve"),
    "screenshot": ((), (), "0.8x downscale + 3 px crop + JPEG 80"),
    "mirror": ((), (), "left-right mirror"),
    "stretch": ((float,), (), "resize the height by this factor, the width kept (an aspect-ratio change)"),
    "pad": ((float,), (), "place the image in a white canvas whose sides are its own over this fraction"),
}
STANDARD_COUNT = 26  # len(dojang.image.attacks.standard()), pinned by a test
_ALONE = {"emoji", "emoji-forced", "standard"}  # whole-run attacks that cannot sit inside a chain
TEXT_SWEEPABLE = ("substitute", "delete", "insert", "swap", "copy_paste", "homoglyphs", "zero_width", "whitespace")
IMAGE_SWEEPABLE = ("jpeg", "webp", "resize", "crop", "rotate", "blur", "noise", "brightness", "contrast", "gamma")

DEFAULT_TEXT_ATTACKS = (
    "none", "substitute 0.1", "substitute 0.3", "delete 0.1", "insert 0.1", "swap 0.1", "copy_paste 0.5",
    "copy_paste 0.25", "copy_paste 0.1", "paraphrase", "case lower", "whitespace 0.5", "homoglyphs 0.1",
    "zero_width 0.1", "nfd", "fullwidth 1.0", "delete 0.05 + swap 0.05 + insert 0.05", "emoji",
    "emoji-forced",
)  # fmt: skip
DEFAULT_IMAGES = ("astronaut", "coffee", "camera", "synthetic:smooth-render")


def _pipeline_error(where: str, spec: object, message: str) -> ConfigError:
    return ConfigError(f"{where}: attack {spec!r}: {message}")


def parse_pipeline(
    spec: str, registry: Mapping[str, tuple[tuple[type, ...], tuple[Any, ...], str]], *, where: str = "attacks"
) -> tuple[Step, ...]:
    """``"delete 0.1 + swap 0.05"`` -> ``(("delete", (0.1,)), ("swap", (0.05,)))``, checked
    against ``registry`` (names, number and type of arguments)."""
    if not isinstance(spec, str) or not spec.strip():
        raise _pipeline_error(where, spec, "an attack is a non-empty string such as 'jpeg 75' or 'crop 0.9 + jpeg 75'")
    steps: list[Step] = []
    parts = [p.strip() for p in spec.split("+")]
    for part in parts:
        words = part.split()
        if not words:
            raise _pipeline_error(where, spec, "empty step in the chain")
        name, raw = words[0], words[1:]
        if name not in registry:
            raise _pipeline_error(where, spec, f"unknown attack {name!r}; known: {', '.join(registry)}")
        if name in _ALONE and len(parts) > 1:
            raise _pipeline_error(where, spec, f"{name!r} cannot be chained with other attacks")
        types, defaults, _ = registry[name]
        if not len(types) - len(defaults) <= len(raw) <= len(types):
            raise _pipeline_error(where, spec, f"{name!r} takes {len(types)} argument(s), got {len(raw)}")
        args: list[Any] = []
        for kind, text in zip(types, raw, strict=False):
            try:
                value = kind(text)
            except ValueError:
                raise _pipeline_error(where, spec, f"{name!r}: {text!r} is not a valid {kind.__name__}") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise _pipeline_error(where, spec, f"{name!r}: {text!r} is not a finite number")
            args.append(value)
        args += list(defaults[len(raw) - (len(types) - len(defaults)) :]) if len(raw) < len(types) else []
        steps.append((name, tuple(args)))
    return tuple(steps)


def _check_fprs(values: tuple[float, ...]) -> None:
    if not values or any(not 0.0 < v < 1.0 for v in values):
        raise ConfigError(f"fprs must be a non-empty list of rates strictly between 0 and 1, got {list(values)}")


def _check_sweeps(sweeps: tuple[tuple[str, tuple[float, ...]], ...], allowed: tuple[str, ...]) -> None:
    for name, values in sweeps:
        if name not in allowed:
            raise ConfigError(f"sweeps: cannot sweep {name!r}; choose from {', '.join(allowed)}")
        if len(values) < 2:
            raise ConfigError(f"sweeps.{name}: give at least two strengths")


@dataclass(frozen=True, kw_only=True)
class TextSuite:
    """A text benchmark. ``prompts``: how many of the built-in prompts to answer; ``human_texts``:
    how many texts of the shipped human corpus form the null set (each cut to ``human_tokens``);
    ``fprs``: the false-positive rates at which TPR is reported; ``lengths``: answer lengths (in
    tokens) for the TPR-against-length curve; ``model``/``oracle``: local model paths for
    generation and for perplexity (default: the embedded model); ``paraphraser``: the local model
    the paraphrase attack rewrites with (default: the generating model)."""

    scheme: str = "default"
    prompts: int = 16
    max_new_tokens: int = 150
    temperature: float = 0.7
    seed: int = 1234
    batch_size: int = 16
    human_texts: int = 400
    human_tokens: int = 200
    fprs: tuple[float, ...] = (1e-2, 1e-3)
    lengths: tuple[int, ...] = (25, 50, 100, 150)
    attacks: tuple[str, ...] = DEFAULT_TEXT_ATTACKS
    sweeps: tuple[tuple[str, tuple[float, ...]], ...] = (("substitute", (0.0, 0.1, 0.2, 0.3, 0.5)),)
    model: str | None = None
    oracle: str | None = None
    paraphraser: str | None = None
    pipelines: tuple[tuple[Step, ...], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("prompts", "max_new_tokens", "batch_size", "human_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.human_texts < 2:
            raise ConfigError(f"human_texts must be >= 2 (the null set), got {self.human_texts}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not self.lengths or any(n < 1 for n in self.lengths):
            raise ConfigError(f"lengths must be positive token counts, got {list(self.lengths)}")
        _check_fprs(self.fprs)
        _check_sweeps(self.sweeps, TEXT_SWEEPABLE)
        if not self.attacks:
            raise ConfigError('attacks: give at least one attack ("none" measures the unattacked text)')
        parsed = tuple(parse_pipeline(a, TEXT_ATTACKS, where=f"attacks[{i}]") for i, a in enumerate(self.attacks))
        object.__setattr__(self, "pipelines", parsed)
        from dojang.text import resolve

        resolve(self.scheme)  # an unknown scheme fails here, before any model is loaded

    def quick(self) -> TextSuite:
        """A small version for smoke tests: few prompts, short answers, a small null set."""
        return replace(
            self, prompts=min(self.prompts, 4), max_new_tokens=min(self.max_new_tokens, 60),
            human_texts=min(self.human_texts, 60), lengths=tuple(n for n in self.lengths if n <= 60) or (25,),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        out["sweeps"] = {k: list(v) for k, v in self.sweeps}
        return out


@dataclass(frozen=True, kw_only=True)
class ImageSuite:
    """An image benchmark. ``images``: scikit-image sample names, ``synthetic:NAME`` (flat,
    gradient, text, texture, smooth-render) or image file paths; ``max_side``: larger images are
    scaled down to this; ``alpha``: the detector's false-positive rate per image; ``examples``:
    how many original/marked/difference examples the report shows."""

    images: tuple[str, ...] = DEFAULT_IMAGES
    attacks: tuple[str, ...] = ("standard",)
    sweeps: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("jpeg", (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)),
        ("crop", (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)),
        ("rotate", (0, 1, 2, 5, 10, 15, 20, 30, 45)),
    )
    fprs: tuple[float, ...] = (1e-3, 1e-6)
    alpha: float = 1e-6
    max_side: int = 512
    examples: int = 2
    seed: int = 7
    pipelines: tuple[tuple[Step, ...], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.images:
            raise ConfigError("images: give at least one image")
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"alpha must lie strictly between 0 and 1, got {self.alpha}")
        if self.max_side < 256:
            raise ConfigError(f"max_side must be >= 256 (the smallest image a mark fits), got {self.max_side}")
        if self.examples < 0:
            raise ConfigError("examples must be >= 0")
        _check_fprs(self.fprs)
        _check_sweeps(self.sweeps, IMAGE_SWEEPABLE)
        if not self.attacks:
            raise ConfigError('attacks: give at least one attack ("none" measures the unattacked image)')
        parsed = tuple(parse_pipeline(a, IMAGE_ATTACKS, where=f"attacks[{i}]") for i, a in enumerate(self.attacks))
        object.__setattr__(self, "pipelines", parsed)
        n_attacks = sum(STANDARD_COUNT if steps[0][0] == "standard" else 1 for steps in parsed)
        if len(self.images) * n_attacks < 2:  # the null set: every unmarked image through every attack
            raise ConfigError("the null set needs at least two unmarked items: give two images or two attacks")

    def quick(self) -> ImageSuite:
        """A small version for smoke tests: two images, sweeps thinned to four strengths that still
        span the whole range (JPEG 10..100, crop 50..100%, rotation 0..45 degrees)."""
        return replace(
            self, images=self.images[:2], examples=min(self.examples, 1),
            sweeps=tuple((k, _thin(v, 4)) for k, v in self.sweeps),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        out["sweeps"] = {k: list(v) for k, v in self.sweeps}
        return out


def _thin(values: tuple[float, ...], n: int) -> tuple[float, ...]:
    """At most ``n`` of ``values``, evenly spaced, the first and the last always kept."""
    if len(values) <= n:
        return values
    return tuple(values[round(i * (len(values) - 1) / (n - 1))] for i in range(n))


# -- reading files ------------------------------------------------------------------------------


def _coerce(cls: type, table: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = {f.name: f for f in fields(cls) if f.init}
    out: dict[str, Any] = {}
    for name, value in table.items():
        if name not in known:
            raise ConfigError(f"{where}: unknown key {name!r}; known keys: {', '.join(known)}")
        default = getattr(cls(), name) if name != "scheme" else "default"
        try:
            out[name] = _value(name, value, default)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}.{name}: {err}") from None
    return out


def _value(name: str, value: Any, default: Any) -> Any:
    if name == "sweeps":
        if not isinstance(value, Mapping):
            raise TypeError("expected a table of attack name -> list of strengths")
        return tuple((str(k), tuple(_number(x) for x in _list(v))) for k, v in value.items())
    if name in ("model", "oracle", "paraphraser"):
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise TypeError("expected a path")
        return value
    if isinstance(default, tuple):
        items = _list(value)
        if name in ("fprs",):
            return tuple(float(_number(x)) for x in items)
        if name == "lengths":
            return tuple(_int(x) for x in items)
        if any(not isinstance(x, str) for x in items):
            raise TypeError("expected a list of strings")
        return tuple(items)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    if isinstance(default, int):
        return _int(value)
    if isinstance(default, float):
        return float(_number(value))
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return list(value)


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: suite file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                f"{path}: reading YAML suites needs PyYAML (pip install pyyaml); or write the suite in TOML"
            ) from None
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"{path}: not valid YAML ({first})") from None
        data = {} if data is None else data
    elif path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
    else:
        raise ConfigError(f"{path}: a suite file must end in .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the suite must be a table with [text] and/or [image] sections")
    return data


def load_suite(path: str | Path | None, modality: str) -> TextSuite | ImageSuite:
    """The ``modality`` ("text" or "image") suite of the file at ``path`` (``None``: the built-in
    default). Raises :class:`ConfigError` naming the file and key on any problem."""
    cls: type[TextSuite] | type[ImageSuite] = {"text": TextSuite, "image": ImageSuite}[modality]
    if path is None:
        return cls()
    path = Path(path)
    data = _read(path)
    unknown = set(data) - {"text", "image"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(map(repr, unknown)))}; use [text] and [image]")
    if modality not in data:
        raise ConfigError(f"{path}: no [{modality}] section")
    table = data[modality]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{modality}] must be a table")
    values = _coerce(cls, table, f"{path}: {modality}")
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {modality}: {err}") from None
