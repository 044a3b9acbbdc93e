#!/usr/bin/env python
"""Benchmark: monitoring dashboard pages over 1 million stored entries, against a bare GROUP BY of the same rows.

DATA      --entries generated entries (default 1,000,000) written straight into the central server's `entries`
          table (its own schema and engine), as 8 workstations' reading sessions: per run one `inference.run`
          with its inference record (4 findings, record format v2: scanner, kernel, threshold), four
          `finding.accept` / `finding.reject` entries with their feedback records and one `review.signoff` with
          the final states; 2 models x 3 versions over 26 weeks, 4 scanner/kernel combinations.
PROJECT   the monitoring tables are brought up to date once (`projection.refresh`: each entry read once, in
          Python); timed and reported, not part of a page.
OURS      a real `workstation-server serve` process on that database; a qa token signed in through the
          dashboard form (session cookie); each page fetched over HTTP: GET /dashboard (all versions, by
          workstation, by scanner, alerts, sync health), GET /dashboard/versions/<model>/<version> (weekly
          series, histogram, operating points, breakdowns, 3 SVG charts), GET /api/v1/monitoring/overview (JSON).
          Each request also checks whether new entries arrived (none here). Last, a push of 204 entries from one
          workstation is written and the next GET /dashboard timed once: it reads those entries first.
BASELINE  `SELECT model, model_version, count(*) FROM entries GROUP BY model, model_version` on the same database
          from this process (SQLAlchemy, rows fetched): the cheapest query that touches the stored rows per
          model version. Target: each page <= 3x the baseline and <= 1 s.

Best and median of --repeats after one warm-up, interleaved. SQLite: a file in a temp dir. PostgreSQL: a
throw-away cluster (tests/netpeers/postgres.py: fsync off, as in the tests) on 127.0.0.1; --skip-postgres leaves it
out. Run as root for PostgreSQL (it runs as the `postgres` OS user).

    .venv/bin/python bench/monitoring.py [--entries 1000000] [--repeats 5] [--skip-postgres] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import _common as C

sys.path.insert(0, str(C.REPO / "tests"))  # netpeers: the central server and PostgreSQL as real processes

import httpx  # noqa: E402
from sqlalchemy import insert, text, update  # noqa: E402

from workstation.core.audit import GENESIS  # noqa: E402
from workstation.server import db  # noqa: E402
from workstation.server.monitoring import projection  # noqa: E402

WORKSTATIONS = [f"ws-bench-{i:02d}" for i in range(8)]
MODELS = ["nodule-detector", "fracture-finder"]
SCANNERS = [("Acme", "CT-One", "B30f"), ("Acme", "CT-One", "B70f"), ("Bcorp", "Scan 9", "STANDARD"),
            ("Bcorp", "Scan 9", "LUNG")]
WEEKS = 26
PER_RUN = 6  # inference.run, 4 decisions, sign-off
COLUMNS = ("workstation_id", "seq", "entry_id", "kind", "model", "model_version", "at_utc", "received_utc", "item")


def rows(entries: int, workstations: list[str] = WORKSTATIONS, first_seq: int = 0, first_run: int = 0):
    """Yield the entries' rows workstation by workstation, in seq order (what ingest would have stored)."""
    runs = entries // PER_RUN
    start = datetime.now(timezone.utc) - timedelta(weeks=WEEKS)
    per_ws = runs // len(workstations)
    received = db.now_utc()
    for w, workstation in enumerate(workstations):
        seq = first_seq
        for j in range(first_run, first_run + per_ws):
            i = min(runs - 1, (j - first_run) * len(workstations) + w)
            at = start + timedelta(seconds=i * WEEKS * 7 * 86400 / runs)
            model = MODELS[i % 2]
            version = f"{1 + min(2, int(3 * i / runs))}.0.0"
            manufacturer, scanner, kernel = SCANNERS[(i // 2) % 4]
            run_id, series = str(uuid.uuid4()), f"1.2.826.0.1.3680043.8.498.{w}.{j}"
            scores = [round(0.5 + ((i * 7 + k * 13) % 50) / 100, 2) for k in range(4)]
            states = ["accepted" if (i + k) % 5 else "rejected" for k in range(4)]
            when = at.isoformat(timespec="microseconds")
            findings = [{"finding_id": f"{run_id[:8]}-{k}", "label": "nodule", "score": s, "frame_index": 10 + k,
                         "box_px": [10.0, 10.0, 20.0, 20.0], "box_mm": [[0, 0, 0], [5, 5, 2.5]],
                         "center_mm": [2.5, 2.5, 1.25], "frames": [9, 11], "sop_instance_uid": f"{series}.{k}"}
                        for k, s in enumerate(scores)]
            payload = {"run_id": run_id, "model": {"name": model, "version": version, "sha256": "ab" * 32},
                       "device": "cpu", "study_instance_uid": "1.2.3", "series_instance_uid": series,
                       "started_utc": when, "findings": findings, "record_format": "workstation.inference-record/2",
                       "threshold": 0.5, "score_scale": "calibrated",
                       "acquisition": {"manufacturer": manufacturer, "manufacturer_model_name": scanner,
                                       "convolution_kernel": kernel, "slice_thickness_mm": 1.0}}
            seq += 1
            yield _row(workstation, seq, "inference.run", model, version, when, received,
                       {"run_id": run_id, "model": model, "version": version}, {"kind": "inference", "id": run_id,
                                                                                 "payload": payload})
            for k in range(4):
                seq += 1
                fid = findings[k]["finding_id"]
                feedback = {"entry_id": str(uuid.uuid4()), "action": "accept" if states[k] == "accepted" else "reject",
                            "finding_id": fid, "series_instance_uid": series, "model_name": model,
                            "model_version": version, "at_utc": when}
                yield _row(workstation, seq, f"finding.{feedback['action']}", model, version, when, received,
                           {"feedback_entry_id": feedback["entry_id"], "model": model, "version": version},
                           {"kind": "feedback", "id": feedback["entry_id"], "payload": feedback})
            seq += 1
            signed = (at + timedelta(hours=3)).isoformat(timespec="microseconds")
            signoff = {"entry_id": str(uuid.uuid4()), "action": "signoff", "finding_id": "", "series_instance_uid": series,
                       "model_name": model, "model_version": version, "at_utc": signed,
                       "details": {"findings": [{"finding_id": f["finding_id"], "state": st, "relabelled": False}
                                                for f, st in zip(findings, states)]}}
            yield _row(workstation, seq, "review.signoff", model, version, signed, received,
                       {"feedback_entry_id": signoff["entry_id"], "model": model, "version": version},
                       {"kind": "feedback", "id": signoff["entry_id"], "payload": signoff})


def _row(workstation, seq, kind, model, version, at, received, details, record):
    item = {"seq": seq, "entry_id": str(uuid.uuid4()), "workstation_id": workstation, "at_utc": at, "kind": kind,
            "user": "rita", "role": "reviewer", "study_instance_uid": "1.2.3", "outcome": 0, "outcome_text": "",
            "details": details, "prev_hash": "0" * 64, "hash": "0" * 64, "record": record}
    return (workstation, seq, item["entry_id"], kind, model, version, at, received,
            json.dumps(item, separators=(",", ":"), sort_keys=True))


def fill(url: str, entries: int) -> int:
    engine = db.make_engine(url)
    db.create_schema(engine)
    count = 0
    heads: dict[str, int] = {}
    with db.write(engine) as conn:
        for workstation in WORKSTATIONS:
            conn.execute(insert(db.workstations).values(id=workstation, head_seq=0, head_hash=GENESIS, entries=0))
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                with cursor.copy(f"COPY entries ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows(entries):
                        copy.write_row(row)
                        heads[row[0]] = row[1]
                        count += 1
            raw.commit()
        finally:
            raw.close()
    else:
        batch = []
        with db.write(engine) as conn:
            for row in rows(entries):
                batch.append(dict(zip(COLUMNS, row)))
                heads[row[0]] = row[1]
                if len(batch) == 10000:
                    conn.execute(insert(db.entries), batch)
                    count += len(batch)
                    batch = []
            if batch:
                conn.execute(insert(db.entries), batch)
                count += len(batch)
    with db.write(engine) as conn:
        for workstation, head in heads.items():
            conn.execute(update(db.workstations).where(db.workstations.c.id == workstation).values(
                head_seq=head, entries=head, last_push_utc=db.now_utc()))
    engine.dispose()
    return count


def bare(url: str):
    engine = db.make_engine(url)

    def run():
        with engine.connect() as conn:
            conn.execute(text("SELECT model, model_version, count(*) FROM entries GROUP BY model, model_version")).all()
    return engine, run


def measure(kind: str, url: str, folder: Path, entries: int, repeats: int) -> list[tuple[str, float, float]]:
    from netpeers.central import CentralServer

    clock = time.perf_counter()
    count = fill(url, entries)
    print(f"[{kind}] {count} entries written in {time.perf_counter() - clock:.1f} s", flush=True)
    engine = db.make_engine(url)
    clock = time.perf_counter()
    read = projection.refresh(engine)
    project_s = time.perf_counter() - clock
    engine.dispose()
    print(f"[{kind}] projection: {read} entries read in {project_s:.1f} s ({read / project_s:.0f}/s; all "
          f"{count} stored entries: {count / project_s:.0f}/s)", flush=True)
    server = CentralServer(folder / f"server-{kind}", url).start(timeout=120)
    try:
        token = server.issue_token("qa", "bench")
        http = httpx.Client(base_url=server.url, timeout=120)
        signed = http.post("/dashboard/sign-in", data={"token": token})
        assert signed.status_code == 303, signed.text
        version = http.get("/api/v1/monitoring/versions", headers={"Authorization": f"Bearer {token}"}).json()["items"][0]
        pages = {"GET /dashboard": ("/dashboard", {}),
                 "GET /dashboard/versions/M/V": (f"/dashboard/versions/{version['model']}/{version['version']}", {}),
                 "GET /api/v1/monitoring/overview": ("/api/v1/monitoring/overview",
                                                     {"Authorization": f"Bearer {token}"})}
        base_engine, baseline = bare(url)
        times: dict[str, list[float]] = {name: [] for name in ["baseline", *pages]}
        for attempt in range(repeats + 1):
            clock = time.perf_counter()
            baseline()
            spent = time.perf_counter() - clock
            if attempt:
                times["baseline"].append(spent)
            for name, (path, headers) in pages.items():
                clock = time.perf_counter()
                answer = http.get(path, headers=headers)
                spent = time.perf_counter() - clock
                assert answer.status_code == 200 and len(answer.content) > 1000, (name, answer.status_code)
                if attempt:
                    times[name].append(spent)
        # a push arrives (200 entries from one workstation); the next front page reads them first
        engine = db.make_engine(url)
        with db.read(engine) as conn:
            head = conn.execute(text("SELECT head_seq FROM workstations WHERE id = :w"), {"w": WORKSTATIONS[0]}).scalar()
        added = [dict(zip(COLUMNS, row)) for row in rows(204, [WORKSTATIONS[0]], head, 10_000_000)]
        with db.write(engine) as conn:
            conn.execute(insert(db.entries), added)
            conn.execute(update(db.workstations).where(db.workstations.c.id == WORKSTATIONS[0]).values(
                head_seq=head + len(added), entries=head + len(added)))
        engine.dispose()
        clock = time.perf_counter()
        answer = http.get("/dashboard")
        times["GET /dashboard after a 204-entry push"] = [time.perf_counter() - clock]
        assert answer.status_code == 200
        base_engine.dispose()
        http.close()
    finally:
        server.stop()
    return [(name, min(values), statistics.median(values)) for name, values in times.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--dir", help="work folder (default: a temp dir, removed)")
    args = parser.parse_args()
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, list] = {}
    cluster = None
    try:
        results["SQLite"] = measure("sqlite", f"sqlite:///{folder / 'central.sqlite'}", folder, args.entries, args.repeats)
        if not args.skip_postgres:
            from netpeers.postgres import PostgresCluster

            cluster = PostgresCluster().start()
            results["PostgreSQL"] = measure("postgresql", cluster.create_database("bench_monitoring"), folder,
                                            args.entries, args.repeats)
    finally:
        if cluster is not None:
            cluster.stop()
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    ok = True
    print(f"\n{args.entries} entries; best / median of {args.repeats}; baseline: bare SELECT count(*) GROUP BY model, version")
    print(f"{'database':<11} {'what':<40} {'best s':>8} {'median s':>9} {'best/baseline':>14}  target (<= 3x and <= 1 s)")
    for kind, rows_ in results.items():
        base = rows_[0][1]
        for name, best, median in rows_:
            ratio = best / base
            verdict = "" if name == "baseline" else ("met" if ratio <= 3 and best <= 1 else "NOT met")
            ok &= verdict != "NOT met"
            print(f"{kind:<11} {name:<40} {best:>8.3f} {median:>9.3f} {ratio:>14.2f}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
