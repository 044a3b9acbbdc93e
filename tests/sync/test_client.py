"""The HTTP client on its own (httpx MockTransport): how each answer of the server is understood, the token
kept in the keyring and never a plaintext fallback. The real server is used in test_sync_server.py."""

from __future__ import annotations

import json
import re

import httpx
import keyring.backends.fail
import pytest

from workstation.core.audit import GENESIS, AuditEvent, chain_entry
from workstation.core.site import ServerSettings
from workstation.core.sync import SyncItem
from workstation.services.sync import (
    BadResponse, CodeRejected, KeyringProblem, NotConfigured, NotEnrolled, Refused, SyncClient, TokenRejected,
    Unreachable,
)
from workstation.store import keys

URL = "http://central.test:8080"
SETTINGS = ServerSettings(url=URL)


def client(handler, backend, **kwargs) -> SyncClient:
    return SyncClient(SETTINGS, "ws-1", backend, transport=httpx.MockTransport(handler), **kwargs)


def items(n: int = 2) -> list[SyncItem]:
    out, prev = [], GENESIS
    for seq in range(1, n + 1):
        entry = chain_entry(seq, f"id{seq}", "ws-1", "rita", "reviewer",
                            AuditEvent("study.opened", "2026-01-01T00:00:00.000+00:00", {"n": seq}), prev)
        out.append(SyncItem(entry))
        prev = entry.hash
    return out


def test_enrol_keeps_the_token_in_the_keyring_and_push_sends_it(backend):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v1/enrol":
            assert json.loads(request.content) == {"code": "ABCD-1234", "workstation_id": "ws-1"}
            return httpx.Response(201, json={"workstation_id": "ws-1", "token": "tok-123"})
        assert request.url.path == "/api/v1/entries"
        assert request.headers["Authorization"] == "Bearer tok-123"
        body = json.loads(request.content)
        assert body["workstation_id"] == "ws-1" and [i["seq"] for i in body["items"]] == [1, 2]
        return httpx.Response(200, json={"accepted": 2, "duplicates": 0, "acknowledged": ["id1", "id2"],
                                         "head": {"seq": 2, "hash": "h"}})

    with client(handler, backend) as c:
        assert not c.has_token()
        assert c.enrol("  ABCD-1234 ") == "ws-1"
    assert keys.read_token(backend) == "tok-123"
    assert backend.get_password(keys.SERVICE, "server-token") == "tok-123"
    with client(handler, backend) as c:  # a new client reads it from the keyring
        ack = c.push(items())
    assert (ack.accepted, ack.duplicates, ack.acknowledged, ack.head_seq) == (2, 0, ("id1", "id2"), 2)


def test_the_store_key_is_untouched_by_the_token(backend):
    backend.set_password(keys.SERVICE, keys.STORE_KEY, "11" * 32)
    keys.write_token("tok", backend)
    assert keys.read_key(backend) == bytes.fromhex("11" * 32) and keys.read_token(backend) == "tok"
    keys.delete_token(backend)
    keys.delete_token(backend)  # twice: nothing to delete is fine
    assert keys.read_token(backend) is None and keys.read_key(backend) is not None


def test_a_bad_code_is_said_so_and_nothing_is_kept(backend):
    def handler(request):
        return httpx.Response(401, json={"detail": "unknown or expired enrolment code"})

    with client(handler, backend) as c, pytest.raises(CodeRejected, match="enrolment code rejected"):
        c.enrol("WRONG")
    assert keys.read_token(backend) is None


def test_without_a_keyring_the_code_is_not_even_sent(monkeypatch):
    sent = []
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    with client(lambda r: sent.append(r) or httpx.Response(500), None) as c:
        with pytest.raises(KeyringProblem, match="no usable OS keyring"):
            c.enrol("ABCD")
        with pytest.raises(KeyringProblem):
            c.has_token()
    assert sent == []
    with client(lambda r: httpx.Response(500), keyring.backends.fail.Keyring()) as c, pytest.raises(KeyringProblem):
        c.push(items())


def test_an_enrolment_answer_for_another_workstation_is_refused(backend):
    def handler(request):
        return httpx.Response(201, json={"workstation_id": "ws-other", "token": "t"})

    with client(handler, backend) as c, pytest.raises(BadResponse, match="not this workstation"):
        c.enrol("CODE")
    assert keys.read_token(backend) is None


def test_not_enrolled_is_said_before_anything_is_sent(backend):
    with client(lambda r: pytest.fail("sent"), backend) as c, pytest.raises(NotEnrolled, match="workstation enrol"):
        c.push(items())


@pytest.mark.parametrize("status, error, words", [
    (500, Unreachable, "server error (HTTP 500)"),
    (502, Unreachable, "server error (HTTP 502)"),
    (503, Unreachable, "server busy (HTTP 503)"),
    (429, Unreachable, "server busy (HTTP 429)"),
    (401, TokenRejected, "token rejected: enrol again"),
    (403, Refused, "HTTP 403"),
    (413, Refused, "HTTP 413"),
    (422, Refused, "HTTP 422"),
    (400, Refused, "HTTP 400"),
])
def test_each_status_is_understood(backend, status, error, words):
    keys.write_token("tok", backend)
    with client(lambda r: httpx.Response(status, json={"detail": "nope"}, headers={"Retry-After": "12"}), backend) as c:
        with pytest.raises(error, match=re.escape(words)) as failure:
            c.push(items())
    if error is Unreachable:
        assert failure.value.transient and failure.value.retry_after == 12.0
    if error is Refused:
        assert failure.value.status == status and "nope" in str(failure.value)


def test_a_rejected_token_is_read_again_from_the_keyring_next_time(backend):
    keys.write_token("old", backend)
    answers = iter([httpx.Response(401, json={"detail": "revoked"}),
                    httpx.Response(200, json={"accepted": 1, "duplicates": 0, "acknowledged": ["id1"],
                                              "head": {"seq": 1, "hash": "h"}})])
    tokens = []

    def handler(request):
        tokens.append(request.headers["Authorization"])
        return next(answers)

    with client(handler, backend) as c:
        with pytest.raises(TokenRejected):
            c.push(items(1))
        keys.write_token("new", backend)  # enrolled again meanwhile (e.g. by `workstation enrol`)
        c.push(items(1))
    assert tokens == ["Bearer old", "Bearer new"]


def test_a_409_names_the_entry_and_the_servers_reason(backend):
    keys.write_token("tok", backend)
    detail = {"error": "chain", "seq": 7, "entry_id": "id7", "message": "entry 7 does not link to entry 6"}
    with client(lambda r: httpx.Response(409, json={"detail": detail}), backend) as c:
        with pytest.raises(Refused) as failure:
            c.push(items())
    refused = failure.value
    assert (refused.status, refused.error, refused.seq, refused.entry_id) == (409, "chain", 7, "id7")
    assert str(refused) == "server refused entry 7 (chain): entry 7 does not link to entry 6"


@pytest.mark.parametrize("answer", [
    httpx.Response(200, text="<html>proxy login</html>"),
    httpx.Response(200, json=["not", "an", "object"]),
    httpx.Response(200, json={"accepted": 1}),
])
def test_an_answer_that_is_not_an_acknowledgement_is_not_trusted(backend, answer):
    keys.write_token("tok", backend)
    with client(lambda r: answer, backend) as c, pytest.raises(BadResponse):
        c.push(items())


def test_connection_failures_and_timeouts_are_transient(backend):
    keys.write_token("tok", backend)

    def refused(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    def cut(request):
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    for handler, words in ((refused, "server unreachable"), (slow, "did not answer within 30 s"),
                           (cut, "connection to the server lost")):
        with client(handler, backend) as c, pytest.raises(Unreachable, match=words) as failure:
            c.push(items())
        assert failure.value.transient


def test_nothing_listening_is_unreachable(backend):
    from netpeers.process import free_port

    keys.write_token("tok", backend)
    with SyncClient(ServerSettings(url=f"http://127.0.0.1:{free_port()}"), "ws-1", backend, timeout=2) as c:
        with pytest.raises(Unreachable, match="server unreachable"):
            c.push(items())


def test_no_server_configured_and_an_unusable_ca_file(tmp_path):
    with pytest.raises(NotConfigured, match=r"\[server\] url"):
        SyncClient(ServerSettings(), "ws-1")
    with pytest.raises(NotConfigured, match="server.ca_file"):
        SyncClient(ServerSettings(url="https://central.test", ca_file=str(tmp_path / "missing.pem")), "ws-1")
