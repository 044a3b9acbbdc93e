"""The server's command line, health and OpenAPI document."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from workstation.core.sync import API_PREFIX


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workstation.server.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_serve_refuses_a_certificate_without_its_key_and_bad_database_urls(tmp_path):
    done = _cli("serve", "--tls-cert", str(tmp_path / "server.pem"), "--database", f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert done.returncode == 2 and "--tls-cert and --tls-key go together" in done.stderr
    done = _cli("serve", "--tls-key", str(tmp_path / "server.key"))
    assert done.returncode == 2 and "go together" in done.stderr
    done = _cli("issue-code", "ws-1", "--database", "mysql://db/x")
    assert done.returncode == 2 and "unsupported database" in done.stderr
    done = _cli("issue-code", "ws-1", "--ttl-hours", "0", "--database", f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert done.returncode == 2 and "positive" in done.stderr
    assert not (tmp_path / "x.sqlite").exists()  # nothing was created for refused commands


def test_default_database_is_a_sqlite_file_in_the_working_directory_with_a_schema_version(tmp_path):
    done = _cli("issue-token", "--role", "admin", "--name", "first-admin", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert len(token) >= 40
    db = sqlite3.connect(tmp_path / "workstation-server.sqlite")
    try:
        from workstation.server.db import SCHEMA_VERSION

        assert db.execute("SELECT value FROM schema_meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        stored = [row[0] for row in db.execute("SELECT token_hash FROM principals")]
        assert len(stored) == 1 and token not in stored[0]  # only the SHA-256 is kept
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()


def test_health_and_openapi_describe_the_api(server):
    with server.client() as http:
        health = http.get(f"{API_PREFIX}/health").json()
        spec = http.get(f"{API_PREFIX}/openapi.json").json()
    assert health["status"] == "ok" and health["database"] in ("sqlite", "postgresql")
    assert health["database"] == ("postgresql" if server.database_url.startswith("postgresql") else "sqlite")
    paths = spec["paths"]
    for path in ("/health", "/enrol", "/entries", "/status", "/workstations/{workstation_id}/status",
                 "/admin/enrolment-codes", "/admin/workstations/{workstation_id}/revoke"):
        assert API_PREFIX + path in paths, path
    assert set(paths[f"{API_PREFIX}/entries"]) == {"get", "post"}
    item = spec["components"]["schemas"]["WireItem"]
    assert item["additionalProperties"] is False and "hash" in item["required"]
    assert {"409", "413", "401", "403"} <= set(paths[f"{API_PREFIX}/entries"]["post"]["responses"])
    assert any("HTTPBearer" in s for s in spec["components"]["securitySchemes"])


def test_the_wire_model_is_the_protocols_item():
    from workstation.core.sync import ENTRY_FIELDS
    from workstation.server.models import WireItem

    assert list(WireItem.model_fields) == [*ENTRY_FIELDS, "record"]


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("workstation-server")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and all(c in done.stdout for c in ("serve", "issue-code", "issue-token", "revoke"))
