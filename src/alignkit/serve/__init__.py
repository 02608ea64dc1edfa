"""An OpenAI-compatible HTTP server over any alignkit Generator (or chain): ``alignkit serve``.

FastAPI + uvicorn, the stack vLLM's own OpenAI server uses. Modules: ``config`` (``ServeConfig``),
``chain`` (model spec + wrappers -> ``ServedModel``; the ``WRAPPERS`` registry), ``schemas`` (request
bodies), ``batching`` (requests batched across callers), ``responses`` (OpenAI bodies and stream chunks),
``auth`` (bearer keys), ``errors`` (OpenAI's error shape), ``routes``, ``app`` (``create_app``,
``ServerThread``, ``serve``), ``cli``. Importing this package is cheap: FastAPI loads with ``app``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alignkit.serve.chain import WRAPPERS, ServedModel, register_wrapper
from alignkit.serve.config import ServeConfig, WrapperConfig

if TYPE_CHECKING:
    from alignkit.serve.app import ServerThread, create_app, serve

__all__ = [
    "WRAPPERS",
    "ServeConfig",
    "ServedModel",
    "ServerThread",
    "WrapperConfig",
    "create_app",
    "register_wrapper",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name in ("ServerThread", "create_app", "serve"):
        from alignkit.serve import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
