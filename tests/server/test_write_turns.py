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


def _process_writer(url: str, count: int) -> None:
    engine = db.make_engine(url)
    for _ in range(count):
        with db.write(engine) as conn:
            conn.execute(update(db.workstations).where(db.workstations.c.id == "ws-turns")
                         .values(entries=db.workstations.c.entries + 1))
    engine.dispose()


def test_writer_processes_take_turns_on_a_private_file_beside_the_database(tmp_path):
    """`serve --workers N`: each process's writers also take an flock on <database>.write-turn (mode 0600)."""
    import multiprocessing

    path = tmp_path / "server.sqlite"
    engine = db.make_engine(f"sqlite:///{path}")
    db.create_schema(engine)
    with db.write(engine) as conn:
        conn.execute(db.workstations.insert().values(id="ws-turns", head_seq=0, head_hash="0" * 64, entries=0))
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_process_writer, args=(f"sqlite:///{path}", 15)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    with db.read(engine) as conn:
        assert conn.execute(select(db.workstations.c.entries)).scalar_one() == 45
    turn = path.with_name(path.name + ".write-turn")
    assert turn.exists() and turn.stat().st_mode & 0o777 == 0o600
    engine.dispose()
