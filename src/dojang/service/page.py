"""The public web page at ``/``: paste text or drop a file, get a verdict card (Korean or English).

The page is one self-contained file, ``static/index.html`` (no external scripts, fonts or links)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@cache
def _page() -> str:
    return (Path(__file__).parent / "static" / "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> str:
    return _page()
