#!/usr/bin/env python
"""Benchmark: durable audit entries written per second, our encrypted store against plain SQLite.

OURS      `Store.append(AuditEvent)`: SQLCipher (AES-256, HMAC per page), WAL + synchronous=FULL,
          one BEGIN IMMEDIATE ... COMMIT per entry that reads the chain head, hashes the entry
          (SHA-256 over canonical JSON) and inserts it.
BASELINE  the stdlib `sqlite3` (unencrypted), same schema (the store's own migrations), same
          durability (WAL, synchronous=FULL), one BEGIN ... INSERT ... COMMIT per entry, the same
          row shape (a new UUID, the time, the JSON details, 64-hex prev/hash columns), no chain.

Each repeat writes --entries entries into a fresh file (opening and creating the file are not
timed) in --dir (default: a temp dir on the same disk as the system temp dir, removed at exit).
The store's key comes from a PlaintextKeyring file in that dir, chosen explicitly: the OS
keyring is not what is measured. Figures are entries per second, best and median of --repeats
after --warmup, ours and baseline interleaved. Target: ours / baseline >= 0.5. Every run of ours
is checked: the entry count and `Store.verify()`.

    .venv/bin/python bench/audit_write.py [--entries 400] [--repeats 5] [--dir DIR] [--profile]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import _common as C

from workstation.core.audit import AuditEvent
from workstation.core.roles import Role, User
from workstation.store.database import Identity, Store, now_utc
from workstation.store.schema import MIGRATIONS

IDENTITY = Identity(User("bench", Role.REVIEWER), "ws-bench")
AUDIT_INSERT = ("INSERT INTO audit (seq, entry_id, workstation_id, at_utc, kind, user, role, study_instance_uid, outcome,"
                " outcome_text, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")


def event(i: int) -> AuditEvent:
    """A typical entry: a study opened, with UIDs and counts (no names)."""
    return AuditEvent("study.opened", now_utc(), {"series_instance_uid": f"1.2.826.0.1.3680043.8.498.{i}",
                                                  "instances": 300, "node": "MAIN", "source": "cache"},
                      f"1.2.826.0.1.3680043.8.498.1{i % 7}")


class Bench:
    def __init__(self, folder: Path, entries: int) -> None:
        from keyrings.alt.file import PlaintextKeyring

        self.folder, self.entries, self.run = folder, entries, 0
        self.keyring = PlaintextKeyring()
        self.keyring.file_path = str(folder / "keyring.cfg")

    def _fresh(self, name: str) -> Path:
        self.run += 1
        path = self.folder / f"{name}-{self.run}.sqlite"
        for old in self.folder.glob(f"{name}-*.sqlite*"):
            old.unlink()
        return path

    def ours(self) -> C.Timed:
        path = self._fresh("ours")
        store = Store.open(path, IDENTITY, self.keyring, key_name=f"bench-{self.run}")
        try:
            start = time.perf_counter()
            for i in range(self.entries):
                store.append(event(i))
            elapsed = time.perf_counter() - start
            report = store.verify()
            assert report.ok and report.chain.entries == self.entries, report
        finally:
            store.close()
        return C.Timed(self.entries, elapsed)

    def baseline(self) -> C.Timed:
        path = self._fresh("plain")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nCOMMIT;")
        try:
            start = time.perf_counter()
            for i in range(self.entries):
                e = event(i)
                db.execute("BEGIN IMMEDIATE")
                db.execute(AUDIT_INSERT, (i + 1, str(uuid.uuid4()), IDENTITY.workstation_id, e.at_utc, e.kind,
                                          IDENTITY.user.login, "reviewer", e.study_instance_uid, int(e.outcome),
                                          e.outcome_text, json.dumps(e.details, sort_keys=True), "0" * 64, "f" * 64))
                db.execute("COMMIT")
            elapsed = time.perf_counter() - start
            assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == self.entries
        finally:
            db.close()
        return C.Timed(self.entries, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where the files are written (default: a temp dir)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one run of ours")
    args = parser.parse_args()

    from sqlcipher3 import dbapi2 as sqlcipher

    tmp = None
    if args.dir is None:
        tmp = tempfile.mkdtemp(prefix="ws-bench-audit-")
        folder = Path(tmp)
    else:
        folder = args.dir
        folder.mkdir(parents=True, exist_ok=True)
    try:
        probe = sqlcipher.connect(":memory:")
        cipher = probe.execute("PRAGMA cipher_version").fetchone()
        probe.close()
        print(f"audit_write: python {platform.python_version()}, sqlite3 {sqlite3.sqlite_version}, "
              f"SQLCipher {cipher[0] if cipher else '?'} (SQLite {sqlcipher.sqlite_version})")
        print(f"{args.entries} entries per run into a fresh file in {folder}; best and median of {args.repeats} "
              f"after {args.warmup} warm-up, interleaved")
        bench = Bench(folder, args.entries)
        timings, _ = C.interleaved({"ours": bench.ours, "plain sqlite3": bench.baseline}, args.repeats, args.warmup)
        rows = []
        for name, label in (("ours", "ours: Store.append (SQLCipher, chained)"),
                            ("plain sqlite3", "baseline: stdlib sqlite3 INSERT+COMMIT")):
            t = timings[name]
            rows.append([label, f"{args.entries / t.best:.0f}", f"{args.entries / t.median:.0f}",
                         f"{t.best / args.entries * 1000:.2f} ms", f"{t.median / args.entries * 1000:.2f} ms"])
        print(C.table(["writer (WAL, synchronous=FULL, 1 tx/entry)", "entries/s best", "entries/s median",
                       "per entry best", "per entry median"], rows))
        ratio_best = timings["plain sqlite3"].best / timings["ours"].best
        ratio_median = timings["plain sqlite3"].median / timings["ours"].median
        print(f"ratio ours/baseline (entries per second): best {ratio_best:.2f}, median {ratio_median:.2f} "
              f"(target >= 0.5): {'met' if ratio_best >= 0.5 else 'NOT met'}")
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(bench.ours)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
