"""dojang: make AI-generated content identifiable.

Text watermarks live in :mod:`dojang.text`, keys in :mod:`dojang.keys`, exact statistics and the
shared :class:`Detection` result in :mod:`dojang.stats`, the error tree in :mod:`dojang.errors`.
"""

from dojang.errors import (
    ConfigError,
    DetectionError,
    DojangError,
    DojangKeyError,
    InputError,
    ProvenanceError,
    ServiceError,
)
from dojang.keys import Key, KeyRing, generate_key, load_key, save_key
from dojang.stats import Detection, Span, Verdict

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Detection",
    "DetectionError",
    "DojangError",
    "DojangKeyError",
    "InputError",
    "Key",
    "KeyRing",
    "ProvenanceError",
    "ServiceError",
    "Span",
    "Verdict",
    "__version__",
    "generate_key",
    "load_key",
    "save_key",
]
