"""Operating the server safely: token listing and revocation, flood limits, incident paging, typed codes,
plain HTTP off loopback, private database files, schema migration and worker processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from netpeers.central import CentralServer
from netpeers.process import PeerError, require_isolation
from server_helpers import fill, push, stored_ids
from sqlalchemy import inspect, text

from workstation.core.sync import API_PREFIX


def _enrol(server, code: str, workstation_id: str):
    with server.client() as http:
        return http.post(f"{API_PREFIX}/enrol", json={"code": code, "workstation_id": workstation_id})


def test_qa_and_admin_tokens_are_listed_without_secrets_and_revoked(server, workstation_id):
    suffix = workstation_id
    qa = server.issue_token("qa", f"qa-{suffix}")
    other = server.issue_token("qa", f"qa-other-{suffix}")
    admin = server.admin_token
    server.enrol(workstation_id)
    with server.client(qa) as http:
        assert http.get(f"{API_PREFIX}/status").status_code == 200  # a use: its last use is recorded
        assert http.get(f"{API_PREFIX}/admin/tokens").status_code == 403  # listing is the admin's
    with server.client(admin) as http:
        listed = http.get(f"{API_PREFIX}/admin/tokens")
    assert listed.status_code == 200, listed.text
    for secret in (qa, other, admin):
        assert secret not in listed.text
    tokens = {t["name"]: t for t in listed.json()["tokens"]}
    assert tokens[f"qa-{suffix}"]["role"] == "qa" and tokens[f"qa-{suffix}"]["last_used_utc"]
    assert tokens[f"qa-other-{suffix}"]["last_used_utc"] is None and tokens[f"qa-other-{suffix}"]["created_utc"]
    assert tokens["central-fixture-admin"]["role"] == "admin" and tokens["central-fixture-admin"]["last_used_utc"]
    assert tokens[workstation_id]["role"] == "workstation" and tokens[workstation_id]["id"] is None

    with server.client(admin) as http:  # API: by id
        done = http.post(f"{API_PREFIX}/admin/tokens/{tokens[f'qa-{suffix}']['id']}/revoke")
        assert done.status_code == 200 and done.json() == {"id": tokens[f"qa-{suffix}"]["id"], "name": f"qa-{suffix}",
                                                           "revoked": True}
        missing = http.post(f"{API_PREFIX}/admin/tokens/999999/revoke")
        assert missing.status_code == 404 and missing.json()["detail"]["error"] == "not-found"
    with server.client(qa) as http:
        refused = http.get(f"{API_PREFIX}/status")
        assert refused.status_code == 401 and refused.json()["detail"]["message"] == "unknown or revoked token"
    server.cli("revoke-token", f"qa-other-{suffix}")  # CLI: by name
    with server.client(other) as http:
        assert http.get(f"{API_PREFIX}/status").status_code == 401
    printed = server.cli("tokens")
    assert printed.splitlines()[0].split() == ["id", "name", "role", "created", "last", "used", "revoked"]
    lines = {line.split()[1]: line.split() for line in printed.splitlines()[1:]}
    assert lines[f"qa-{suffix}"][2] == "qa" and lines[f"qa-{suffix}"][-1] != "-"  # revoked, with the time
    assert lines["central-fixture-admin"][-1] == "-" and qa not in printed and admin not in printed


def test_revoking_a_token_by_a_shared_name_revokes_nothing(sqlite_server):
    server = sqlite_server
    twins = [server.issue_token("qa", "twin") for _ in range(2)]
    with pytest.raises(PeerError, match="2 live tokens are named 'twin'"):
        server.cli("revoke-token", "twin")
    for token in twins:
        with server.client(token) as http:
            assert http.get(f"{API_PREFIX}/status").status_code == 200


def test_failed_enrolments_are_limited_per_source_address(central_factory, workstation_id):
    server = central_factory()
    code = server.issue_code(workstation_id)
    answers = [_enrol(server, f"WRONG-{n:05d}", workstation_id) for n in range(20)]
    assert [a.status_code for a in answers] == [401] * 20
    limited = _enrol(server, "WRONG-99999", workstation_id)
    assert limited.status_code == 429, limited.text
    detail = limited.json()["detail"]
    assert detail["error"] == "too-many-requests" and "too many failed enrolments" in detail["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60 and detail["retry_after_s"] == int(limited.headers["retry-after"])
    assert _enrol(server, code, workstation_id).status_code == 429  # even the right code waits: no oracle
    with server.client(server.admin_token) as http:  # everything else goes on
        assert http.get(f"{API_PREFIX}/status").status_code == 200


def test_repeated_incidents_are_one_row_floods_are_counted_and_incidents_are_paged(server, workstation_id):
    token = server.enrol(workstation_id)
    with server.client(token) as http:
        for _ in range(40):  # the same refusal again and again
            assert push(http, f"{workstation_id}-victim", []).status_code == 403
        for n in range(35):  # all different: after 30 new rows a minute, they are counted in one flood row
            assert push(http, f"{workstation_id}-x{n}", []).status_code == 403
    status = server.status(workstation_id)
    incidents = status["incidents"]
    assert incidents[0]["kind"] == "forbidden" and incidents[0]["occurrences"] == 40 and incidents[0]["last_utc"]
    assert f"{workstation_id}-victim" in incidents[0]["message"]
    assert len(incidents) == status["incidents_total"] == 31
    assert incidents[-1]["kind"] == "flood" and "more than 30 incidents a minute" in incidents[-1]["message"]
    assert sum(i["occurrences"] for i in incidents) == 75
    pages, after = [], None
    with server.client(server.qa_token) as http:
        while True:
            params = {"limit": 7, **({"after": after} if after is not None else {})}
            page = http.get(f"{API_PREFIX}/workstations/{workstation_id}/incidents", params=params).json()
            pages.append(page["items"])
            after = page["next"]
            if after is None:
                break
    assert [len(p) for p in pages] == [7, 7, 7, 7, 3]
    assert [i for p in pages for i in p] == incidents
    with server.client(token) as http:  # its own incidents, not another's
        assert http.get(f"{API_PREFIX}/workstations/{workstation_id}/incidents").status_code == 200
        assert http.get(f"{API_PREFIX}/workstations/{workstation_id}-x1/incidents").status_code == 403


@pytest.mark.parametrize("typed", [
    lambda c: c.replace("-", " "),  # spaces for dashes
    lambda c: c.replace("-", "").lower(),  # one run, lower case
    lambda c: "  " + " - ".join(c.split("-")).lower() + "\n",  # spaced-out dashes, surrounding blanks
])
def test_enrolment_codes_are_accepted_as_typed(sqlite_server, workstation_id, typed):
    code = sqlite_server.issue_code(workstation_id)
    done = _enrol(sqlite_server, typed(code), workstation_id)
    assert done.status_code == 201, done.text


def _serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workstation.server.cli", "serve", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_plain_http_off_loopback_is_refused_unless_insecure_http_is_given(tmp_path, central_factory):
    database = f"sqlite:///{tmp_path / 'never.sqlite'}"
    for host in ("0.0.0.0", "audit.example"):
        done = _serve("--host", host, "--database", database)
        assert done.returncode == 2, done.stderr
        assert "in clear" in done.stderr and "--tls-cert" in done.stderr and "--insecure-http" in done.stderr
    assert not (tmp_path / "never.sqlite").exists()
    require_isolation()  # binding every interface: only in the tests' private network namespace
    server = central_factory(start=False)
    server.serve_args = ("--host", "0.0.0.0", "--insecure-http")
    server.start()
    assert "INSECURE" in server.output_path.read_text() and "in clear" in server.output_path.read_text()
    with server.client() as http:
        assert http.get(f"{API_PREFIX}/health").status_code == 200


def test_a_new_sqlite_database_is_private(tmp_path):
    path = tmp_path / "new" / "deeper" / "server.sqlite"
    done = subprocess.run([sys.executable, "-m", "workstation.server.cli", "issue-token", "--role", "admin", "--name",
                           "first", "--database", f"sqlite:///{path}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path.parent.parent).st_mode) == 0o700
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists():
            assert stat.S_IMODE(os.stat(extra).st_mode) == 0o600, extra


def test_a_version_1_database_is_migrated(tmp_path, backend_url):
    from workstation.server import db

    server = CentralServer(tmp_path / "central", backend_url)
    admin = server.issue_token("admin", "old-admin")
    engine = db.make_engine(server.database_url)
    try:  # what a version 1 server left: no last use, no incident counts
        with db.write(engine) as conn:
            for table, column in (("principals", "last_used_utc"), ("workstations", "last_used_utc"),
                                  ("incidents", "occurrences"), ("incidents", "last_utc")):
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
            conn.execute(text("UPDATE schema_meta SET value = '1' WHERE key = 'schema_version'"))
            conn.execute(text("INSERT INTO workstations (id, head_seq, head_hash, entries) VALUES ('ws-old', 0, :h, 0)"),
                         {"h": "0" * 64})
            conn.execute(text("INSERT INTO incidents (workstation_id, at_utc, kind, message) "
                              "VALUES ('ws-old', '2025-01-01T00:00:00+00:00', 'gap', 'old one')"))
    finally:
        engine.dispose()
    server.start()
    try:
        with server.client(admin) as http:
            old = http.get(f"{API_PREFIX}/workstations/ws-old/status").json()["incidents"]
            assert [(i["message"], i["occurrences"], i["last_utc"]) for i in old] == [("old one", 1, None)]
            assert http.get(f"{API_PREFIX}/admin/tokens").json()["tokens"][0]["last_used_utc"]
    finally:
        server.stop()
    engine = db.make_engine(server.database_url)
    try:
        with db.read(engine) as conn:
            assert conn.execute(text("SELECT value FROM schema_meta")).scalar_one() == str(db.SCHEMA_VERSION)
            columns = {c["name"] for c in inspect(conn).get_columns("incidents")}
        assert {"occurrences", "last_utc"} <= columns
    finally:
        engine.dispose()


def test_several_worker_processes_on_postgresql_store_every_chain_once(central_factory, postgres_url, make_store):
    server = central_factory(postgres_url, start=False)
    server.serve_args = ("--workers", "2")
    server.start()
    chains = {}
    for n in range(3):
        ws = f"ws-workers-{n}"
        chains[ws] = (fill(make_store(ws), 12), server.enrol(ws))
    for ws, (items, token) in chains.items():
        with server.client(token) as http:
            for first in range(0, 12, 4):  # each push a new connection: the workers share them out
                response = push(http, ws, items[first:first + 4])
                assert response.status_code == 200, response.text
            assert push(http, ws, items).json()["duplicates"] == 12
    for ws, (items, _) in chains.items():
        assert stored_ids(server, ws) == [i.entry.entry_id for i in items]
    assert "2 worker process(es)" in server.output_path.read_text()
