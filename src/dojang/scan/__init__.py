"""Batch scans: how much of a corpus carries a given provider's mark.

>>> from dojang.scan import scan
>>> summary = scan(["crawl/*.parquet"], keys, out="hits.parquet")   # doctest: +SKIP

Inputs are JSONL, CSV, Parquet, text and image files or directories, local or any fsspec URL;
the output is one row per item (Parquet or JSONL) plus a summary. Scans resume where they
stopped. ``pip install 'dojang[scan]'`` brings pyarrow, fsspec and Ray Data. See docs/scan.md.
"""

from dojang.scan._api import DEFAULT_OUT, scan
from dojang.scan._score import DEFAULT_FPR, Item, ScanRow, Scorer
from dojang.scan._store import ScanSummary

__all__ = ["DEFAULT_FPR", "DEFAULT_OUT", "Item", "ScanRow", "ScanSummary", "Scorer", "scan"]
