"""Generated reading sessions with known reader decisions, written through the real store and review service and
pushed through the real sync client; and the figures they must give, computed here directly from the plan.

Two workstations run `nodule-detector` 1.0.0 for six weeks, then 2.0.0 for two weeks (one run each per week,
10 findings per run, the same scores every run). Each run is reviewed and signed off:

* 1.0.0: six accepted, one relabelled then accepted, one box moved (edited), one rejected, one deleted:
  acceptance 8/10, PPV proxy (label kept) 7/10, and on workstation A one finding added by the reader;
* 2.0.0: four accepted, one box moved, five rejected: acceptance 5/10, PPV proxy 5/10.

Workstation B's first 1.0.0 week is written without the monitoring fields (an inference record of format v1, as
older workstations push); its last 2.0.0 run comes from a scanner with a kernel never seen before (SHARP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from keyrings.alt.file import PlaintextKeyring

from workstation.core.audit import AuditEvent
from workstation.core.findings import Acquisition, Finding, InferenceResult, ModelRef
from workstation.core.roles import Role, User
from workstation.core.site import ServerSettings
from workstation.services.review import ReviewSession, SeriesKey
from workstation.services.sync import SyncClient, SyncWorker
from workstation.store.database import Identity, Store

V1 = ModelRef("nodule-detector", "1.0.0", "a1" * 32)
V2 = ModelRef("nodule-detector", "2.0.0", "b2" * 32)
SCORES = [0.97, 0.92, 0.88, 0.83, 0.78, 0.74, 0.68, 0.63, 0.57, 0.52]
THRESHOLD = 0.5
WORKSTATIONS = {"ws-mon-a": Acquisition("Acme", "CT-One", "B30f", 1.0),
                "ws-mon-b": Acquisition("Bcorp", "Scan 9", "STANDARD", 1.25)}
NEW_KERNEL = Acquisition("Bcorp", "Scan 9", "SHARP", 1.25)
PATIENT_NAME = "MONITOR^PATIENT"  # written nowhere the server sees; the dashboard must never show it
FRAMES = 40


@dataclass
class Plan:
    """What was written: per (version, workstation, week Monday) the runs; every decision; the run start times."""

    runs: list[dict] = field(default_factory=list)

    def decided(self, version: str, workstation: str | None = None) -> tuple[int, int, int, int, int]:
        """(runs, decided, accepted or edited, label kept, added) of a version (and workstation)."""
        runs = [r for r in self.runs if r["version"] == version and workstation in (None, r["workstation"])]
        return (len(runs), sum(r["decided"] for r in runs), sum(r["accepted"] for r in runs),
                sum(r["kept"] for r in runs), sum(r["added"] for r in runs))


def monday(weeks_ago: int) -> datetime:
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=today.weekday() + 7 * weeks_ago)


def open_store(folder: Path, workstation_id: str) -> tuple[Store, PlaintextKeyring]:
    folder.mkdir(parents=True, exist_ok=True)
    backend = PlaintextKeyring()
    backend.file_path = str(folder / "keyring" / "keyring_pass.cfg")
    return Store.open(folder / "store.sqlite", Identity(User("rita", Role.REVIEWER), workstation_id), backend), backend


def _findings(series: str) -> list[Finding]:
    return [Finding(f"{series[-6:]}-f{i}", "nodule", score, 2 + i, (10.0 + 20 * i, 10.0, 22.0 + 20 * i, 22.0),
                    ((0.0, 0.0, 0.0), (5.0, 5.0, 2.5)), (2.5, 2.5, 1.25), (1 + i, 3 + i), f"{series}.{2 + i}")
            for i, score in enumerate(SCORES)]


def _review(store: Store, run: dict, findings: list[Finding], model: ModelRef, add: bool) -> None:
    key = SeriesKey("1.2.826.0.1.3680043.8.498.77", run["series"], tuple(f"{run['series']}.{k}" for k in range(FRAMES)))
    session = ReviewSession(store, key, model, findings, labels=("nodule", "mass"))
    ids = [f.finding_id for f in findings]
    if model is V1:
        for fid in ids[:6]:
            session.accept(fid)
        session.relabel(ids[6], "mass")
        session.accept(ids[6])
        session.edit_box(ids[7], (152.0, 12.0, 164.0, 24.0))  # moved: edited (a decision of its own)
        session.reject(ids[8])
        session.delete(ids[9])
        run.update(decided=10, accepted=8, kept=7)
    else:
        for fid in ids[:4]:
            session.accept(fid)
        session.edit_box(ids[4], (92.0, 12.0, 104.0, 24.0))
        for fid in ids[5:]:
            session.reject(fid)
        run.update(decided=10, accepted=5, kept=5)
    if add:
        session.add(30, (200.0, 200.0, 220.0, 220.0), "nodule")
    run["added"] = int(add)
    session.sign_off()


def generate(root: Path, server, plan: Plan | None = None) -> Plan:
    """Write the sessions into one real store per workstation and push them to `server` with the sync client."""
    plan = plan or Plan()
    weeks = [(V1, w) for w in range(8, 2, -1)] + [(V2, w) for w in (2, 1)]
    for n, (workstation, acquisition) in enumerate(WORKSTATIONS.items()):
        store, backend = open_store(root / workstation, workstation)
        try:
            for index, (model, weeks_ago) in enumerate(weeks):
                started = monday(weeks_ago) + timedelta(days=1 + n, hours=9)
                series = f"1.2.826.0.1.3680043.8.498.78.{n}.{index}"
                findings = _findings(series)
                old_format = workstation == "ws-mon-b" and index == 0
                this = NEW_KERNEL if (workstation == "ws-mon-b" and model is V2 and weeks_ago == 1) else acquisition
                result = InferenceResult(model, "cpu", "1.2.826.0.1.3680043.8.498.77", series, findings,
                                         np.zeros((1, 1, 1), np.uint8), 1.0, started.isoformat(timespec="seconds"),
                                         acquisition=None if old_format else this,
                                         threshold=None if old_format else THRESHOLD, calibrated=not old_format)
                store.record_inference(result, AuditEvent("inference.run", result.started_utc, {
                    "series_instance_uid": series, "model": model.name, "version": model.version,
                    "sha256": model.sha256, "device": "cpu", "findings": len(findings)},
                    "1.2.826.0.1.3680043.8.498.77"))
                run = {"workstation": workstation, "version": model.version, "series": series,
                       "started": started, "week": monday(weeks_ago).date().isoformat(),
                       "scanner": ("", "", "") if old_format else (this.manufacturer, this.manufacturer_model,
                                                                  this.convolution_kernel)}
                _review(store, run, findings, model, add=workstation == "ws-mon-a")
                plan.runs.append(run)
            settings = ServerSettings(url=server.url)
            with SyncClient(settings, workstation, backend) as client:
                client.enrol(server.issue_code(workstation))
                result = SyncWorker(store, client, settings).sync_once()
                assert result.complete, result
        finally:
            store.close()
    return plan


def wilson(k: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval, written out from its formula (independently of the server's code)."""
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)
