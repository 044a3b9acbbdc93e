"""The inference queue of routed series and the local studies the worklist lists, in the encrypted store.

Jobs change state (queued -> running -> done / failed / not-applicable / cancelled); the audit trail keeps what
happened (each run's `inference.run` entry names its job). A job is claimed in one transaction, so two workers
never take the same one, and the worker that claimed it is written down (host:pid), so a restart puts back only
the jobs of a worker that is gone. Local studies carry patient name and id for the worklist: they stay in this
encrypted file, never in the audit trail or the log.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass

from workstation.store.database import Store, now_utc
from workstation.store.triage_schema import SCHEMA  # noqa: F401 - the migration (store.schema appends it)

QUEUED, RUNNING, DONE, FAILED, NOT_APPLICABLE, CANCELLED = "queued", "running", "done", "failed", "not-applicable", "cancelled"
FINAL_STATES = (DONE, FAILED, NOT_APPLICABLE, CANCELLED)



@dataclass(frozen=True)
class Job:
    seq: int
    job_id: str
    study_instance_uid: str
    series_instance_uid: str
    model: str  # NAME or NAME:VERSION, as the rule says
    rule: str
    priority: int
    state: str
    progress: float  # 0..1 while running
    reason: str
    calling_ae: str
    instances: int
    folder: str
    created_utc: str
    updated_utc: str
    started_utc: str
    finished_utc: str
    attempts: int
    worker: str
    cancel_requested: int
    run_id: str

    @property
    def state_text(self) -> str:
        """queued / running k% / done / failed: reason / not applicable: reason / cancelled."""
        if self.state == RUNNING:
            return f"running {int(self.progress * 100)}%"
        if self.state in (FAILED, NOT_APPLICABLE) or (self.state == CANCELLED and self.reason):
            return f"{self.state.replace('-', ' ')}: {self.reason}"
        return self.state


@dataclass(frozen=True)
class LocalStudy:
    study_instance_uid: str
    patient_name: str
    patient_id: str
    study_date: str
    study_time: str
    description: str
    modalities: str  # "CT\\MR"
    source: str  # received from <AE> / retrieved / opened
    folder: str
    series: dict  # series UID -> {"modality", "description", "instances"}
    arrived_utc: str
    updated_utc: str


_JOB_COLUMNS = ("seq, job_id, study_instance_uid, series_instance_uid, model, rule, priority, state, progress, reason, "
                "calling_ae, instances, folder, created_utc, updated_utc, started_utc, finished_utc, attempts, worker, "
                "cancel_requested, run_id")
_STUDY_COLUMNS = ("study_instance_uid, patient_name, patient_id, study_date, study_time, description, modalities, "
                  "source, folder, series, arrived_utc, updated_utc")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TriageQueue:
    """Queue and local-study operations on an open Store (one store, several modules, like ResultQueue)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ----- jobs
    def add(self, study_uid: str, series_uid: str, model: str, rule: str, priority: int, *, calling_ae: str = "",
            instances: int = 0, folder: str = "", state: str = QUEUED, reason: str = "") -> Job:
        """A new job (state queued, or a final state such as not-applicable with its reason). A queued job of the
        same series and model that has not started yet is updated instead (the series grew before it ran)."""
        now = now_utc()
        with self.store._transaction() as db:  # noqa: SLF001
            if state == QUEUED:
                row = db.execute("SELECT job_id FROM triage_jobs WHERE series_instance_uid = ? AND model = ? AND state = ?",
                                 (series_uid, model, QUEUED)).fetchone()
                if row is not None:
                    db.execute("UPDATE triage_jobs SET instances = ?, updated_utc = ?, priority = max(priority, ?) "
                               "WHERE job_id = ?", (instances, now, priority, row[0]))
                    return self._job(db, row[0])
            job_id = str(uuid.uuid4())
            db.execute("INSERT INTO triage_jobs (job_id, study_instance_uid, series_instance_uid, model, rule, priority, "
                       "state, reason, calling_ae, instances, folder, created_utc, updated_utc, finished_utc) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (job_id, study_uid, series_uid, model, rule, priority, state, reason, calling_ae, instances,
                        folder, now, now, "" if state == QUEUED else now))
            return self._job(db, job_id)

    def jobs(self, states: tuple[str, ...] = (), study_uid: str = "", series_uid: str = "") -> list[Job]:
        where, values = [], []
        if series_uid:
            where.append("series_instance_uid = ?")
            values.append(series_uid)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            values += list(states)
        if study_uid:
            where.append("study_instance_uid = ?")
            values.append(study_uid)
        sql = f"SELECT {_JOB_COLUMNS} FROM triage_jobs" + (" WHERE " + " AND ".join(where) if where else "")
        return [Job(*row) for row in self.store._query(sql + " ORDER BY seq", tuple(values))]

    def job(self, job_id: str) -> Job | None:
        rows = self.store._query(f"SELECT {_JOB_COLUMNS} FROM triage_jobs WHERE job_id = ?", (job_id,))
        return Job(*rows[0]) if rows else None

    def claim(self, worker: str | None = None) -> Job | None:
        """The next queued job (highest priority, then oldest), now running for this worker; None when none waits."""
        worker = worker or worker_name()
        with self.store._transaction() as db:
            row = db.execute("SELECT job_id FROM triage_jobs WHERE state = ? ORDER BY priority DESC, seq LIMIT 1",
                             (QUEUED,)).fetchone()
            if row is None:
                return None
            now = now_utc()
            db.execute("UPDATE triage_jobs SET state = ?, progress = 0, attempts = attempts + 1, worker = ?, "
                       "started_utc = ?, updated_utc = ? WHERE job_id = ?", (RUNNING, worker, now, now, row[0]))
            return self._job(db, row[0])

    def progress(self, job_id: str, fraction: float) -> bool:
        """Note a running job's progress; True when a cancel was asked for meanwhile."""
        with self.store._transaction() as db:
            db.execute("UPDATE triage_jobs SET progress = ?, updated_utc = ? WHERE job_id = ? AND state = ?",
                       (max(0.0, min(1.0, fraction)), now_utc(), job_id, RUNNING))
            row = db.execute("SELECT cancel_requested FROM triage_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def finish(self, job_id: str, state: str, reason: str = "", run_id: str = "") -> None:
        if state not in FINAL_STATES:
            raise ValueError(f"not a final state: {state}")
        now = now_utc()
        with self.store._transaction() as db:
            db.execute("UPDATE triage_jobs SET state = ?, reason = ?, run_id = ?, progress = ?, finished_utc = ?, "
                       "updated_utc = ? WHERE job_id = ?",
                       (state, reason[:500], run_id, 1.0 if state == DONE else 0.0, now, now, job_id))

    def cancel(self, job_id: str) -> Job | None:
        """A queued job is cancelled at once; a running one is asked to stop (its worker sees it within a step)."""
        with self.store._transaction() as db:
            job = self._job(db, job_id)
            if job is None or job.state in FINAL_STATES:
                return job
            if job.state == QUEUED:
                now = now_utc()
                db.execute("UPDATE triage_jobs SET state = ?, reason = ?, finished_utc = ?, updated_utc = ? WHERE job_id = ?",
                           (CANCELLED, "before it ran", now, now, job_id))
            else:
                db.execute("UPDATE triage_jobs SET cancel_requested = 1, updated_utc = ? WHERE job_id = ?",
                           (now_utc(), job_id))
            return self._job(db, job_id)

    def recover(self, alive=None) -> list[tuple[Job, str]]:
        """After a crash: each running job whose worker is gone is finished from its recorded run (the run's audit
        entry names the job: it ran, only the mark was lost) or put back in the queue. Returns (job, what was done)."""
        alive = alive or _worker_alive
        recovered = []
        for job in self.jobs((RUNNING,)):
            if alive(job.worker):
                continue
            run_id = self.recorded_run(job.job_id)
            with self.store._transaction() as db:
                current = self._job(db, job.job_id)
                if current is None or current.state != RUNNING or current.worker != job.worker:
                    continue  # another process recovered it meanwhile
                now = now_utc()
                if run_id:
                    db.execute("UPDATE triage_jobs SET state = ?, run_id = ?, progress = 1, finished_utc = ?, "
                               "updated_utc = ? WHERE job_id = ?", (DONE, run_id, now, now, job.job_id))
                    recovered.append((job, "done (its run was recorded before the interruption)"))
                elif current.cancel_requested:
                    db.execute("UPDATE triage_jobs SET state = ?, reason = ?, finished_utc = ?, updated_utc = ? "
                               "WHERE job_id = ?", (CANCELLED, "while it ran (its worker stopped)", now, now, job.job_id))
                    recovered.append((job, "cancelled"))
                else:
                    db.execute("UPDATE triage_jobs SET state = ?, progress = 0, worker = '', reason = ?, updated_utc = ? "
                               "WHERE job_id = ?", (QUEUED, "interrupted; queued again", now, job.job_id))
                    recovered.append((job, "queued again"))
        return recovered

    def recorded_run(self, job_id: str) -> str:
        """The run id of the `inference.run` audit entry that names this job, or ''."""
        pattern = f'%"triage_job_id":{json.dumps(job_id)}%'
        for (details,) in self.store._query("SELECT details FROM audit WHERE kind = 'inference.run' AND details LIKE ? "
                                            "ORDER BY seq DESC", (pattern,)):
            data = json.loads(details)
            if data.get("triage_job_id") == job_id:
                return str(data.get("run_id", ""))
        return ""

    @staticmethod
    def _job(db, job_id: str) -> Job | None:
        row = db.execute(f"SELECT {_JOB_COLUMNS} FROM triage_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return Job(*row) if row else None

    # ----- local studies (the worklist's rows)
    def note_study(self, study_uid: str, *, patient_name: str = "", patient_id: str = "", study_date: str = "",
                   study_time: str = "", description: str = "", source: str = "", folder: str = "",
                   series_uid: str = "", modality: str = "", series_description: str = "", instances: int = 0) -> None:
        """Add or update a local study; the first arrival time and source are kept, series are merged in."""
        now = now_utc()
        with self.store._transaction() as db:
            row = db.execute("SELECT series, modalities FROM local_studies WHERE study_instance_uid = ?", (study_uid,)).fetchone()
            series = json.loads(row[0]) if row else {}
            if series_uid:
                entry = series.setdefault(series_uid, {"modality": modality, "description": series_description, "instances": 0})
                entry["instances"] = max(entry.get("instances", 0), instances)
            modalities = "\\".join(dict.fromkeys(s["modality"] for s in series.values() if s.get("modality")))
            if row is None:
                db.execute(f"INSERT INTO local_studies ({_STUDY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           (study_uid, patient_name, patient_id, study_date, study_time, description, modalities, source,
                            folder, json.dumps(series), now, now))
            else:
                db.execute("UPDATE local_studies SET series = ?, modalities = ?, updated_utc = ?, "
                           "folder = CASE WHEN folder = '' THEN ? ELSE folder END WHERE study_instance_uid = ?",
                           (json.dumps(series), modalities, now, folder, study_uid))

    def name_sender(self, study_uid: str, source: str) -> None:
        """A study first noted as retrieved turns out to have been pushed by a named sender."""
        with self.store._transaction() as db:
            db.execute("UPDATE local_studies SET source = ?, updated_utc = ? WHERE study_instance_uid = ? AND source = ?",
                       (source, now_utc(), study_uid, "retrieved"))

    def studies(self) -> list[LocalStudy]:
        rows = self.store._query(f"SELECT {_STUDY_COLUMNS} FROM local_studies ORDER BY arrived_utc")
        return [LocalStudy(*row[:9], json.loads(row[9]), *row[10:]) for row in rows]


def _worker_alive(worker: str) -> bool:
    """Is the process that claimed a job still running (on this host)? Another host's worker is presumed alive."""
    host, _, pid = worker.rpartition(":")
    if not worker or host != socket.gethostname() or not pid.isdigit():
        return not worker or host != socket.gethostname()
    if int(pid) == os.getpid():
        return False  # this process starts afresh: whatever it claimed before was lost with its threads
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
