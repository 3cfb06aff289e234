"""Every error answer has one shape, ``{"error": {"code", "message"}}``, and names the field at fault.

Also the request size limit: a body over ``COPYCAT_API__MAX_UPLOAD_MIB`` is refused with 413, from its
``Content-Length`` before anything is read, or as soon as a chunked body passes the limit.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.errors import CopycatError, TransientError

log = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         406: "not_acceptable", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
         422: "invalid_request", 503: "unavailable"}


class ApiError(Exception):
    """An answer other than success, raised anywhere below a route."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
        self.code = code or CODES.get(status, "error")


class BodyTooLarge(Exception):
    """The request body passed the configured limit while it was being read."""


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def field_errors(errors: Any) -> str:
    """'body.top_k: Input should be greater than or equal to 1; ...' from pydantic's error list."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, CODES.get(exc.status_code, "error"), str(exc.detail),
                              getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", field_errors(exc.errors()))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return error_response(413, "too_large", str(exc), {"Connection": "close"})

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> JSONResponse:
        log.info("a client went away in the middle of its request body")
        return error_response(400, "bad_request", "the request body ended early (client disconnected)")

    @app.exception_handler(TransientError)
    async def _unavailable(_: Request, exc: TransientError) -> JSONResponse:
        log.warning("answering 503: %s", exc)
        return error_response(503, exc.code, str(exc), {"Retry-After": "10"})

    @app.exception_handler(CopycatError)
    async def _copycat(_: Request, exc: CopycatError) -> JSONResponse:
        log.error("answering 500: %s: %s", exc.code, exc)
        return error_response(500, exc.code, str(exc))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in the HTTP API")
        return error_response(500, "internal", f"internal error ({type(exc).__name__}); see the API's log")


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body (413 otherwise)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (f"the request body is larger than the limit of {self.max_bytes // 2**20} MiB"
                 " (COPYCAT_API__MAX_UPLOAD_MIB)")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, "too_large", limit, {"Connection": "close"})(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)
