"""Real peers of the report tests, on 127.0.0.1 in threads that stop with the test.

MllpListener is the `hl7` package's asyncio MLLP server answering as told: "AA", "AE", "silent" (reads, never
answers) or "close" (reads, answers half an ACK, closes). FhirStandIn is a FastAPI app under uvicorn that
records what was POSTed and answers with the status it is told to.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import hl7
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from hl7.mllp import start_hl7_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MllpListener:
    def __init__(self, mode: str = "AA") -> None:
        self.mode, self.port, self.received = mode, free_port(), []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MllpListener:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("MLLP listener did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with await start_hl7_server(self._client, "127.0.0.1", self.port) as server:
            self._ready.set()
            await self._stop.wait()
            server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:  # a "silent" handler is still waiting: end it before the loop goes
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

    async def _client(self, reader, writer) -> None:
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                self.received.append(message)
                if self.mode == "silent":
                    await asyncio.sleep(30)
                    return
                if self.mode == "close":
                    writer.transport.write(b"\x0bMSH|^~\\&|RIS|H")
                    writer.close()
                    return
                ack = message.create_ack(self.mode, message_id=f"ACK{len(self.received)}")
                if self.mode != "AA":  # MSA-3 and an ERR segment carry the reason
                    control = str(message.segment("MSH")[10])
                    segments = [str(s) for s in ack if str(s[0]) != "MSA"]
                    segments += [f"MSA|{self.mode}|{control}|no such order", "ERR|||207^Application internal error^HL70357|E"]
                    ack = hl7.parse("\r".join(segments))
                writer.writemessage(ack)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()


class FhirStandIn:
    def __init__(self, status: int = 201, token: str | None = None) -> None:
        self.status, self.token, self.port, self.received = status, token, free_port(), []
        app = FastAPI()

        @app.post("/fhir")
        async def post(request: Request):
            body = await request.body()
            self.received.append({"body": body, "authorization": request.headers.get("authorization", "")})
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse(_outcome("login", "unknown bearer token"), 401)
            if self.status == 400:
                return JSONResponse(_outcome("invalid", "Observation.subject: unknown patient"), 400)
            if self.status >= 300:
                return JSONResponse(_outcome("transient", "try again later"), self.status)
            return JSONResponse({"resourceType": "Bundle", "type": "transaction-response",
                                 "entry": [{"response": {"status": "201 Created"}}] * len(json.loads(body)["entry"])},
                                self.status)

        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def __enter__(self) -> FhirStandIn:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("FHIR stand-in did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def _outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
