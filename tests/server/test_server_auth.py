"""Enrolment codes, tokens and who may do what."""

from __future__ import annotations

import re

import threading
import time
from datetime import datetime, timedelta, timezone
from concurrent.futures import ThreadPoolExecutor

import pytest
from netpeers.process import PeerError
from server_helpers import fill, push, stored_ids

from workstation.core.sync import API_PREFIX


def _enrol(server, code: str, workstation_id: str):
    with server.client() as http:
        return http.post(f"{API_PREFIX}/enrol", json={"code": code, "workstation_id": workstation_id})


def test_an_enrolment_code_works_once_for_its_own_workstation_only(server, workstation_id):
    code = server.issue_code(workstation_id)
    # typable by IT and never mistaken for a command line option (`--code -x...`)
    assert re.fullmatch(r"([A-HJKMNP-TV-Z2-9]{5}-){4}[A-HJKMNP-TV-Z2-9]{5}", code), code
    wrong = _enrol(server, code, workstation_id + "-other")
    assert wrong.status_code == 401 and "another workstation" in wrong.json()["detail"]["message"]
    done = _enrol(server, " " + code.lower() + " ", workstation_id)  # as typed: case and spaces do not matter
    assert done.status_code == 201, done.text
    assert done.json()["workstation_id"] == workstation_id and len(done.json()["token"]) >= 40
    again = _enrol(server, code, workstation_id)
    assert again.status_code == 401 and "already used" in again.json()["detail"]["message"]
    unknown = _enrol(server, "not-a-code", workstation_id)
    assert unknown.status_code == 401 and unknown.json()["detail"]["message"] == "unknown enrolment code"
    with server.client(done.json()["token"]) as http:
        assert http.get(f"{API_PREFIX}/workstations/{workstation_id}/status").status_code == 200


def test_an_expired_code_is_refused(server, workstation_id):
    code = server.issue_code(workstation_id, ttl_hours=0.0001)  # 0.36 s
    time.sleep(0.5)
    response = _enrol(server, code, workstation_id)
    assert response.status_code == 401 and "expired" in response.json()["detail"]["message"]


def test_enrolling_again_replaces_the_token_and_revocation_ends_it(server, make_store, workstation_id):
    items = fill(make_store(workstation_id), 4)
    old = server.enrol(workstation_id)
    with server.client(old) as http:
        assert push(http, workstation_id, items[:2]).status_code == 200
    with pytest.raises(PeerError, match="already has 2 entries"):  # a second machine may not take the id silently
        server.enrol(workstation_id)
    new = server.enrol(workstation_id, replace=True)  # IT moves the id on purpose (issue 13)
    with server.client(old) as http:
        refused = push(http, workstation_id, items[2:])
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    with server.client(new) as http:
        assert push(http, workstation_id, items[2:3]).json()["head"]["seq"] == 3
    unused = server.issue_code(workstation_id)
    server.revoke(workstation_id)
    with server.client(new) as http:
        assert push(http, workstation_id, items[3:]).status_code == 401
    assert _enrol(server, unused, workstation_id).status_code == 401  # codes issued before revocation die with it
    status = server.status(workstation_id)
    assert status["entries"] == 3 and status["enrolled"] is False and status["revoked_utc"]
    assert stored_ids(server, workstation_id) == [i.entry.entry_id for i in items[:3]]  # what it pushed stays
    with server.client(server.enrol(workstation_id)) as http:  # a fresh code enrols it again
        assert push(http, workstation_id, items).json()["accepted"] == 1


def test_wrong_tokens_and_other_workstations_are_refused(server, make_store, workstation_id):
    other = workstation_id + "-b"
    mine, theirs = fill(make_store(workstation_id), 2), fill(make_store(other), 2)
    token, other_token = server.enrol(workstation_id), server.enrol(other)
    with server.client() as http:
        assert push(http, workstation_id, mine).status_code == 401
    with server.client("made-up-token") as http:
        response = push(http, workstation_id, mine)
        assert response.status_code == 401 and response.json()["detail"]["error"] == "unauthorized"
    with server.client(token) as http:
        as_other = push(http, other, theirs)
        assert as_other.status_code == 403
        assert as_other.json()["detail"]["message"] == (f"the token of workstation {workstation_id} was used to push"
                                                        f" entries of {other}")
        smuggled = push(http, workstation_id, theirs)  # body says mine, items are the other's
        assert smuggled.status_code == 403
        assert http.get(f"{API_PREFIX}/workstations/{other}/status").status_code == 403
        assert http.get(f"{API_PREFIX}/entries").status_code == 403  # QA only
        assert http.get(f"{API_PREFIX}/status").status_code == 403
    assert stored_ids(server, workstation_id) == [] and stored_ids(server, other) == []
    incidents = server.status(workstation_id)["incidents"]  # the same refusal twice: one row, counted twice
    assert [(i["kind"], i["occurrences"]) for i in incidents] == [("forbidden", 2)] and incidents[0]["last_utc"]
    with server.client(other_token) as http:
        assert push(http, other, theirs).json()["accepted"] == 2
    with server.client(server.qa_token) as http:
        assert push(http, workstation_id, mine).status_code == 403  # qa reads, never pushes


def test_admin_api_issues_codes_and_revokes_qa_may_not(server, make_store, workstation_id):
    admin = server.issue_token("admin")
    with server.client(server.qa_token) as http:
        assert http.post(f"{API_PREFIX}/admin/enrolment-codes", json={"workstation_id": workstation_id}).status_code == 403
        assert http.post(f"{API_PREFIX}/admin/workstations/{workstation_id}/revoke").status_code == 403
    with server.client(admin) as http:
        issued = http.post(f"{API_PREFIX}/admin/enrolment-codes", json={"workstation_id": workstation_id, "ttl_hours": 1})
        assert issued.status_code == 201, issued.text
        left = datetime.fromisoformat(issued.json()["expires_utc"]) - datetime.now(timezone.utc)
        assert timedelta(minutes=59) < left <= timedelta(hours=1)
        assert http.post(f"{API_PREFIX}/admin/enrolment-codes", json={"workstation_id": "bad id/x"}).status_code == 422
        assert http.post(f"{API_PREFIX}/admin/workstations/nobody-here/revoke").status_code == 404
        assert http.get(f"{API_PREFIX}/status").status_code == 200  # admin reads as qa does
    enrolled = _enrol(server, issued.json()["code"], workstation_id)
    assert enrolled.status_code == 201
    with server.client(admin) as http:
        assert http.post(f"{API_PREFIX}/admin/workstations/{workstation_id}/revoke").json()["revoked"] is True
    with server.client(enrolled.json()["token"]) as http:
        assert http.get(f"{API_PREFIX}/workstations/{workstation_id}/status").status_code == 401


def test_cli_refuses_bad_arguments(sqlite_server):
    server = sqlite_server
    with pytest.raises(PeerError, match="role"):
        server.issue_token("superuser")
    with pytest.raises(PeerError, match="unknown workstation"):
        server.revoke("never-enrolled")
    with pytest.raises(PeerError, match="letters, digits"):
        server.issue_code("no spaces please")


def test_a_code_raced_by_several_enrolments_gives_one_token(server, workstation_id):
    code = server.issue_code(workstation_id)
    barrier = threading.Barrier(4)

    def attempt(_):
        barrier.wait()
        return _enrol(server, code, workstation_id).status_code

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(attempt, range(4))) == [201, 401, 401, 401]
