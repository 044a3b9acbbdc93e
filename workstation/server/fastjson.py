"""Request bodies parsed with orjson, falling back to the standard library for whatever orjson refuses.

Why: the stdlib parser was the largest single cost of a push (a quarter of the server's CPU per entry, more
than validation, hashing and the insert). orjson accepts a subset of what `json.loads` accepts and returns the
same values for it; anything it refuses (invalid UTF-8, a BOM, lone surrogates, NaN, nesting beyond 1024) is
parsed again by `json.loads`, which returns or raises exactly what it did before, so every answer, error
bodies included, stays as it was. One divergence is not an error: orjson turns an integer beyond 64 bits into
a float (2**64 -> 1.8446744073709552e19), which would slip past the range check at ingest; a body holding any
number with 19 or more integer digits therefore goes to `json.loads` directly (a false alarm, say such digits
inside a string, only costs speed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

try:
    import orjson
except ImportError:  # pragma: no cover - orjson comes with the server's extra
    orjson = None


# A number token follows [ , or : (after optional whitespace and sign) or starts the body. Mapping every digit to
# "0" and those three to "!", with whitespace and "-" deleted, turns any number of 19+ integer digits into
# "!" + 19 zeros, found by a plain substring search (a regex over the body cost as much as parsing it).
_DIGITS_AND_OPENERS = bytes(48 if chr(c).isdigit() and c < 128 else 33 if c in b"[,:" else c for c in range(256))
_LONG_NUMBER = b"!" + b"0" * 19


def _has_long_number(body: bytes) -> bool:
    return _LONG_NUMBER in b"!" + body.translate(_DIGITS_AND_OPENERS, b" \t\r\n-")


def loads(body: bytes) -> Any:
    if orjson is not None and not _has_long_number(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


class FastJsonRequest(Request):
    """A request whose JSON body is parsed by `loads`, or first offered to the route's own decoder (fast_body)."""

    def __init__(self, scope, receive, decoder: Callable[[bytes], Any] | None = None) -> None:
        super().__init__(scope, receive)
        self._decoder = decoder

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = None if self._decoder is None else self._decoder(body)
            self._json = loads(body) if value is None else value
        return self._json


def fast_body(decoder: Callable[[bytes], Any]) -> Callable:
    """Mark a route function (below its @router decorator) whose JSON body `decoder` takes as bytes: it returns
    the route's body model (validated, or for the route itself to decode on its worker thread, as api.push does)
    or None to leave the body to `loads` and FastAPI's validation. Content types stay FastAPI's."""

    def mark(endpoint: Callable) -> Callable:
        endpoint.fast_json = decoder
        return endpoint

    return mark


class FastJsonRoute(APIRoute):
    """The router's route class: its handlers see a FastJsonRequest."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        decoder = getattr(self.endpoint, "fast_json", None)

        async def fast_json_handler(request: Request):
            return await handler(FastJsonRequest(request.scope, request.receive, decoder))

        return fast_json_handler
