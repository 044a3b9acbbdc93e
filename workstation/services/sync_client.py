"""The central server's HTTP client for a workstation (protocol v1, see core.sync): enrolment, pushes, status.

`SyncClient` speaks HTTP with httpx: TLS verified against the site's `server.ca_file` (or the system CAs),
bounded timeouts, the workstation's bearer token read from the OS keyring (fail closed, like the store key). Its
answers and failures are the SyncError family below; services.sync (the worker) decides what to do with them.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import keyring.backend

from workstation import __version__
from workstation.core.site import ServerSettings
from workstation.core.sync import API_PREFIX, SyncItem
from workstation.store import keys

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)  # a batch of 500 commits well within 30 s
TOKEN_REJECTED = "token rejected: enrol again"
NOT_ENROLLED = "not enrolled: run 'workstation enrol --code CODE' with the code IT issued"
NOT_CONFIGURED = "no central server configured: IT sets [server] url in the site configuration"
REPLACED = "this machine was replaced on the central server"


# ----- failures (str() is the reason for the user: no patient data in any of them)
class SyncError(RuntimeError):
    """A sync step failed. `transient`: worth retrying soon; `halts`: needs someone to act first."""

    transient = False
    halts = False


class NotConfigured(SyncError):
    halts = True


class NotEnrolled(SyncError):
    halts = True


class KeyringProblem(SyncError):
    """No usable OS keyring for the token (never a plaintext fallback)."""

    halts = True


class TokenRejected(SyncError):
    halts = True


class CodeRejected(SyncError):
    """The enrolment code was wrong, expired or already used."""


class Unreachable(SyncError):
    """Connection refused or lost, timeout, TLS failure, 5xx or 429: try again later."""

    transient = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(SyncError):
    """The server refused the request (409 conflict/chain, 403, 413, 422...); nothing was written."""

    def __init__(self, message: str, status: int, error: str = "", seq: int | None = None, entry_id: str = "",
                 detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.seq, self.entry_id = status, error, seq, entry_id
        self.detail = detail or {}

    @property
    def kind(self) -> str:
        """The server's problem kind for a 409 (gap, broken-link, altered, conflict...), "" when not said."""
        return str(self.detail.get("kind", "") or "")

    @property
    def head(self) -> tuple[int, str] | None:
        """The server's chain head for us, when the refusal carries it (409 since the recovery protocol)."""
        head = self.detail.get("head")
        try:
            return (int(head["seq"]), str(head["hash"])) if isinstance(head, dict) else None
        except (KeyError, TypeError, ValueError):
            return None


class Replaced(TokenRejected):
    """The server enrolled this workstation's id on another machine (IT's --replace): this one must stop."""


class ChainMismatch(SyncError):
    """The server's chain for this id is not this store's (another machine with the id, a rewritten or older
    store): never resolved automatically; IT must look."""

    halts = True


class BadResponse(SyncError):
    """A success status with an answer that is not the protocol's (wrong server, proxy page...)."""


class LocalProblem(SyncError):
    """The local store could not be read or updated."""


@dataclass(frozen=True)
class PushAck:
    accepted: int
    duplicates: int
    acknowledged: tuple[str, ...]
    head_seq: int
    head_hash: str


# ----- the HTTP client
class SyncClient:
    """One workstation talking to the central server. Thread-safe enough for one worker plus status calls."""

    def __init__(self, settings: ServerSettings, workstation_id: str,
                 backend: keyring.backend.KeyringBackend | None = None, *, token: str | None = None,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.url:
            raise NotConfigured(NOT_CONFIGURED)
        self.settings, self.workstation_id, self.backend = settings, workstation_id, backend
        self._token = token
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.Client(base_url=settings.url + API_PREFIX, verify=_tls_context(settings),
                                  timeout=self._timeout, transport=transport, follow_redirects=False,
                                  headers={"User-Agent": f"radiology-workstation/{__version__}"})

    @property
    def url(self) -> str:
        return self.settings.url or ""

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the token
    def token(self) -> str:
        """The bearer token from the OS keyring (read once, again after a rejection)."""
        if self._token is None:
            try:
                self._token = keys.read_token(self.backend)
            except keys.KeyringUnavailable as exc:
                raise KeyringProblem(str(exc)) from None
            if self._token is None:
                raise NotEnrolled(NOT_ENROLLED)
        return self._token

    def has_token(self) -> bool:
        """Whether this workstation was enrolled (a token is in the keyring); KeyringProblem without a keyring."""
        try:
            self.token()
        except NotEnrolled:
            return False
        return True

    def forget_token(self) -> None:
        self._token = None

    # -- the endpoints
    def enrol(self, code: str) -> str:
        """Trade a one-time enrolment code for a token, kept in the OS keyring; returns the workstation id.

        The keyring is checked first, so a code is never spent when the token could not be kept."""
        code = code.strip()
        if not code:
            raise CodeRejected("the enrolment code is empty")
        try:
            backend = keys.usable_backend(self.backend)
        except keys.KeyringUnavailable as exc:
            raise KeyringProblem(str(exc)) from None
        response = self._request("POST", "/enrol", json={"code": code, "workstation_id": self.workstation_id},
                                 enrolling=True)
        data = _json_object(response, "enrol")
        token, enrolled_id = data.get("token"), data.get("workstation_id")
        if not isinstance(token, str) or not token:
            raise BadResponse("the server's enrolment answer holds no token")
        if enrolled_id != self.workstation_id:
            raise BadResponse(f"the server enrolled {enrolled_id!r}, not this workstation ({self.workstation_id!r})")
        try:
            keys.write_token(token, backend)
        except keys.KeyringUnavailable as exc:
            raise KeyringProblem(f"enrolled, but the token could not be kept: {exc}") from None
        self._token = token
        log.info("enrolled as %s at %s", self.workstation_id, self.url)
        return enrolled_id

    def push(self, items: Sequence[SyncItem], body: bytes | None = None) -> PushAck:
        """Send one batch (in seq order; `body` when already encoded); the server has committed it when this returns."""
        return self.push_body(body if body is not None else self.encode(items))

    def push_body(self, body: bytes, follows: int | None = None) -> PushAck:
        """Send one encoded push request (the worker's path: store/outbox.py writes it). `follows`: the last seq
        of the push before it, when that one may still be in flight (the server then waits for it)."""
        response = self._request("POST", "/entries", content=body, authorised=True,
                                 headers={"Content-Type": "application/json"},
                                 params=None if follows is None else {"follows": follows})
        data = _json_object(response, "push")
        try:
            acknowledged = tuple(str(i) for i in data["acknowledged"])
            head = data.get("head") or {}
            return PushAck(int(data.get("accepted", 0)), int(data.get("duplicates", 0)), acknowledged,
                           int(head.get("seq", 0)), str(head.get("hash", "")))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadResponse("the server's answer to a push is not a sync acknowledgement") from None

    def status(self) -> dict[str, Any]:
        """What the server holds for this workstation (entries, head, last push, incidents)."""
        response = self._request("GET", f"/workstations/{self.workstation_id}/status", authorised=True)
        return _json_object(response, "status")

    def head(self) -> tuple[int, str]:
        """The server's accepted chain head for this workstation: (seq, hash)."""
        data = _json_object(self._request("GET", f"/workstations/{self.workstation_id}/head", authorised=True), "head")
        try:
            return int(data["seq"]), str(data["hash"])
        except (KeyError, TypeError, ValueError):
            raise BadResponse("the server's answer to the head request is not a chain head") from None

    def announce_recovery(self, head_seq: int, head_hash: str, acknowledged_seq: int) -> None:
        """Tell the server we send entries after its head again (recorded there as an incident)."""
        self._request("POST", f"/workstations/{self.workstation_id}/recovery", authorised=True,
                      json={"head": {"seq": head_seq, "hash": head_hash}, "acknowledged_seq": acknowledged_seq})

    def health(self) -> bool:
        return self._request("GET", "/health").status_code == 200

    def encode(self, items: Sequence[SyncItem]) -> bytes:
        body = {"workstation_id": self.workstation_id, "items": [item.to_wire() for item in items]}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def _request(self, method: str, path: str, *, authorised: bool = False, enrolling: bool = False,
                 headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(headers or {})
        if authorised:
            headers["Authorization"] = f"Bearer {self.token()}"
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unreachable(f"server did not answer within {_timeout_text(self._timeout)}") from exc
        except httpx.TransportError as exc:
            raise Unreachable(_transport_reason(exc)) from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 429 or status >= 500:
            raise Unreachable(f"server {'busy' if status in (429, 503) else 'error'} (HTTP {status})",
                              _retry_after(response))
        if status == 401:
            if enrolling:
                message, _ = _detail(response)
                raise CodeRejected(f"enrolment code rejected ({message}): ask IT for a new code")
            self._token = None  # read again next time: someone may have enrolled meanwhile
            message, detail = _detail(response)
            if detail.get("reason") == "replaced":
                raise Replaced(f"{REPLACED}: tell IT ({message})")
            raise TokenRejected(TOKEN_REJECTED)
        message, detail = _detail(response)
        if status == 409:
            seq = detail.get("seq")
            where = f"entry {seq}" if seq is not None else "the batch"
            raise Refused(f"server refused {where} ({detail.get('kind') or detail.get('error') or 'conflict'}): "
                          f"{message}", status, str(detail.get("error", "")), seq if isinstance(seq, int) else None,
                          str(detail.get("entry_id", "") or ""), detail)
        raise Refused(f"server refused the request (HTTP {status}): {message}", status, str(detail.get("error", "")),
                      detail=detail)


def _tls_context(settings: ServerSettings) -> ssl.SSLContext | bool:
    if not settings.url.lower().startswith("https://"):
        return True  # plain http: nothing to verify (the site chose it)
    if not settings.verify:
        log.warning("server.verify is false: the central server's certificate is NOT checked")
        return False
    try:
        return ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise NotConfigured(f"server.ca_file: cannot be used ({exc})") from None


def _transport_reason(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return "server certificate not trusted (check server.ca_file)"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with the server failed ({getattr(cause, 'reason', None) or cause})"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return "server unreachable"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "connection to the server lost"
    return f"server unreachable ({type(exc).__name__})"


def _timeout_text(timeout: httpx.Timeout) -> str:
    values = [v for v in (timeout.connect, timeout.read, timeout.write) if v is not None]
    return f"{max(values):g} s" if values else "the time limit"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        value = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if 0 <= value <= 86_400 else None


def _detail(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    """The server's reason (FastAPI's "detail": a string, {"error","seq","entry_id","message"} or a list)."""
    try:
        data = response.json()
    except ValueError:
        return (response.text.strip()[:300] or response.reason_phrase or f"HTTP {response.status_code}"), {}
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if isinstance(detail, dict):
        message = detail.get("message") or detail.get("error") or json.dumps(detail)[:300]
        return str(message)[:300], detail
    if isinstance(detail, list):  # request validation errors
        parts = [str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail[:3]]
        return "; ".join(parts)[:300] or "invalid request", {}
    return str(detail)[:300], {}


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise BadResponse(f"the server's answer to {what} is not JSON (is server.url the central server?)") from None
    if not isinstance(data, dict):
        raise BadResponse(f"the server's answer to {what} is not a JSON object")
    return data
