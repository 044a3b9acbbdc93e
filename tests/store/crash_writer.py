"""Subprocess of the crash and concurrency tests: writes to a store in a loop and reports each write.

    python crash_writer.py DB KEYRING_FILE LOGIN [COUNT PAUSE_MS]

Alternates plain audit entries and feedback entries (a reviewer's comments). After each write has
returned (committed), prints "A <audit entry id>" or "F <feedback entry id> <audit entry id>" and
flushes. Without COUNT it writes until it is killed. With COUNT it reads a line from stdin after
opening (so that several writers start together) and pauses PAUSE_MS between writes (outside any
transaction, so that concurrent writers take turns).
"""

from __future__ import annotations

import itertools
import sys
import time

from keyrings.alt.file import PlaintextKeyring
from store_helpers import feedback_entry, study_event

from workstation.core.review import Action
from workstation.core.roles import Role, User
from workstation.store.database import Identity, Store


def main() -> None:
    db, keyring_file, login = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else None
    pause = float(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0.0
    backend = PlaintextKeyring()
    backend.file_path = keyring_file
    user = User(login, Role.REVIEWER)
    store = Store.open(db, Identity(user, f"ws-{login}"), backend)
    print("open", flush=True)
    if count is not None:
        sys.stdin.readline()
    for i in itertools.count() if count is None else range(count):
        if i % 3 == 2:
            entry = feedback_entry(user, Action.COMMENT, comment=f"{login} note {i}", workstation_id=f"ws-{login}")
            audit = store.record_feedback(entry)
            print(f"F {entry.entry_id} {audit.entry_id}", flush=True)
        else:
            audit = store.append(study_event(i, writer=login))
            print(f"A {audit.entry_id}", flush=True)
        if pause:
            time.sleep(pause)
    store.close()


if __name__ == "__main__":
    main()
