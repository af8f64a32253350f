"""The one exception tree of dojang.

Every error dojang raises on purpose derives from :class:`DojangError`, so a caller can catch
them all with one ``except`` and show ``str(err)``: the message names the problem in one line
and never contains key material::

    DojangError
    ├── ConfigError        a scheme, preset or parameter is invalid
    ├── DojangKeyError     a key file is missing, malformed or unusable
    ├── InputError         the content to stamp or check is unusable (empty, not UTF-8, ...)
    ├── DetectionError     detection could not be carried out
    ├── ProvenanceError    C2PA signing or reading failed
    └── ServiceError       the verification service refused or failed a request
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DetectionError",
    "DojangError",
    "DojangKeyError",
    "InputError",
    "ProvenanceError",
    "ServiceError",
]


class DojangError(Exception):
    """Root of every error dojang raises on purpose."""


class ConfigError(DojangError, ValueError):
    """A scheme, preset or parameter is invalid."""


class DojangKeyError(DojangError):
    """A key file is missing, malformed or unusable. The message never holds the secret."""


class InputError(DojangError, ValueError):
    """The content to stamp or check is unusable: empty, not UTF-8, too short to score, ..."""


class DetectionError(DojangError):
    """Detection could not be carried out (for example a tokenizer that cannot be loaded)."""


class ProvenanceError(DojangError):
    """Signing or reading a C2PA manifest failed."""


class ServiceError(DojangError):
    """The verification service refused or failed a request."""
