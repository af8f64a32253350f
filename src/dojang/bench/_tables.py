"""Result tables as data: a benchmark records its report as blocks (text and tables) in its
results JSON, and the same code renders them as markdown for the terminal, its own output and
the committed docs (``scripts/make_docs.py``), so a committed table is always its JSON's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def cell(v: object) -> str:
    """One table cell: floats to 3 significant digits (thousands grouped past 1000)."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def md_table(headers: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


class Report:
    """An ordered list of blocks: ``{"text": ...}`` or ``{"headers": [...], "rows": [[...]]}``."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []

    def text(self, text: str) -> str:
        self.blocks.append({"text": text})
        return text

    def table(self, headers: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
        self.blocks.append({"headers": [str(h) for h in headers], "rows": [list(r) for r in rows]})
        return md_table(headers, rows)

    def markdown(self) -> str:
        return render(self.blocks)


def render(blocks: Sequence[dict[str, Any]]) -> str:
    """The markdown of recorded blocks, separated by blank lines."""
    out = []
    for block in blocks:
        out.append(block["text"] if "text" in block else md_table(block["headers"], block["rows"]))
    return "\n\n".join(out)


def run_meta(command: str) -> dict[str, str]:
    """How a results file was produced: ``command`` (as run), today's date and the machine."""
    import os
    import platform
    import time

    return {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
