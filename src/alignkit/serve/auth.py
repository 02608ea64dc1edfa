"""Bearer-token authentication for ``/v1``: ``Authorization: Bearer KEY``, compared in constant time.

``hmac.compare_digest`` takes as long whatever prefix of the key a guess gets right, so timing leaks
nothing about the key. A missing or wrong key is a 401 in OpenAI's error shape (the ``openai`` client
raises ``AuthenticationError``); ``/health`` stays open for load balancers.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable

from fastapi import Request

from alignkit.serve.config import API_KEY_ENV
from alignkit.serve.errors import APIError


def resolve_api_key(given: str | None) -> str:
    """The key to require: ``given`` (``--api-key`` / config), else ``ALIGNKIT_API_KEY``, else '' (open)."""
    return given or os.environ.get(API_KEY_ENV, "")


def key_matches(expected: str, header: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``expected`` as its bearer token."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        token = ""
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def bearer_auth(expected: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that lets a request through only with ``expected`` as its bearer token."""

    async def check(request: Request) -> None:
        if expected and not key_matches(expected, request.headers.get("authorization")):
            given = "no API key" if not request.headers.get("authorization") else "an incorrect API key"
            raise APIError(
                401, f"You provided {given}; send Authorization: Bearer <key>.", code="invalid_api_key"
            )

    return check
