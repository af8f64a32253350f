"""The verification service: an HTTP API and a web page (``dojang serve``).

Needs the ``service`` extra (FastAPI, uvicorn, SQLAlchemy, Alembic, psycopg). Nothing in the
library imports this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "Settings"):
        try:
            from dojang.service.app import create_app
            from dojang.service.config import Settings
        except ImportError as err:  # pragma: no cover - depends on the environment
            from dojang.errors import ServiceError

            raise ServiceError(
                f"the service needs the service extra: pip install 'dojang[service]' ({err.name} is missing)"
            ) from None
        return {"create_app": create_app, "Settings": Settings}[name]
    raise AttributeError(name)
