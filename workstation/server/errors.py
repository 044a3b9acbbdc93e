"""One error body for every answer that is not a success: {"detail": {"error": <code>, "message": <text>, ...}}.

FastAPI and Starlette answer some failures themselves (a body that is not UTF-8 or nests too deep, an unknown
route, a wrong method) with their own bodies, and an unexpected exception with a bare 500. The handlers here
turn each into the documented form; the last-resort handler names no exception and shows no traceback (the
server's log has it).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

CODES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
         409: "conflict", 413: "too-large", 415: "unsupported-media-type", 422: "invalid", 429: "too-many-requests",
         503: "unavailable"}
BODY_NOT_JSON = "the body is not valid JSON (UTF-8 text, nested at most a few hundred levels)"


def fail(status: int, error: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> HTTPException:
    """The exception a route raises for a documented error."""
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return HTTPException(status, {"error": error, "message": message, **extra}, headers=headers)


def body(error: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"detail": {"error": error, "message": message, **extra}}


def _describe(errors) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "value_error":  # our checks name the place themselves (items.3.seq: ...)
            message = message.removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(body("invalid-json", BODY_NOT_JSON), status_code=400)
    listed = [{"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in errors[:20]]
    return JSONResponse(body("invalid", _describe(errors), errors=listed), status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if isinstance(detail, dict) and "error" in detail and "message" in detail:
        content = {"detail": detail}
    elif exc.status_code == 400:  # FastAPI's "There was an error parsing the body": not UTF-8, nested too deep
        content = body("invalid-json", BODY_NOT_JSON)
    else:
        content = body(CODES.get(exc.status_code, "error"), str(detail) if detail else "request refused")
    return JSONResponse(content, status_code=exc.status_code, headers=getattr(exc, "headers", None))


class LastResort:
    """ASGI middleware: an exception no handler took becomes a 500 in the documented body (its traceback goes to
    the server's log only). Starlette's own handler for Exception re-raises after answering, and uvicorn then
    drops the connection before some clients read the answer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def sending(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # noqa: BLE001 - the last resort
            log.error("unexpected %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path"),
                      exc_info=exc)
            if started:
                raise
            response = JSONResponse(body("internal", "the server failed to answer this request; its log has the "
                                                     "details"), status_code=500)
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(LastResort)
