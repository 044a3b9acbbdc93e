"""create_app(database_url): the FastAPI application, its body-size limit and its error format."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import workstation
from workstation.core.sync import API_PREFIX, MAX_BATCH, MAX_BODY_BYTES

from . import db
from .api import router

DRAIN_LIMIT = 8 * MAX_BODY_BYTES  # read (and drop) at most this much of a refused body, so the client gets the 413


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 before any route sees it."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await self._refuse(receive, send, 0, more=True, declared=int(length))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                return await self._refuse(receive, send, size, more=message.get("more_body", False))
            chunks.append(body)
            if not message.get("more_body", False):
                break
        payload, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, receive, send, size: int, more: bool, declared: int | None = None):
        while more and size <= DRAIN_LIMIT and (declared is None or declared <= DRAIN_LIMIT):
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        detail = {"error": "too-large",
                  "message": f"request body over {self.limit} bytes; push fewer items at a time (at most {MAX_BATCH})"}
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _describe(errors) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": {"error": "invalid-json", "message": "the body is not valid JSON"}}, status_code=400)
    listed = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors[:20]]
    return JSONResponse({"detail": {"error": "invalid", "message": _describe(errors), "errors": listed}},
                        status_code=422)


def create_app(database_url: str = db.DEFAULT_DATABASE) -> FastAPI:
    engine = db.make_engine(database_url)
    db.create_schema(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        engine.dispose()

    app = FastAPI(title="Workstation central server", version=workstation.__version__,
                  description="Receives each workstation's audit and feedback entries (sync protocol v1).",
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
                  lifespan=lifespan)
    app.state.engine = engine
    app.include_router(router, prefix=API_PREFIX)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    return app
