"""Monitoring figures from the real server process (SQLite and PostgreSQL) holding reading sessions pushed by the
real sync client: every figure and interval equals a direct computation from what the sessions decided; the drift
alert fires for the version that fell to 50 %, not for the one that stayed at 80 %; CSV, CLI and tokens."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime

import pytest
from monitoring_data import SCORES, THRESHOLD, V1, V2, monday, wilson

API = "/api/v1/monitoring"


def get(server, path: str, token: str | None = None, **params):
    with server.client(token or server.qa_token) as http:
        return http.get(API + path, params=params)


def test_wilson_reference_value():
    # Wilson 95% for 8/10 as tabled by Newcombe (1998), method 3: 0.4902-0.9433
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=5e-5)


def test_figures_per_version_workstation_and_scanner_match_the_sessions(monitored):
    server, plan = monitored
    overview = get(server, "/overview").json()
    versions = {v["version"]: v for v in overview["versions"]}
    assert set(versions) == {V1.version, V2.version}
    for version in (V1.version, V2.version):
        runs, decided, accepted, kept, added = plan.decided(version)
        row = versions[version]
        assert (row["runs"], row["signed_runs"], row["findings"], row["decided"], row["pending"]) == (
            runs, runs, runs * len(SCORES), decided, 0)
        assert row["acceptance"] == pytest.approx(accepted / decided)
        assert row["acceptance_ci"] == pytest.approx(wilson(accepted, decided), abs=1e-9)
        assert row["ppv_proxy"] == pytest.approx(kept / decided)
        assert row["ppv_proxy_ci"] == pytest.approx(wilson(kept, decided), abs=1e-9)
        assert row["rejection_rate"] == pytest.approx(1 - accepted / decided)
        assert row["added_per_run"] == pytest.approx(added / runs)
        assert row["sha256"] == (V1 if version == V1.version else V2).sha256 and row["threshold"] == THRESHOLD
    assert versions["1.0.0"]["acceptance"] == pytest.approx(0.8) and versions["2.0.0"]["acceptance"] == pytest.approx(0.5)

    for row in overview["workstations"]:
        runs, decided, accepted, kept, added = plan.decided(row["version"], row["workstation_id"])
        assert (row["runs"], row["decided"], row["added"]) == (runs, decided, added)
        assert row["acceptance_ci"] == pytest.approx(wilson(accepted, decided), abs=1e-9)
    assert len(overview["workstations"]) == 4

    scanners = {(r["version"], r["manufacturer"], r["scanner_model"], r["kernel"]): r["runs"] for r in overview["scanners"]}
    expected: dict = {}
    for run in plan.runs:
        key = (run["version"], *run["scanner"])
        expected[key] = expected.get(key, 0) + 1
    assert scanners == expected
    assert scanners[("1.0.0", "", "", "")] == 1  # an inference record of format v1 (no monitoring fields) still counts


def test_hours_to_signoff_from_the_stored_signoffs(monitored):
    server, plan = monitored
    signoffs = {}
    for workstation in ("ws-mon-a", "ws-mon-b"):
        for item in server.entries(workstation, kind="review.signoff"):
            signoffs[item["record"]["payload"]["series_instance_uid"]] = datetime.fromisoformat(item["at_utc"])
    for version in (V1.version, V2.version):
        runs = [r for r in plan.runs if r["version"] == version]
        hours = sum((signoffs[r["series"]] - r["started"]).total_seconds() for r in runs) / len(runs) / 3600
        (row,) = [v for v in get(server, "/versions").json()["items"] if v["version"] == version]
        assert row["hours_to_decision"] == pytest.approx(hours, rel=1e-6)


def test_weekly_series_and_operating_points(monitored):
    server, plan = monitored
    detail = get(server, f"/versions/{V1.name}/{V1.version}").json()
    weeks = detail["weekly"]
    assert [w["week"] for w in weeks] == sorted({r["week"] for r in plan.runs if r["version"] == "1.0.0"})
    assert all(w["decided"] == 20 and w["acceptance"] == pytest.approx(0.8) for w in weeks)
    assert weeks[0]["acceptance_ci"] == pytest.approx(wilson(16, 20), abs=1e-9)
    # v1 decisions by score rank: 8 accepted or edited (0.97..0.63), one rejected (0.57), one deleted (0.52)
    runs = len([r for r in plan.runs if r["version"] == "1.0.0"])
    points = {round(p["threshold"], 2): p for p in detail["operating_points"]}
    for edge, point in points.items():
        shown = [i for i, s in enumerate(SCORES) if s >= edge]
        assert point["shown"] == len(shown) * runs
        assert point["accepted_kept"] == pytest.approx(len([i for i in shown if i < 8]) / 8)
        assert point["rejected_kept"] == pytest.approx(len([i for i in shown if i >= 8]) / 2)
    assert points[0.55]["rejected_kept"] == pytest.approx(0.5) and points[0.6]["rejected_kept"] == 0
    assert [p["threshold"] for p in detail["operating_points"] if p["in_force"]] == [pytest.approx(0.5)]
    histogram = detail["scores"]
    assert sum(b["findings"] for b in histogram) == runs * len(SCORES)
    assert histogram[19]["findings"] == runs and histogram[19]["accepted"] == runs  # 0.97
    assert histogram[10]["rejected"] == runs  # 0.52: deleted


def test_drift_alert_fires_for_the_second_version_not_the_first(monitored):
    server, _plan = monitored
    alerts = get(server, "/alerts").json()["items"]
    assert not [a for a in alerts if a["version"] == V1.version], alerts
    (acceptance,) = [a for a in alerts if a["version"] == V2.version and a["rule"] == "acceptance"]
    low, high = wilson(64, 80)  # 1.0.0's baseline: its first four weeks, 2 runs x 10 findings, 80 %
    assert acceptance["baseline"] == V1.version and acceptance["limit"] == f"{low:.3f}-{high:.3f}"
    assert acceptance["started"] == monday(2).date().isoformat() and acceptance["weeks"] == 2
    assert acceptance["value"] == pytest.approx(0.5)
    (new_input,) = [a for a in alerts if a["rule"] == "new-input"]
    assert new_input["version"] == V2.version and "SHARP" in new_input["message"]
    assert new_input["started"] == monday(1).date().isoformat()


def test_period_and_csv_export(monitored):
    server, plan = monitored
    since = monday(2).date().isoformat()
    versions = get(server, "/versions", since=since).json()["items"]
    assert [(v["version"], v["runs"]) for v in versions] == [(V2.version, plan.decided(V2.version)[0])]
    response = get(server, "/workstations", format="csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    as_json = get(server, "/workstations").json()["items"]
    assert [(r["workstation_id"], r["version"], int(r["decided"])) for r in rows] == [
        (r["workstation_id"], r["version"], r["decided"]) for r in as_json]
    assert float(rows[0]["acceptance_low"]) == pytest.approx(as_json[0]["acceptance_ci"][0], rel=1e-5)
    points = get(server, f"/versions/{V2.name}/{V2.version}/operating-points", format="csv")
    assert points.status_code == 200 and len(points.text.splitlines()) == 21


def test_only_qa_and_admin_tokens(monitored_sqlite):  # the same code on both databases: one is enough
    server, _plan = monitored_sqlite
    with server.client() as http:
        assert http.get(API + "/overview").status_code == 401
    assert get(server, "/overview", token="not-a-token").status_code == 401
    workstation_token = server.enrol("ws-mon-other")
    refused = get(server, "/overview", token=workstation_token)
    assert refused.status_code == 403 and refused.json()["detail"]["error"] == "forbidden"
    assert get(server, "/overview", token=server.admin_token).status_code == 200
    assert get(server, "/nothing").status_code == 404


def test_cli_monitor_json_and_csv(monitored, tmp_path):
    server, plan = monitored
    argv = [sys.executable, "-m", "workstation.server.cli", "monitor", "--database", server.database_url, "--json",
            "--csv", str(tmp_path / "csv")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # 1: an alert is open
    data = json.loads(done.stdout)
    assert data["format"] == "workstation.monitoring/1"
    assert data["versions"] == get(server, "/versions").json()["items"]
    assert {p.name for p in (tmp_path / "csv").iterdir()} == {f"{t}.csv" for t in
                                                             ("versions", "weekly", "workstations", "scanners", "alerts", "sync")}
    if server.database_url.startswith("sqlite"):  # the text form is made from the same tables on both databases
        text = subprocess.run(argv[:-3], capture_output=True, text=True, timeout=120).stdout
        assert "nodule-detector  2.0.0" in text and "Open alerts: 2" in text
