"""Recovery of a workstation's chain after the server's database was restored from a backup, and the one
workstation id <-> one machine rule at enrolment.

**Restored server.** The server's accepted head for a workstation (seq, hash) is then older than what the
workstation had acknowledged, so its next push is a *gap*. The 409 body carries the head
(`head_detail`), and `GET /workstations/{id}/head` tells it at any time. The workstation compares it with its
own entry at that seq: the same hash means the server holds a prefix of its chain, and it announces the
recovery (`POST /workstations/{id}/recovery {"head", "acknowledged_seq"}`), resets its own synced marks after
the head and sends those entries again. The server records an incident when the recovery starts and, once
its head reaches the acknowledged seq again, "rolled back, recovered N entries" (`after_push`). A different
hash is never recovered automatically: the workstation stops and tells IT.

**One id, one machine.** Enrolling an id that already has entries needs a code issued with `--replace`
(`issue-code ID --replace`, kept in `replace_codes`); the enrolment is then an incident (`replaced`), and
the previous token is kept in `retired_tokens` so that the replaced machine hears "replaced" (401 with
`reason`), not a bare "unknown token".

The tables are declared on the server's metadata and created with the others (`create_all` adds missing
tables to an existing database; no data migration is needed).
"""

# no `from __future__ import annotations`: the routes' dependencies are imported inside _routes() and must
# be real objects when FastAPI reads the signatures
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, Column, Connection, Integer, String, Table, insert, select, update

from . import auth, db
from .errors import fail
from .ingest import Problem, record_incident
from .models import WORKSTATION_ID, Error, Head

log = logging.getLogger(__name__)

recoveries = Table(
    "recoveries", db.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workstation_id", String(128), nullable=False, index=True),
    Column("started_utc", String(40), nullable=False),
    Column("from_seq", BigInteger, nullable=False),  # the server's head when the workstation announced it
    Column("through_seq", BigInteger, nullable=False),  # what the workstation had acknowledged before
    Column("completed_utc", String(40)),
)

replace_codes = Table(  # enrolment codes IT issued with --replace (the code itself: enrolment_codes)
    "replace_codes", db.metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("workstation_id", String(128), nullable=False),
    Column("issued_utc", String(40), nullable=False),
)

retired_tokens = Table(  # tokens that stopped working because their workstation id was enrolled elsewhere
    "retired_tokens", db.metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("workstation_id", String(128), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("at_utc", String(40), nullable=False),
)


# ----- the chain head
def head_detail(conn: Connection, workstation_id: str) -> dict | None:
    """{"seq", "hash"} of the workstation's accepted head (for a 409 body), None when unknown."""
    w = db.workstations
    row = conn.execute(select(w.c.head_seq, w.c.head_hash).where(w.c.id == workstation_id)).first()
    return None if row is None else {"seq": row.head_seq, "hash": row.head_hash}


def after_push(conn: Connection, workstation_id: str, head_seq: int) -> None:
    """In the push's transaction: a recovery whose entries are all back is complete (an incident says so)."""
    r = recoveries
    rows = conn.execute(select(r.c.id, r.c.from_seq, r.c.through_seq).where(
        r.c.workstation_id == workstation_id, r.c.completed_utc.is_(None), r.c.through_seq <= head_seq)).all()
    for row in rows:
        conn.execute(update(r).where(r.c.id == row.id).values(completed_utc=db.now_utc()))
        count = row.through_seq - row.from_seq
        record_incident(conn, workstation_id, Problem(
            "rolled-back", row.from_seq, None,
            f"rolled back, recovered {count} entr{'y' if count == 1 else 'ies'}: the server's chain had gone back to"
            f" entry {row.from_seq} (database restored from a backup?); the workstation sent entries"
            f" {row.from_seq + 1}-{row.through_seq} again and they are held once more"))
        log.warning("workstation %s: recovered %d entries after a rollback to %d", workstation_id, count, row.from_seq)


# ----- enrolment: one id, one machine
def replace_code(conn: Connection, code: str, workstation_id: str) -> None:
    """Mark an issued code as allowed to take over an id that already has entries (issue-code --replace)."""
    conn.execute(insert(replace_codes).values(code_hash=auth.secret_hash(auth.normalise_code(code)),
                                              workstation_id=workstation_id, issued_utc=db.now_utc()))


def before_enrol(conn: Connection, workstation_id: str) -> tuple[int, int, str | None] | None:
    """What the id holds before `auth.enrol` replaces its token: (entries, head seq, token hash), None if unknown."""
    w = db.workstations
    row = conn.execute(select(w.c.entries, w.c.head_seq, w.c.token_hash).where(w.c.id == workstation_id)).first()
    return None if row is None else (row.entries, row.head_seq, row.token_hash)


def after_enrol(conn: Connection, code: str, workstation_id: str, before: tuple[int, int, str | None] | None) -> None:
    """After `auth.enrol` accepted the code, in the same transaction: an id that already has entries and a live
    token (another machine's, or this one's lost from its keyring) may be taken over only with a code issued with
    --replace (else EnrolmentError, and the caller's rollback keeps the old
    token and the code unused); a replacement is recorded."""
    if before is None or (before[0] == 0 and before[1] == 0) or before[2] is None:
        return  # a new id, one without entries, or one IT revoked (no machine holds a live token): nothing taken over
    entries, _head, previous = before
    hashed = auth.secret_hash(auth.normalise_code(code))
    allowed = conn.execute(select(replace_codes.c.code_hash).where(
        replace_codes.c.code_hash == hashed, replace_codes.c.workstation_id == workstation_id)).first()
    if allowed is None:
        raise auth.EnrolmentError(
            f"workstation {workstation_id} already has {entries} entries on this server from another enrolment: a"
            f" second machine must not use its id. IT gives this machine its own id ([workstation] id), or, to move"
            f" {workstation_id} here on purpose, issues a code with --replace (workstation-server issue-code"
            f" {workstation_id} --replace)")
    record_replacement(conn, workstation_id, previous)


def record_replacement(conn: Connection, workstation_id: str, previous_token_hash: str | None) -> None:
    """After a --replace enrolment: the old token is remembered as replaced, and an incident says so."""
    now = db.now_utc()
    if previous_token_hash is not None:
        exists = conn.execute(select(retired_tokens.c.token_hash)
                              .where(retired_tokens.c.token_hash == previous_token_hash)).first()
        if exists is None:
            conn.execute(insert(retired_tokens).values(token_hash=previous_token_hash, workstation_id=workstation_id,
                                                       reason="replaced", at_utc=now))
    head = head_detail(conn, workstation_id) or {"seq": 0}
    record_incident(conn, workstation_id, Problem(
        "replaced", head["seq"], None,
        f"enrolled again with a --replace code at {now}: the id now belongs to the machine that used it; the"
        f" previous machine's token stopped working (its pushes answer 'replaced'); chain head at entry {head['seq']}"))
    log.warning("workstation %s enrolled again with a --replace code", workstation_id)


def retired(conn: Connection, token: str) -> dict | None:
    """Why an unknown token stopped working, when it was replaced: {"reason", "workstation_id", "at_utc"}."""
    t = retired_tokens
    row = conn.execute(select(t.c.workstation_id, t.c.reason, t.c.at_utc)
                       .where(t.c.token_hash == auth.secret_hash(token))).first()
    return None if row is None else {"reason": row.reason, "workstation_id": row.workstation_id, "at_utc": row.at_utc}


def retired_message(info: dict) -> str:
    return (f"this token of workstation {info['workstation_id']} was replaced at {info['at_utc']}: IT enrolled the"
            f" id {info['workstation_id']} on another machine (--replace)")


# ----- the routes
class HeadResponse(BaseModel):
    workstation_id: str
    seq: int = Field(description="the last entry the server holds in this workstation's chain (0: none)")
    hash: str
    entries: int


class RecoveryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    head: Head = Field(description="the server's head as the workstation was told it (must still be the head)")
    acknowledged_seq: int = Field(ge=1, le=2**62, description="the last entry the server had acknowledged before")


class RecoveryResponse(BaseModel):
    workstation_id: str
    from_seq: int
    through_seq: int
    entries: int = Field(description="entries the workstation sends again")


router = APIRouter()
IdPath = Annotated[str, Path(pattern=WORKSTATION_ID)]
_ERRORS = {code: {"model": Error} for code in (401, 403, 404, 409)}


def _routes() -> None:
    from .api import CallerDep, EngineDep  # the api module includes this router at its end

    @router.get("/workstations/{workstation_id}/head", response_model=HeadResponse, responses=_ERRORS)
    def chain_head(workstation_id: IdPath, who: CallerDep, engine: EngineDep) -> HeadResponse:
        """The workstation's accepted chain head: its own token, qa or admin."""
        if not who.is_staff and who.name != workstation_id:
            raise fail(403, "forbidden", "a workstation may read its own head only")
        w = db.workstations
        with db.read(engine) as conn:
            row = conn.execute(select(w.c.head_seq, w.c.head_hash, w.c.entries).where(w.c.id == workstation_id)).first()
        if row is None:
            raise fail(404, "not-found", f"unknown workstation {workstation_id}")
        return HeadResponse(workstation_id=workstation_id, seq=row.head_seq, hash=row.head_hash, entries=row.entries)

    @router.post("/workstations/{workstation_id}/recovery", response_model=RecoveryResponse, responses=_ERRORS)
    def announce(workstation_id: IdPath, body: RecoveryRequest, who: CallerDep, engine: EngineDep) -> RecoveryResponse:
        """The workstation found the server behind what it had acknowledged (a restored database) and sends the
        missing entries again; recorded as an incident now and again when they are all back."""
        if who.role != "workstation" or who.name != workstation_id:
            raise fail(403, "forbidden", "only the workstation itself announces its recovery")
        r = recoveries
        with db.write(engine) as conn:
            head = head_detail(conn, workstation_id)
            if head is None or (head["seq"], head["hash"]) != (body.head.seq, body.head.hash):
                raise fail(409, "chain", "the head given is not the server's head for this workstation (any more)",
                           kind="stale-head", head=head)
            if body.acknowledged_seq <= head["seq"]:
                raise fail(409, "chain", f"nothing to recover: the server holds entries up to {head['seq']}",
                           kind="nothing-to-recover", head=head)
            open_row = conn.execute(select(r.c.id).where(r.c.workstation_id == workstation_id,
                                                         r.c.completed_utc.is_(None), r.c.from_seq == head["seq"],
                                                         r.c.through_seq == body.acknowledged_seq)).first()
            if open_row is None:
                conn.execute(insert(r).values(workstation_id=workstation_id, started_utc=db.now_utc(),
                                              from_seq=head["seq"], through_seq=body.acknowledged_seq))
                count = body.acknowledged_seq - head["seq"]
                record_incident(conn, workstation_id, Problem(
                    "rolled-back", head["seq"], None,
                    f"rolled back: the server holds this workstation's chain up to entry {head['seq']} but had"
                    f" acknowledged entries up to {body.acknowledged_seq} (database restored from a backup?); the"
                    f" workstation sends the {count} missing entries again"))
        log.warning("workstation %s recovers entries %d-%d after a rollback", workstation_id, head["seq"] + 1,
                    body.acknowledged_seq)
        return RecoveryResponse(workstation_id=workstation_id, from_seq=head["seq"], through_seq=body.acknowledged_seq,
                                entries=body.acknowledged_seq - head["seq"])


_routes_made = False


def install(parent: APIRouter) -> None:
    """Add the routes to the API router (called once by workstation.server.api)."""
    global _routes_made
    if not _routes_made:
        _routes()
        _routes_made = True
    parent.include_router(router)
