"""The README and docs: result tables agree with their results files, the README is a front page
(two commands first, under 15 KB, no work history), and the docs site builds in strict mode.
(`dojang demo` is run with the real model in test_real_model.py.)"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def make_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "scripts" / "make_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_tables_match_their_results() -> None:
    """Every generated page and the README's results block are exactly what their results files
    give (run ``make docs`` after a benchmark)."""
    docs = make_docs()
    outputs = docs.outputs()
    assert any(p.name == "image-bench-v3.md" for p in outputs)  # the pages exist to compare
    stale = [str(p.relative_to(ROOT)) for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    assert not stale, f"out of date with their results files (run `make docs`): {stale}"
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_docs.py"), "--check"], capture_output=True)
    assert check.returncode == 0


def test_a_changed_result_changes_its_table(tmp_path: Path) -> None:
    """The check can fail: a results file edited (a detection more in the geometry benchmark)
    makes its page and the README's headline differ from the committed ones."""
    docs = make_docs()
    bench = tmp_path / "benchmarks"
    shutil.copytree(ROOT / "docs" / "benchmarks", bench)
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    data = json.loads((bench / "image-geometry.json").read_text())
    row = next(r for r in data["rows"] if r["transform"].startswith("perspective"))
    row["detected"] += 1
    (bench / "image-geometry.json").write_text(json.dumps(data))
    docs.BENCH, docs.README = bench, readme
    outputs = docs.outputs()
    assert outputs[bench / "image-geometry.md"] != (ROOT / "docs" / "benchmarks" / "image-geometry.md").read_text()
    assert outputs[readme] != (ROOT / "README.md").read_text()


def test_the_readme_is_a_front_page() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) < 15_000
    block = re.search(r"```\n(.*?)\n```", text, re.S)
    assert block is not None and text.index("```") < text.index("\n## ")
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    for capability in ("### Text", "### Images", "### Provenance", "### Verification service", "### Batch scans"):
        assert capability in text


HISTORY = re.compile(r"\bsessions? \d+|\bsession-\d+|\bissue #?\d+|\bround \d+ of\b|\bin round \d+", re.I)


def test_no_page_or_module_narrates_the_work() -> None:
    """The repository speaks of the software, not of its own history (numbered sessions, issues,
    rounds of work)."""
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    found = []
    for path in files:
        if path.name == "test_docs.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if HISTORY.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not found, "\n".join(found)
    assert HISTORY.search("fixed in session " + "14") and HISTORY.search("(issue " + "#2)")  # the pattern can match


@pytest.mark.skipif(shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed")
def test_the_docs_site_builds_in_strict_mode(tmp_path: Path) -> None:
    """``mkdocs build --strict``: a broken link or a missing page fails it."""
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "reference" / "index.html").read_text().count("ImageDetector") > 0
