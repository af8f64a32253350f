"""Request input types and handlers that turn malformed input into clear 4xx answers.

JSON may carry strings that are not Unicode text (a lone surrogate such as ``"\\ud800"``) and any
string may carry NUL, which PostgreSQL text columns refuse: both reached the tokenizer or the
database and came back as 500s. The types here reject them at the edge, with a message.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "BodyTooLarge",
    "ErrorResponse",
    "Identifier",
    "UnicodeText",
    "clean_stored_text",
    "http_error_with_utf8_detail",
    "validation_error",
]


def _unicode_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"holds a lone surrogate at character {err.start}, which is not Unicode text") from None
    return value


def _identifier(value: str) -> str:
    _unicode_text(value)
    bad = next((i for i, ch in enumerate(value) if ord(ch) < 32 or ord(ch) == 127), None)
    if bad is not None:
        raise ValueError(f"holds a control character at character {bad}; names and ids are printable text")
    return value


UnicodeText = Annotated[str, AfterValidator(_unicode_text)]
"""Free text (documents, prompts, key files): any Unicode, NUL included, but no lone surrogates."""

Identifier = Annotated[str, AfterValidator(_identifier)]
"""Names and ids (tenant names, key ids, providers, manifest ids): printable Unicode only."""


def clean_stored_text(value: str) -> str:
    """Text as a database column can hold it: NUL (refused by PostgreSQL) becomes U+FFFD. The
    audit log's content hash is taken from the original bytes, so it stays exact."""
    return value.replace("\x00", "\ufffd")


class BodyTooLarge(Exception):
    """A request body passed the upload limit while it was being read (see ``app.BodyLimit``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")


async def http_error_with_utf8_detail(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI answers a JSON body that is not UTF-8, or one cut off at the size limit, with a bare
    "error parsing the body"; say why."""
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, BodyTooLarge):
        return ErrorResponse({"detail": str(cause)}, status_code=413)
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        return ErrorResponse(
            {"detail": f"the request body is not valid UTF-8 (byte {cause.start} of the body); JSON must be UTF-8"},
            status_code=400,
        )
    return await http_exception_handler(request, exc)


class ErrorResponse(JSONResponse):
    """A JSON error body written as ASCII: an error that quotes the caller's input (a lone
    surrogate included) must still render, where the default UTF-8 rendering raised a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 for a request that does not match the schema, rendered safely: the offending
    input is not echoed back (it may be a key file or someone's text), only where and why."""
    errors = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()]
    return ErrorResponse({"detail": jsonable_encoder(errors)}, status_code=422)
