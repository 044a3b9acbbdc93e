"""Shared values and helpers of the store tests (and of the subprocess scripts beside them)."""

from __future__ import annotations

import uuid
from pathlib import Path

from workstation.core.audit import AuditEvent
from workstation.core.findings import Finding, ModelRef
from workstation.core.review import Action, BoxGeometry, FeedbackEntry
from workstation.core.roles import User
from workstation.store import keys
from workstation.store.database import now_utc

MODEL = ModelRef("nodule-detector", "1.0.0", "ab" * 32)
STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"
SOPS = tuple(f"1.2.826.0.1.3680043.8.498.3.{i}" for i in range(12))
FINDINGS = [
    Finding("a", "nodule", 0.91, 3, (10.0, 10.0, 20.0, 20.0), ((0.0, 0.0, 0.0), (5.0, 5.0, 2.5)), (2.5, 2.5, 1.25), (2, 4), SOPS[3]),
    Finding("b", "nodule", 0.64, 5, (30.0, 30.0, 40.0, 40.0), ((9.0, 9.0, 4.0), (14.0, 14.0, 6.5)), (11.5, 11.5, 5.25), (5, 5), SOPS[5]),
    Finding("c", "mass", 0.52, 8, (60.0, 60.0, 90.0, 80.0), ((20.0, 20.0, 8.0), (35.0, 30.0, 10.0)), (27.5, 25.0, 9.0), (7, 9), SOPS[8]),
]
EDIT_ACTIONS = (Action.MOVE, Action.RESIZE, Action.DELETE, Action.ADD, Action.RELABEL)
DECISION_ACTIONS = (Action.ACCEPT, Action.REJECT, Action.COMMENT)


def feedback_entry(user: User, action: Action, finding_id: str = "a", *, comment: str = "",
                   claimed_user: str | None = None, claimed_role: str | None = None,
                   workstation_id: str = "ws-test") -> FeedbackEntry:
    """A well-formed entry of `action` as the review service would build it (for `user` unless claimed otherwise)."""
    before = BoxGeometry(3, (10.0, 10.0, 20.0, 20.0), SOPS[3])
    geometry = {
        Action.MOVE: (before, BoxGeometry(3, (12.0, 11.0, 22.0, 21.0), SOPS[3])),
        Action.RESIZE: (before, BoxGeometry(3, (10.0, 10.0, 26.0, 24.0), SOPS[3])),
        Action.DELETE: (before, None),
        Action.ADD: (None, BoxGeometry(6, (40.0, 40.0, 52.0, 50.0), SOPS[6])),
    }.get(action, (None, None))
    if action is Action.ADD:
        finding_id = str(uuid.uuid4())
    return FeedbackEntry(
        entry_id=str(uuid.uuid4()), action=action, finding_id=finding_id, study_instance_uid=STUDY,
        series_instance_uid=SERIES, sop_instance_uid=(geometry[1] or geometry[0] or before).sop_instance_uid,
        model_name=MODEL.name, model_version=MODEL.version,
        user=user.login if claimed_user is None else claimed_user,
        role=(user.role.value if user.role else "") if claimed_role is None else claimed_role,
        workstation_id=workstation_id, at_utc=now_utc(), before=geometry[0], after=geometry[1],
        label="mass" if action in (Action.ADD, Action.RELABEL) else "",
        comment=comment or ("looks benign" if action is Action.COMMENT else ""),
    )


def study_event(i: int, **details) -> AuditEvent:
    return AuditEvent("study.opened", now_utc(), {"series_instance_uid": SERIES, "instances": i, **details}, STUDY)


def raw_key(backend) -> str:
    """The store key (64 hex) as the keyring holds it."""
    value = backend.get_password(keys.SERVICE, keys.STORE_KEY)
    assert value is not None and len(value) == 64
    return value


def raw_connect(path: Path, key_hex: str, drop_triggers: bool = False):
    """The store file opened with SQLCipher directly, as someone who has the key could (autocommit)."""
    from sqlcipher3 import dbapi2 as sqlcipher

    db = sqlcipher.connect(str(path), isolation_level=None)
    db.execute(f"PRAGMA key = \"x'{key_hex}'\"")
    if drop_triggers:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f"DROP TRIGGER {name}")
    return db


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file directly in `folder`, by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# a closed store's folder: the encrypted file and its high-water mark
STORE_FILES = {"store.sqlite", "store.sqlite.hwm"}
