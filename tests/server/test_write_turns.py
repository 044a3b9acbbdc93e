"""db.write on SQLite: the threads of one process take turns on a lock of ours before BEGIN IMMEDIATE (SQLite's
own wait sleeps up to 100 ms between tries); many writers at once all commit, each in its turn."""

from __future__ import annotations

import threading

from sqlalchemy import select, update

from workstation.server import db


def test_concurrent_writers_of_one_process_all_commit_without_sqlite_waits(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'server.sqlite'}")
    db.create_schema(engine)
    with db.write(engine) as conn:
        conn.execute(db.workstations.insert().values(id="ws-turns", head_seq=0, head_hash="0" * 64, entries=0))
    errors = []

    def writer() -> None:
        try:
            for _ in range(25):
                with db.write(engine) as conn:
                    conn.execute(update(db.workstations).where(db.workstations.c.id == "ws-turns")
                                 .values(entries=db.workstations.c.entries + 1))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with db.read(engine) as conn:
        assert conn.execute(select(db.workstations.c.entries)).scalar_one() == 200
    assert db._WRITE_TURNS.get(engine) is not None
    engine.dispose()
