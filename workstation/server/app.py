"""create_app(database_url): the FastAPI application, its body-size limit and its error format."""

from __future__ import annotations

import gc
import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

import workstation
from workstation.core.sync import API_PREFIX, MAX_BATCH, MAX_BODY_BYTES

from . import db, errors, limits, peers, pipeline
from . import monitoring
from .api import router

log = logging.getLogger(__name__)

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


def create_app(database_url: str = db.DEFAULT_DATABASE) -> FastAPI:
    engine = db.make_engine(database_url)
    db.create_schema(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The ~10^5 long-lived objects of the framework and the schema move out of the collector's sight: a push
        # allocates tens of thousands of short-lived ones, and each full collection it set off walked them all.
        gc.freeze()
        folder = os.environ.get(peers.ENV)  # `serve --workers N`: this is one of N worker processes
        try:
            others = peers.Peers(Path(folder), app.state.head_waits.nudge) if folder else None
        except OSError as exc:  # the pipeline still works: waiters read the head by polling
            log.warning("cannot reach the other worker processes through %s (%s): commits are polled", folder, exc)
            others = None
        app.state.head_waits.announce = others.announce if others else None
        app.state.workers_share_port = others is not None
        try:
            yield
        finally:
            app.state.head_waits.announce = None
            if others is not None:
                others.close()
            engine.dispose()

    app = FastAPI(title="Workstation central server", version=workstation.__version__,
                  description="Receives each workstation's audit and feedback entries (sync protocol v1).",
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
                  lifespan=lifespan)
    app.state.engine = engine
    app.state.enrol_failures = limits.Bucket(limits.ENROL_FAILURES_BURST, limits.ENROL_FAILURES_PER_MINUTE)
    app.state.incident_rows = limits.Window(limits.INCIDENT_ROWS_PER_MINUTE)
    app.state.head_waits = pipeline.HeadWaits()  # pipelined pushes (POST /entries?follows=N)
    app.state.workers_share_port = False  # set at startup: one of `serve --workers N`'s processes
    app.state.pushes_in_hand = pipeline.Handling()
    app.include_router(router, prefix=API_PREFIX)
    monitoring.register(app)  # /api/v1/monitoring/... and /dashboard (issue 16)
    errors.install(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    return app
