"""The ``dojang`` command line: a thin face over the library."""

from dojang.cli.main import main

__all__ = ["main"]
