"""One JSON error shape for every non-2xx answer: ``{"error": code, "detail": message}``.

FastAPI's own validation errors and Starlette's 404/405 go through the same handlers, so clients
parse one body shape; unexpected exceptions become a bare 500 without a traceback.
"""
from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from impasto.core.errors import ImageError, ModelError, OptionError, StyleError

log = logging.getLogger(__name__)

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 406: "not_acceptable", 408: "timeout",
                413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_parameters",
                500: "internal_error", 503: "unavailable", 504: "timeout"}

# Messages of third-party exceptions can embed object reprs ("<_io.BytesIO object at 0x7f...>"):
# heap addresses help an attacker defeat ASLR and mean nothing to a client.
_ADDRESS = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>|\s+at 0x[0-9a-fA-F]+")


def scrub(detail: str) -> str:
    return _ADDRESS.sub(lambda m: "data" if m.group(0).startswith("<") else "", detail)

# The caller's mistakes found past FastAPI's own parameter validation: status and error code.
USER_ERRORS: dict[type[Exception], tuple[int, str]] = {
    ImageError: (400, "invalid_image"),
    StyleError: (400, "invalid_style"),
    ModelError: (400, "invalid_model"),
    OptionError: (422, "invalid_parameters"),
}

# Described once so the OpenAPI schema documents the error body on every operation that can fail.
ERROR_SCHEMA = {"type": "object", "required": ["error", "detail"],
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}}


class ApiError(Exception):
    """An error answer the service chose deliberately (status, code, message, optional headers)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict:
    """``responses=`` entries for route decorators."""
    return {s: {"description": STATUS_CODES.get(s, "error"),
                "content": {"application/json": {"schema": ERROR_SCHEMA}}} for s in statuses}


def _location(loc) -> str:
    parts = [str(p) for p in loc if p not in ("query", "body", "path", "header")]
    return ".".join(parts) or "request"


def install(app: FastAPI, metrics=None) -> None:
    """Register the handlers; ``metrics`` (a :class:`impasto.serving.metrics.Metrics`) counts error codes."""

    def respond(request: Request, status: int, error: str, detail: str, headers=None) -> JSONResponse:
        if metrics is not None:
            metrics.count_error(request.scope, error)
        return error_response(status, error, scrub(detail), headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return respond(request, exc.status, exc.error, exc.detail, exc.headers)

    def user_error(status: int, error: str):
        async def handler(request: Request, exc: Exception):
            return respond(request, status, error, str(exc))
        return handler

    for exc_type, (status, error) in USER_ERRORS.items():
        app.add_exception_handler(exc_type, user_error(status, error))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        detail = "; ".join(f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors())
        return respond(request, 422, "invalid_parameters", detail or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = STATUS_CODES.get(exc.status_code, "error")
        return respond(request, exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return respond(request, 500, "internal_error", "internal server error")
