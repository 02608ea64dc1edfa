"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with OpenAI's statuses,
so clients raise their own exception types (the ``openai`` package: 400 ``BadRequestError``, 401
``AuthenticationError``, 404 ``NotFoundError``, 413 and 500 ``APIStatusError``).

FastAPI's own 422 for a body it could not validate never reaches a client: bodies are parsed by the
routes (``parse_body``) and every failure is a 400 naming the field, as OpenAI answers.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

logger = logging.getLogger("alignkit.serve")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """An error answered to the client as OpenAI would answer it."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(error: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(error.status, error.message, error.param, error.code), error.status, headers=headers
    )


def validation_message(error: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    """The first problem of a pydantic error as one sentence, and the field it is about."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        return f"Unrecognized request argument supplied: {where}", where or None
    if not where:  # a whole-body check (schemas' validators): its message starts with "field: "
        named = re.match(r"^([a-z_]+): ", message)
        return message, named.group(1) if named else None
    return (f"{where}: {message}" if where else message), where or None


async def parse_body(request: Request, model: type[BaseModel], limit: int) -> Any:
    """The request's JSON body as ``model``: 413 beyond ``limit`` bytes (read no further), 400 for JSON
    that does not parse or does not fit the model."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as error:
        raise APIError(400, f"the body is not valid JSON ({error})", code="invalid_json") from error
    if not isinstance(data, dict):
        raise APIError(400, f"the body must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        message, param = validation_message(error)
        raise APIError(400, message, param=param) from error


def install_handlers(app: FastAPI) -> None:
    """Every error the app can raise, answered in OpenAI's shape (never an HTML page or a traceback)."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, error: APIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return error_response(error, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        message, param = validation_message(error)
        return error_response(APIError(400, message, param=param))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        return error_response(APIError(error.status_code, message))

    @app.exception_handler(Exception)
    async def _internal(_: Request, error: Exception) -> JSONResponse:
        logger.exception("request failed")
        return error_response(APIError(500, f"the server failed: {type(error).__name__}: {error}"))
