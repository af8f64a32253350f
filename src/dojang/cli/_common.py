"""Shared pieces of the command line: error reporting, quiet third-party output."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dojang.errors import DojangError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    """One clear line on stderr and exit status 2."""
    click.echo(f"dojang: error: {message}", err=True)
    sys.exit(2)


def friendly_errors(func: F) -> F:
    """Turn dojang's own errors into one line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DojangError as err:
            fail(str(err))
        except KeyboardInterrupt:
            click.echo("dojang: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def quiet_third_party() -> None:
    """Silence transformers' progress bars and advice; dojang logs what matters itself."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a hard dependency
        pass


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
