"""Writing a run's results: ``results.json`` and a self-contained ``report.html`` whose plots are
embedded as base64 PNG (matplotlib, Agg backend). No external links, scripts or fonts."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from dojang.bench._results import BenchResult
from dojang.errors import ConfigError

__all__ = ["plots", "write_report"]

log = logging.getLogger(__name__)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("the benchmark report needs matplotlib: pip install 'dojang[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def plots(result: BenchResult) -> dict[str, bytes]:
    """The report's figures as PNG bytes: roc, length, sweeps (when any), null_histogram."""
    plt = _pyplot()
    out: dict[str, bytes] = {}
    n_null = len(result.null.log10_p)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for a in result.attacks:
        ax.step(
            a.roc_fpr, a.roc_tpr, where="post", label=f"{a.name} (AUC {a.auc:.3f})", linestyle="--" if a.expected_failure else "-"
        )
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.set_xscale("symlog", linthresh=max(1.0 / max(n_null, 1), 1e-4))
    ax.set(xlabel=f"false-positive rate (empirical, {n_null} unmarked items)", ylabel="true-positive rate", ylim=(0, 1.02),
           title="ROC per attack (score = -log10 p)")  # fmt: skip
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    out["roc"] = _png(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.length.x, result.length.tpr, marker="o")
    ax.set(xlabel=result.length.x_label, ylabel=f"TPR at p <= {result.length.alpha:g}", ylim=(-0.02, 1.02),
           title=f"detection against {result.length.x_label}")  # fmt: skip
    if result.modality == "image":
        ax.set_xscale("log")
    out["length"] = _png(fig)

    if result.sweeps:
        fig, axes = plt.subplots(1, len(result.sweeps), figsize=(4.2 * len(result.sweeps), 3.6), squeeze=False)
        for ax, curve in zip(axes[0], result.sweeps, strict=True):
            ax.plot(curve.x, curve.tpr, marker="o")
            ax.set(xlabel=curve.x_label, ylabel=f"TPR at p <= {curve.alpha:g}", ylim=(-0.02, 1.02), title=curve.name)
        fig.suptitle("robustness against attack strength")
        out["sweeps"] = _png(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    p = result.null.tested_p_values
    ax.hist(p, bins=20, range=(0, 1), density=True, color="#6a8caf", edgecolor="white")
    ax.axhline(1.0, color="black", linewidth=1, label="uniform")
    which = " (whole-document test, scan off)" if result.null.test_log10_p and result.modality == "text" else ""
    ax.set(xlabel="p-value", ylabel="density", title=f"p-values on {len(p)} unmarked items{which}")
    ax.legend()
    ax.text(0.02, 0.95, result.null.uniformity.describe().split(":")[0], transform=ax.transAxes, fontsize=8, va="top")
    out["null_histogram"] = _png(fig)
    return out


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}.flag{background:#fdecea;border:1px solid #e57373;
padding:.6em 1em;margin:.4em 0}.ok{background:#e8f5e9;border:1px solid #81c784;padding:.6em 1em}
.xfail{color:#8a6d3b}pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em;font-size:12px}img{max-width:100%}
.ex img{width:32%;margin-right:1%}
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if not np.isfinite(x):
            return "-"
        return f"{x:.3g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return html.escape(str(x))


def _table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{(classes or [""] * len(rows))[i]}">' + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(result: BenchResult, figures: dict[str, bytes]) -> str:
    r = result
    fprs = list(next(iter(r.attacks)).tpr_nominal) if r.attacks else []
    size_label = "mean tokens scored" if r.modality == "text" else "mean pixels"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>dojang bench {r.modality}</title><style>{_CSS}</style></head><body>",
        f"<h1>dojang bench: {r.modality}</h1>",
        f"<p>scheme <b>{html.escape(r.scheme)}</b>, key id <code>{html.escape(r.key_id)}</code>, "
        f"{len(r.null.log10_p)} unmarked items, {len(r.attacks)} attacks, {r.seconds:.0f} s. "
        + ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in r.environment.items())
        + "</p>",
    ]
    flags = r.flags
    parts += [f'<div class="flag">{html.escape(f)}</div>' for f in flags] or ['<div class="ok">no flags raised</div>']
    headers = ["attack", "n", *[f"TPR p<={a:g}" for a in fprs], *[f"TPR @ emp. FPR {a:g}" for a in fprs], "AUC",
               "median log10 p", size_label, "FPR attacked null", "note"]  # fmt: skip
    rows, classes = [], []
    for a in r.attacks:
        rows.append([a.name, len(a.log10_p), *[a.tpr_nominal[f] for f in fprs], *[a.tpr_empirical[f] for f in fprs], a.auc,
                     float(np.median(a.log10_p)), a.size, a.fpr_attacked_null, a.note])  # fmt: skip
        classes.append("xfail" if a.expected_failure else "")
    parts += [
        "<h2>Detection after each attack</h2>",
        "<p>TPR p&lt;=a: the detector's own threshold (nominal FPR a). TPR @ emp. FPR a: the threshold set on the "
        "unmarked scores so that at most a of them pass (limited by the size of the null set).</p>",
        _table(headers, rows, classes),
        _img(figures["roc"], "ROC curves"),
        "<h2>Detection against length</h2>",
        _img(figures["length"], "TPR against length"),
    ]
    if "sweeps" in figures:
        parts += ["<h2>Robustness curves</h2>", _img(figures["sweeps"], "robustness curves")]
    null = r.null
    parts += [
        "<h2>Unmarked content (null)</h2>",
        f"<p>{html.escape(null.uniformity.describe())}. Sources: "
        + ", ".join(f"{html.escape(k)} {v}" for k, v in null.sources.items())
        + ". Nominal FPR: "
        + ", ".join(f"{a:g}: {v:.4f}" for a, v in null.fpr_nominal.items())
        + "</p>",
        _table(
            ["source", "n", "KS p", "verdict"],
            [[k, u.n, u.p_value, u.describe().split(" (")[0]] for k, u in null.by_source.items()],
        ),
        _img(figures["null_histogram"], "null p-value histogram"),
        "<h2>Quality</h2>",
    ]
    if r.quality:
        cols = sorted({c for row in r.quality.values() for c in row})
        parts.append(_table(["", *cols], [[k, *[row.get(c) for c in cols]] for k, row in r.quality.items()]))
    if r.examples:
        parts.append("<h2>Examples: original, marked, difference</h2>")
        for ex in r.examples:
            parts.append(
                f'<p>{html.escape(ex.name)} (difference amplified {ex.amplification:g}x around grey)</p><div class="ex">'
                + _img(ex.original_png, "original") + _img(ex.marked_png, "marked") + _img(ex.difference_png, "difference")
                + "</div>"
            )  # fmt: skip
    if r.samples:
        parts.append("<h2>Sample texts</h2>")
        parts += [f"<h3>{html.escape(label)}</h3><pre>{html.escape(text)}</pre>" for label, text in r.samples]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result: BenchResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``report.html`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the output folder ({err.strerror})") from None
    figures = plots(result)
    json_path, html_path = out / "results.json", out / "report.html"
    json_path.write_text(json.dumps(result.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
    html_path.write_text(_html(result, figures), encoding="utf-8")
    log.info("wrote %s and %s", json_path, html_path)
    return json_path, html_path
