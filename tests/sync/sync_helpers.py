"""Shared pieces of the sync tests: a site file, a real encrypted store with realistic entries, the check
that the central server holds exactly this workstation's entries."""

from __future__ import annotations

import uuid
from pathlib import Path

from workstation.core.audit import AuditEvent
from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.core.review import Action, BoxGeometry, FeedbackEntry
from workstation.core.roles import Role, User
from workstation.core.site import ServerSettings, SiteConfig, StoreSettings, UserSettings
from workstation.services.session import WorkSession
from workstation.store.database import Identity, Store, now_utc

WS = "ws-sync-01"
LOGIN = "rita"
MODEL = ModelRef("nodule-detector", "1.0.0", "ab" * 32)
STUDY = "1.2.826.0.1.3680043.8.498.10"
SERIES = "1.2.826.0.1.3680043.8.498.11"
SOPS = tuple(f"1.2.826.0.1.3680043.8.498.12.{i}" for i in range(12))
FINDINGS = [
    Finding("a", "nodule", 0.91, 3, (10.0, 10.0, 20.0, 20.0), ((0.0, 0.0, 0.0), (5.0, 5.0, 2.5)), (2.5, 2.5, 1.25), (2, 4), SOPS[3]),
    Finding("b", "mass", 0.62, 8, (60.0, 60.0, 90.0, 80.0), ((20.0, 20.0, 8.0), (35.0, 30.0, 10.0)), (27.5, 25.0, 9.0), (7, 9), SOPS[8]),
]


def site_config(store_path: Path, url: str | None, workstation: str = WS, **server) -> SiteConfig:
    return SiteConfig(store=StoreSettings(str(store_path)), users=UserSettings(roles={LOGIN: "reviewer"}),
                      workstation_id=workstation, server=ServerSettings(url=url, **server))


def site_toml(path: Path, store_path: Path, url: str | None, workstation: str = WS, **server) -> Path:
    lines = [f'[workstation]\nid = "{workstation}"\n', f'[store]\npath = "{store_path}"\n',
             f'[users]\nlogin_variable = "WS_SYNC_LOGIN"\nroles = {{ {LOGIN} = "reviewer" }}\n']
    if url is not None:
        lines.append("[server]\n" + f'url = "{url}"\n' + "".join(f"{k} = {_toml(v)}\n" for k, v in server.items()))
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def open_store(path: Path, backend, workstation: str = WS) -> Store:
    return Store.open(path, Identity(User(LOGIN, Role.REVIEWER), workstation), backend)


def feedback(store: Store, action: Action, finding_id: str = "a", comment: str = "") -> FeedbackEntry:
    user = store.identity.user
    before = BoxGeometry(3, (10.0, 10.0, 20.0, 20.0), SOPS[3])
    after = BoxGeometry(3, (12.0, 11.0, 22.0, 21.0), SOPS[3]) if action is Action.MOVE else None
    return FeedbackEntry(
        entry_id=str(uuid.uuid4()), action=action, finding_id=finding_id, study_instance_uid=STUDY,
        series_instance_uid=SERIES, sop_instance_uid=SOPS[3], model_name=MODEL.name, model_version=MODEL.version,
        user=user.login, role=user.role.value, workstation_id=store.identity.workstation_id, at_utc=now_utc(),
        before=before if action is Action.MOVE else None, after=after, comment=comment)


def inference_result() -> InferenceResult:
    import numpy as np

    return InferenceResult(MODEL, "cpu", STUDY, SERIES, FINDINGS, np.zeros((1, 1, 1), np.uint8), 1.5, now_utc())


def populate(store: Store, count: int, config: SiteConfig | None = None) -> None:
    """About `count` entries as a reading session writes them: session start, studies opened, a model run,
    review actions (accept, move, comment, reject) bound to their feedback records."""
    session = WorkSession(config or SiteConfig(workstation_id=store.identity.workstation_id), store)
    session.start()
    i = 0
    while store.count() < count:
        i += 1
        step = i % 6
        if step == 1:
            store.append(AuditEvent("study.opened", now_utc(), {"series_instance_uid": SERIES, "modality": "CT",
                                                                "instances": 120 + i}, STUDY))
        elif step == 2:
            result = inference_result()
            store.record_inference(result, AuditEvent("inference.run", result.started_utc, {
                "series_instance_uid": SERIES, "model": MODEL.name, "version": MODEL.version, "findings": 2}))
        else:
            action = (Action.ACCEPT, Action.MOVE, Action.COMMENT, Action.REJECT)[step - 3]
            store.record_feedback(feedback(store, action, "ab"[i % 2], comment=f"note {i}" if action is Action.COMMENT else ""))


def assert_server_holds_exactly(server, store: Store, workstation: str = WS) -> None:
    """The server holds exactly this workstation's entries (same ids, seqs, hashes and records), none lost,
    none duplicated, and the local outbox is empty."""
    held = server.entries(workstation)
    local = store.audit_entries()
    assert len(held) == len(local), f"server holds {len(held)} entries, the store {len(local)}"
    assert len({h["entry_id"] for h in held}) == len(held), "duplicates on the server"
    assert [(h["seq"], h["entry_id"], h["hash"]) for h in held] == [(e.seq, e.entry_id, e.hash) for e in local]
    assert all(h["workstation_id"] == workstation for h in held)
    records = {h["entry_id"]: h.get("record") for h in held}
    for item in _all_items(store):
        expected = None if item.record is None else {"kind": item.record.kind, "id": item.record.id,
                                                     "payload": item.record.payload}
        assert records[item.entry.entry_id] == expected, f"record of entry {item.entry.seq}"
    assert store.pending_count() == 0 and store.outbox() == []
    status = server.status(workstation)
    assert status["entries"] == len(local)
    assert (status["head"]["seq"], status["head"]["hash"]) == (local[-1].seq, local[-1].hash)


def _all_items(store: Store):
    """Every entry as a sync item (the outbox of a copy where nothing is synced), from the wire form the
    server received: built from the audit entries and the record tables."""
    from workstation.core.sync import Record, SyncItem

    items = []
    for entry in store.audit_entries():
        record = None
        if "feedback_entry_id" in entry.details:
            rows = store._query("SELECT entry_id, payload FROM feedback WHERE audit_seq = ?", (entry.seq,))
            record = Record("feedback", rows[0][0], _load(rows[0][1]))
        elif "run_id" in entry.details:
            rows = store._query("SELECT run_id, payload FROM inference_runs WHERE audit_seq = ?", (entry.seq,))
            record = Record("inference", rows[0][0], _load(rows[0][1]))
        items.append(SyncItem(entry, record))
    return items


def _load(text: str):
    import json

    return json.loads(text)
