"""Small pieces both runners share: progress reporting, the environment line, lazy imports."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

from dojang.errors import ConfigError

Progress = Callable[[str, int, int], None]  # (what is being done, steps done, steps in all)


def no_progress(stage: str, done: int, total: int) -> None:
    """The default progress callback: nothing (the library logs; only the CLI draws bars)."""


def environment() -> dict[str, str]:
    from dojang import __version__

    return {"dojang": __version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpus": str(os.cpu_count() or 1)}  # fmt: skip


def need(module: str, extra: str = "bench") -> Any:
    """Import an optional dependency or fail with a message that names the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"the benchmark needs {module.split('.')[0]}: pip install 'dojang[{extra}]'") from None
