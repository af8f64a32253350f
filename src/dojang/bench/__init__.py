"""The evaluation workbench behind ``dojang bench``: robustness and quality of the text and image
watermarks under configurable attack suites, with exact-p-value metrics, plots and a report.

>>> from dojang.bench import load_suite, run_image, write_report
>>> result = run_image(load_suite(None, "image"))          # doctest: +SKIP
>>> write_report(result, "bench-out")                      # doctest: +SKIP

Suites, attacks, metrics and the ``results.json`` keys are described in ``docs/bench.md``.
matplotlib (plots) and scikit-image (test images, SSIM, CIEDE2000) come with the ``bench`` extra.
"""

from dojang.bench._image import run_image
from dojang.bench._metrics import Uniformity, auc, roc, tpr_at_fpr, tpr_nominal, uniformity
from dojang.bench._report import write_report
from dojang.bench._results import SCHEMA_VERSION, AttackResult, BenchResult, Curve, NullResult
from dojang.bench._suite import ImageSuite, TextSuite, load_suite
from dojang.bench._text import run_text

__all__ = [
    "SCHEMA_VERSION",
    "AttackResult",
    "BenchResult",
    "Curve",
    "ImageSuite",
    "NullResult",
    "TextSuite",
    "Uniformity",
    "auc",
    "load_suite",
    "roc",
    "run_image",
    "run_text",
    "tpr_at_fpr",
    "tpr_nominal",
    "uniformity",
    "write_report",
]
