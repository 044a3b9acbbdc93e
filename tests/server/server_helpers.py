"""Realistic sync items from a real encrypted Store, and small HTTP helpers for the server tests."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import numpy as np
from keyrings.alt.file import PlaintextKeyring

from workstation.core.audit import AuditEvent
from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.core.review import Action, BoxGeometry, FeedbackEntry
from workstation.core.roles import Role, User
from workstation.core.sync import API_PREFIX, SyncItem
from workstation.store.database import Identity, Store, now_utc

MODEL = ModelRef("nodule-detector", "1.0.0", "ab" * 32)
OTHER_MODEL = ModelRef("nodule-detector", "2.0.0", "cd" * 32)
STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"
SOP = "1.2.826.0.1.3680043.8.498.3.3"
FINDING = Finding("a", "nodule", 0.91, 3, (10.0, 10.0, 20.0, 20.0), ((0.0, 0.0, 0.0), (5.0, 5.0, 2.5)),
                  (2.5, 2.5, 1.25), (2, 4), SOP)


def open_store(folder: Path, workstation_id: str, login: str = "rita", role: Role = Role.REVIEWER) -> Store:
    """A real encrypted store for `workstation_id` in `folder`, its key in a file keyring beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    backend = PlaintextKeyring()
    backend.file_path = str(folder / "keyring" / "keyring_pass.cfg")
    return Store.open(folder / "store.sqlite", Identity(User(login, role), workstation_id), backend)


def feedback(store: Store, action: Action, model: ModelRef = MODEL, comment: str = "") -> FeedbackEntry:
    user = store.identity.user
    before = BoxGeometry(3, (10.0, 10.0, 20.0, 20.0), SOP)
    after = BoxGeometry(3, (12.0, 11.0, 22.0, 21.0), SOP) if action is Action.MOVE else None
    return FeedbackEntry(
        entry_id=str(uuid.uuid4()), action=action, finding_id="a", study_instance_uid=STUDY,
        series_instance_uid=SERIES, sop_instance_uid=SOP, model_name=model.name, model_version=model.version,
        user=user.login, role=user.role.value, workstation_id=store.identity.workstation_id, at_utc=now_utc(),
        before=before if action is Action.MOVE else None, after=after, label="", comment=comment)


def inference(store: Store, model: ModelRef = MODEL) -> str:
    result = InferenceResult(model, "cpu", STUDY, SERIES, [FINDING], np.zeros((1, 1, 1), np.uint8), 0.4, now_utc())
    event = AuditEvent("inference.run", result.started_utc, {"study_instance_uid": STUDY, "series_instance_uid": SERIES,
                                                             "model": model.name, "version": model.version,
                                                             "findings": 1})
    return store.record_inference(result, event)


def fill(store: Store, n: int) -> list[SyncItem]:
    """Write `n` more entries (study opened, inference runs, accept/reject/move feedback), as the app would."""
    for i in range(n):
        step = i % 5
        if step == 0:
            store.append(AuditEvent("study.opened", now_utc(), {"series_instance_uid": SERIES, "instances": i}, STUDY))
        elif step == 1:
            inference(store, MODEL if i % 2 else OTHER_MODEL)
        elif step == 2:
            store.record_feedback(feedback(store, Action.ACCEPT))
        elif step == 3:
            store.record_feedback(feedback(store, Action.REJECT, comment="calcified granuloma"))
        else:
            store.record_feedback(feedback(store, Action.MOVE))
    return store.outbox(limit=10_000)


def wire(items: list[SyncItem]) -> list[dict]:
    return [item.to_wire() for item in items]


def push(http: httpx.Client, workstation_id: str, items: list[SyncItem] | list[dict]) -> httpx.Response:
    body = [i.to_wire() if isinstance(i, SyncItem) else i for i in items]
    return http.post(f"{API_PREFIX}/entries", json={"workstation_id": workstation_id, "items": body})


def stored_ids(server, workstation_id: str) -> list[str]:
    return [item["entry_id"] for item in server.entries(workstation_id)]
