"""Optional dependencies of scans, imported when first needed."""

from __future__ import annotations

import importlib
from types import ModuleType

from dojang.errors import ConfigError


def require(module: str, extra: str = "scan") -> ModuleType:
    """Import ``module`` or fail with a message that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ConfigError(f"scans need {top}: pip install 'dojang[{extra}]'") from None
