"""Subprocess of the Secret Service test, run inside `dbus-run-session` with gnome-keyring unlocked.

    python secret_service_check.py DATA_DIR

Opens a store with the default backend (none passed, PYTHON_KEYRING_BACKEND unset), writes, closes,
reopens, checks, and prints one JSON line: the backend keys.usable_backend() picked, entry counts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from store_helpers import feedback_entry, study_event

from workstation.core.review import Action
from workstation.core.roles import Role, User
from workstation.store import keys
from workstation.store.database import Identity, Store


def main() -> None:
    assert "PYTHON_KEYRING_BACKEND" not in os.environ
    db = Path(sys.argv[1]) / "store.sqlite"
    chosen = keys.usable_backend()
    identity = Identity(User("rita", Role.REVIEWER), "ws-ss")
    with Store.open(db, identity) as store:
        for i in range(5):
            store.append(study_event(i))
        store.record_feedback(feedback_entry(identity.user, Action.ACCEPT, workstation_id="ws-ss"))
    with Store.open(db, identity) as store:
        report = store.verify()
        result = {"backend": f"{type(chosen).__module__}.{type(chosen).__name__}", "entries": store.count(),
                  "feedback": store.count("feedback"), "ok": report.ok}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
