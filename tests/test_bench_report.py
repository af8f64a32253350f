"""The report on constructed results (no model): the uniformity flag fires on non-uniform null
p-values and stays quiet on uniform ones, and report.html holds every plot kind, self-contained."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dojang.bench import AttackResult, BenchResult, Curve, NullResult, write_report
from dojang.bench._report import plots
from dojang.bench._results import Example

FPRS = (1e-2, 1e-3)


def _result(null_p: np.ndarray, *, modality: str = "text", examples: tuple[Example, ...] = ()) -> BenchResult:
    null_lp = [float(x) for x in np.log10(null_p)]
    null = NullResult.build(null_lp, ["human en news"] * len(null_lp), FPRS)
    marked = [-8.0, -6.0, -5.0, -1.0]
    attacks = (
        AttackResult.build("none", marked, null, FPRS, 150.0),
        AttackResult.build("emoji", [-0.5, -0.2, 0.0, -1.5], null, FPRS, 140.0, expected_failure=True, note="xfail"),
    )
    length = Curve("tokens", "answer tokens", (25.0, 50.0), (0.5, 1.0), 1e-3)
    sweep = Curve("substitute", "substitute fraction", (0.0, 0.3), (1.0, 0.3), 1e-3)
    return BenchResult(
        modality=modality, scheme="kgw", key_id="k-test", suite={}, null=null, attacks=attacks, length=length,
        sweeps=(sweep,), quality={"marked": {"perplexity": 3.4}}, seconds=1.0, environment={"dojang": "test"},
        examples=examples,
    )  # fmt: skip


def _flags_in_report(tmp_path: Path, result: BenchResult) -> tuple[list[str], str]:
    write_report(result, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    return data["flags"], report


def test_uniform_null_raises_no_flag(tmp_path: Path) -> None:
    p = np.random.default_rng(1).random(500)
    flags, report = _flags_in_report(tmp_path, _result(p))
    assert flags == []
    assert 'class="flag"' not in report and "no flags raised" in report
    assert "consistent with uniform" in report


def test_anti_conservative_null_is_flagged_in_json_and_report(tmp_path: Path) -> None:
    p = np.random.default_rng(2).beta(0.4, 1.0, 500)  # far too many small p-values
    flags, report = _flags_in_report(tmp_path, _result(p))
    assert any("NOT uniform" in f and "exceeds the nominal" in f for f in flags)
    assert any(f.startswith("nominal FPR at 0.01") for f in flags)  # the excess false positives too
    assert report.count('class="flag"') == len(flags) and "no flags raised" not in report


def test_conservative_null_is_flagged_as_conservative(tmp_path: Path) -> None:
    p = np.sqrt(np.random.default_rng(3).random(500))  # p-values pushed towards 1
    flags, report = _flags_in_report(tmp_path, _result(p))
    assert len(flags) == 1 and "conservative (upper bounds)" in flags[0]
    assert 'class="flag"' in report


@pytest.mark.parametrize("modality", ["text", "image"])
def test_report_holds_every_plot_kind_and_nothing_external(tmp_path: Path, modality: str) -> None:
    png = b"\x89PNG\r\n\x1a\n"  # the report embeds example bytes as given
    examples = (Example("camera", png, png, png, 20.0),) if modality == "image" else ()
    _, report = _flags_in_report(tmp_path, _result(np.random.default_rng(4).random(200), modality=modality,
                                                   examples=examples))  # fmt: skip
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', report)
    kinds = {"ROC curves", "TPR against length", "robustness curves", "null p-value histogram"}
    assert kinds <= set(alts)
    if modality == "image":
        assert {"original", "marked", "difference"} <= set(alts)
    assert len(alts) == report.count("<img")  # every image is embedded
    assert not re.search(r"(src|href|url)\s*[=(]\s*[\"']?(https?:|//)", report)
    assert "<script" not in report and "<link" not in report and "@import" not in report


def test_histogram_shows_the_p_values_the_check_ran_on(monkeypatch) -> None:
    # Text: the detector's scan gives p = 1 to most unmarked texts (the ROC set), while the
    # uniformity check runs on the whole-document test. The histogram must show the latter.
    import matplotlib.axes

    tested = [float(x) for x in np.log10(np.random.default_rng(5).random(400))]
    null = NullResult.build([0.0] * 400, ["human en news"] * 400, FPRS, test_log10_p=tested)
    assert null.uniformity.uniform
    counts = null.to_dict()["histogram"]["counts"]
    assert max(counts) < 40  # about 20 per bin, not 400 in the last one
    assert null.to_dict()["log10_p_values"] == [0.0] * 400  # the ROC set is kept as it was
    drawn: list[np.ndarray] = []
    real_hist = matplotlib.axes.Axes.hist

    def spy(ax, x, *args, **kwargs):  # type: ignore[no-untyped-def]
        drawn.append(np.asarray(x))
        return real_hist(ax, x, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "hist", spy)
    plots(replace(_result(np.full(3, 0.5)), null=null))
    assert len(drawn) == 1 and np.allclose(drawn[0], 10.0 ** np.asarray(tested))
