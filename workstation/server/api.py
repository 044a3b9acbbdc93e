"""The routes of /api/v1. Every error is {"detail": {"error": <code>, "message": <text>, ...}}.

Error codes: invalid-json (400), unauthorized (401), forbidden (403), not-found (404), conflict / chain (409,
with seq and entry_id), too-large (413), invalid (422), too-many-requests (429, with Retry-After), internal
(500, no traceback); errors.py turns FastAPI's and Starlette's own answers into this form too.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

import workstation
from workstation.core.sync import MAX_BATCH

from . import auth, db, pipeline, recovery
from .errors import fail
from .fastjson import FastJsonRoute, fast_body
from .ingest import Problem, entries_page, ingest, record_incident, reused_entry, rows_for
from .models import (WORKSTATION_ID, AllStatus, CodeRequest, CodeResponse, EnrolRequest, EnrolResponse, EntriesPage,
                     Error, Head, Health, Incident, IncidentsPage, PushRequest, PushResponse, RevokeResponse, TokenInfo,
                     TokenList, TokenRevokeResponse, WorkstationStatus)
from .wire import MAX_SEQ

log = logging.getLogger(__name__)
router = APIRouter(route_class=FastJsonRoute, responses={400: {"model": Error, "description": "not JSON"},
                               422: {"model": Error, "description": "wrong types, unknown fields"}})
bearer = HTTPBearer(auto_error=False, description="a workstation token (from enrolment) or a qa/admin token")
MAX_INCIDENTS_SHOWN = 100
MAX_ROW_ID = 2**63 - 1  # ids are 64-bit in both databases: a larger `after` would overflow the query
IdPath = Annotated[str, Path(pattern=WORKSTATION_ID)]


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def caller(engine: EngineDep,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> auth.Caller:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise fail(401, "unauthorized", "missing bearer token")
    with db.read(engine) as conn:
        who = auth.identify(conn, credentials.credentials)
    if who is None:
        with db.read(engine) as conn:
            replaced = recovery.retired(conn, credentials.credentials)
        if replaced is not None:  # the id was enrolled on another machine: say so, not "unknown"
            raise fail(401, "unauthorized", recovery.retired_message(replaced), reason=replaced["reason"])
        raise fail(401, "unauthorized", "unknown or revoked token")
    if who.needs_touch():
        with db.write(engine) as conn:
            auth.touch(conn, who)
    return who


CallerDep = Annotated[auth.Caller, Depends(caller)]


def staff(who: CallerDep) -> auth.Caller:
    if not who.is_staff:
        raise fail(403, "forbidden", "needs a qa or admin token")
    return who


def admin(who: CallerDep) -> auth.Caller:
    if who.role != "admin":
        raise fail(403, "forbidden", "needs an admin token")
    return who


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Error} for code in (401, 403)}


@router.get("/health", response_model=Health)
def health(engine: EngineDep) -> Health:
    try:
        with db.read(engine) as conn:
            conn.execute(select(1))
    except Exception as exc:  # noqa: BLE001 - reported as unavailable
        log.error("database unavailable: %s", type(exc).__name__)
        raise fail(503, "unavailable", "the database is not reachable") from None
    return Health(status="ok", database=db.dialect(engine), version=workstation.__version__)


@router.post("/enrol", status_code=201, response_model=EnrolResponse,
             responses={401: {"model": Error}, 429: {"model": Error, "description": "too many failed enrolments"}})
def enrol(body: EnrolRequest, engine: EngineDep, request: Request) -> EnrolResponse:
    """Exchange a one-time enrolment code (issued by an admin for this workstation id) for a token. A source
    address that failed too often (20 at once, then 10 a minute) gets 429 with Retry-After, even for a good code."""
    source = request.client.host if request.client else "unknown"
    failures = request.app.state.enrol_failures
    wait = failures.retry_after(source)
    if wait is not None:
        raise fail(429, "too-many-requests", f"too many failed enrolments from {source}; try again in {wait} s",
                   headers={"Retry-After": str(wait)}, retry_after_s=wait)
    try:
        with db.write(engine) as conn:
            before = recovery.before_enrol(conn, body.workstation_id)
            token = auth.enrol(conn, body.code, body.workstation_id)
            recovery.after_enrol(conn, body.code, body.workstation_id, before)  # an id with entries: --replace
    except auth.EnrolmentError as exc:
        failures.spend(source)
        log.warning("enrolment refused for workstation %s from %s: %s", body.workstation_id, source, exc)
        raise fail(401, "unauthorized", str(exc)) from None
    log.info("workstation %s enrolled", body.workstation_id)
    return EnrolResponse(workstation_id=body.workstation_id, token=token)


@router.post("/entries", response_model=PushResponse,
             responses={**ERRORS, 409: {"model": Error}, 413: {"model": Error}})
@fast_body(PushRequest.deferred)
def push(body: PushRequest, who: CallerDep, engine: EngineDep, request: Request, reply: Response,
         follows: Annotated[int | None, Query(ge=0, le=MAX_SEQ, description=(
             "the entries up to this seq went in an earlier push that may still be in flight: wait (at most "
             f"{pipeline.WAIT_S:.0f} s) for them to be committed before checking this push's chain"))] = None,
         ) -> PushResponse:
    """A workstation's next items, in seq order: all accepted (committed before the reply) or none."""
    if who.role != "workstation":
        raise fail(403, "forbidden", "only a workstation token may push entries")
    waits: pipeline.HeadWaits = request.app.state.head_waits
    arrived = waits.clock()
    in_hand: pipeline.Handling = request.app.state.pushes_in_hand
    with in_hand.push_of(who.name):
        try:
            response = _push(body, who, engine, request, follows, arrived)
        except BaseException:
            waits.refused(who.name)  # a push that follows this one stops waiting for it
            raise
        waits.committed(who.name, response.head.seq)
        if request.app.state.workers_share_port and in_hand.count(who.name) > 1:
            reply.headers["Connection"] = "close"  # its next push goes to a free worker (pipeline.Handling)
    return response


def _push(body: PushRequest, who: auth.Caller, engine: Engine, request: Request, follows: int | None,
          arrived: float) -> PushResponse:
    body = body.resolved()  # decoded here, on the thread that checks and stores the items
    if len(body.items) > MAX_BATCH:
        raise fail(413, "too-large", f"at most {MAX_BATCH} items per push; this one has {len(body.items)}")
    checked = body.checked
    stranger = body.workstation_id if body.workstation_id != who.name else next(
        (i.entry.workstation_id for i, _ in checked if i.entry.workstation_id != who.name), None)
    if stranger is not None:
        item = next((i.entry for i, _ in checked if i.entry.workstation_id == stranger), None)
        problem = Problem("forbidden", item.seq if item else None, item.entry_id if item else None,
                          f"the token of workstation {who.name} was used to push entries of {stranger}")
        with db.write(engine) as conn:
            record_incident(conn, who.name, problem, request.app.state.incident_rows)
        raise fail(403, "forbidden", problem.message)
    items, texts, received = [i for i, _ in checked], [t for _, t in checked], db.now_utc()
    own_problems = body.own_problems()  # hashes, record digests and rows: outside the write lock
    rows = rows_for(who.name, items, texts, received)
    if follows is not None and items and items[0].entry.seq == follows + 1:
        _wait_for_predecessor(engine, who.name, follows, arrived, items[0].entry, request.app.state.head_waits)
    try:
        with db.write(engine) as conn:
            outcome = ingest(conn, who.name, items, received, texts, own_problems, rows)
            if outcome.accepted:
                recovery.after_push(conn, who.name, outcome.head_seq)
    except IntegrityError:  # an entry id already held, reused at a new seq (ingest leaves that to the index)
        with db.read(engine) as conn:
            problem = reused_entry(conn, who.name, items)
        with db.write(engine) as conn:
            record_incident(conn, who.name, problem, request.app.state.incident_rows)
            head = recovery.head_detail(conn, who.name)
        raise fail(409, problem.error, problem.message, seq=problem.seq, entry_id=problem.entry_id,
                   kind=problem.kind, head=head) from None
    except Problem as problem:
        with db.write(engine) as conn:
            record_incident(conn, who.name, problem, request.app.state.incident_rows)
            head = recovery.head_detail(conn, who.name)  # a workstation ahead of it recovers from here
        raise fail(409, problem.error, problem.message, seq=problem.seq, entry_id=problem.entry_id,
                   kind=problem.kind, head=head) from None
    log.info("workstation %s: %d accepted, %d duplicates, head %d", who.name, outcome.accepted,
             outcome.duplicates, outcome.head_seq)
    return PushResponse(accepted=outcome.accepted, duplicates=outcome.duplicates, acknowledged=outcome.acknowledged,
                        head=Head(seq=outcome.head_seq, hash=outcome.head_hash))


def _wait_for_predecessor(engine: Engine, workstation_id: str, follows: int, arrived: float, first,
                          waits: pipeline.HeadWaits) -> None:
    """A pipelined push waits for the push it follows; when that one is refused or does not come, this one is a
    gap (409, no incident: the predecessor's refusal has one)."""
    outcome = waits.wait_for(engine, workstation_id, follows, arrived)
    if outcome in ("ready", "busy"):  # busy: another push of it waits already; this one is checked as it is
        return
    reason = ("was refused" if outcome == "refused"
              else f"was not committed within {waits.wait_s:.0f} s")
    with db.read(engine) as conn:
        head = recovery.head_detail(conn, workstation_id)
    log.info("workstation %s: the push after entry %d waited for it, which %s", workstation_id, follows, reason)
    raise fail(409, "chain", f"gap: this push follows entry {follows}, whose push {reason}", seq=first.seq,
               entry_id=first.entry_id, kind="gap", head=head)


Text = Annotated[str | None, Query(max_length=256)]


def _text_filters(**values: str | None) -> None:
    """PostgreSQL text cannot hold NUL: such a filter matches nothing we could have stored; say so (422)."""
    for name, value in values.items():
        if value is not None and "\x00" in value:
            raise fail(422, "invalid", f"{name}: a NUL character is not allowed")


@router.get("/entries", response_model=EntriesPage, responses=ERRORS)
def query_entries(
        engine: EngineDep, who: Annotated[auth.Caller, Depends(staff)],
        workstation_id: Text = None,
        kind: Annotated[str | None, Query(max_length=256, description="audit kind, e.g. finding.accept, inference.run")] = None,
        action: Annotated[str | None, Query(max_length=256, description="review action: accept matches kind finding.accept")] = None,
        model: Annotated[str | None, Query(max_length=256, description="model name (details.model)")] = None,
        model_version: Annotated[str | None, Query(max_length=256, description="model version (details.version)")] = None,
        since: Annotated[str | None, Query(max_length=64, description="at_utc >= this ISO 8601 time (naive = UTC)")] = None,
        until: Annotated[str | None, Query(max_length=64, description="at_utc < this ISO 8601 time")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[int | None, Query(ge=0, le=MAX_ROW_ID, description="the `next` of the previous page")] = None,
) -> Response:
    """Stored entries in the order the server received them (per workstation: seq order), for reviewers and QA."""
    _text_filters(workstation_id=workstation_id, kind=kind, action=action, model=model, model_version=model_version,
                  since=since, until=until)
    e = db.entries
    query = select(e.c.id, e.c.item, e.c.received_utc).order_by(e.c.id).limit(limit + 1)
    conditions = {e.c.workstation_id: workstation_id, e.c.kind: kind, e.c.model: model, e.c.model_version: model_version}
    for column, value in conditions.items():
        if value is not None:
            query = query.where(column == value)
    if action is not None:
        query = query.where(e.c.kind == f"finding.{action}")
    for name, value, op in (("since", since, "ge"), ("until", until, "lt")):
        if value is not None:
            try:
                moment = db.normalise_time(value)
            except (ValueError, OverflowError):
                raise fail(422, "invalid", f"{name}: not an ISO 8601 time within years 1-9999 in UTC: {value!r}") from None
            query = query.where(e.c.at_utc >= moment if op == "ge" else e.c.at_utc < moment)
    if after is not None:
        query = query.where(e.c.id > after)
    with db.read(engine) as conn:
        rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return entries_page(rows, rows[-1].id if more else None)


def _incident(r) -> Incident:
    return Incident(id=r.id, at_utc=r.at_utc, kind=r.kind, seq=r.seq, entry_id=r.entry_id, message=r.message,
                    occurrences=r.occurrences, last_utc=r.last_utc)


def _status(conn, row) -> WorkstationStatus:
    i = db.incidents
    recent = conn.execute(select(i).where(i.c.workstation_id == row.id).order_by(i.c.id.desc())
                          .limit(MAX_INCIDENTS_SHOWN)).all()
    total = len(recent) if len(recent) < MAX_INCIDENTS_SHOWN else conn.execute(
        select(func.count()).select_from(i).where(i.c.workstation_id == row.id)).scalar_one()
    return WorkstationStatus(
        workstation_id=row.id, entries=row.entries, head=Head(seq=row.head_seq, hash=row.head_hash),
        last_push_utc=row.last_push_utc, enrolled=row.token_hash is not None, revoked_utc=row.revoked_utc,
        incidents=[_incident(r) for r in reversed(recent)], incidents_total=total)


@router.get("/workstations/{workstation_id}/status", response_model=WorkstationStatus,
            responses={**ERRORS, 404: {"model": Error}})
def workstation_status(workstation_id: IdPath, who: CallerDep, engine: EngineDep) -> WorkstationStatus:
    """The workstation's own token, or a qa/admin token. Incidents: the last 100, oldest first."""
    if not who.is_staff and who.name != workstation_id:
        raise fail(403, "forbidden", "a workstation may read its own status only")
    with db.read(engine) as conn:
        row = conn.execute(select(db.workstations).where(db.workstations.c.id == workstation_id)).first()
        if row is None:
            raise fail(404, "not-found", f"unknown workstation {workstation_id}")
        return _status(conn, row)


@router.get("/workstations/{workstation_id}/incidents", response_model=IncidentsPage,
            responses={**ERRORS, 404: {"model": Error}})
def workstation_incidents(
        workstation_id: IdPath, who: CallerDep, engine: EngineDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[int | None, Query(ge=0, le=MAX_ROW_ID, description="the `next` of the previous page")] = None,
) -> IncidentsPage:
    """Every incident of the workstation, oldest first, paged (the status shows only the last 100)."""
    if not who.is_staff and who.name != workstation_id:
        raise fail(403, "forbidden", "a workstation may read its own incidents only")
    i = db.incidents
    query = select(i).where(i.c.workstation_id == workstation_id).order_by(i.c.id).limit(limit + 1)
    if after is not None:
        query = query.where(i.c.id > after)
    with db.read(engine) as conn:
        if conn.execute(select(db.workstations.c.id).where(db.workstations.c.id == workstation_id)).first() is None:
            raise fail(404, "not-found", f"unknown workstation {workstation_id}")
        rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return IncidentsPage(items=[_incident(r) for r in rows], next=rows[-1].id if more else None)


@router.get("/status", response_model=AllStatus, responses=ERRORS)
def all_status(engine: EngineDep, who: Annotated[auth.Caller, Depends(staff)]) -> AllStatus:
    with db.read(engine) as conn:
        rows = conn.execute(select(db.workstations).order_by(db.workstations.c.id)).all()
        return AllStatus(workstations=[_status(conn, row) for row in rows])


@router.post("/admin/enrolment-codes", status_code=201, response_model=CodeResponse, responses=ERRORS)
def issue_code(body: CodeRequest, engine: EngineDep, who: Annotated[auth.Caller, Depends(admin)]) -> CodeResponse:
    """A one-time code that enrols `workstation_id` (default validity 72 h)."""
    with db.write(engine) as conn:
        code, expires = auth.issue_code(conn, body.workstation_id, body.ttl_hours or auth.DEFAULT_CODE_TTL_HOURS)
        if body.replace:
            recovery.replace_code(conn, code, body.workstation_id)
    log.info("enrolment code issued for workstation %s by %s", body.workstation_id, who.name)
    return CodeResponse(code=code, expires_utc=expires)


@router.post("/admin/workstations/{workstation_id}/revoke", response_model=RevokeResponse,
             responses={**ERRORS, 404: {"model": Error}})
def revoke(workstation_id: IdPath, engine: EngineDep, who: Annotated[auth.Caller, Depends(admin)]) -> RevokeResponse:
    """The workstation's token and unused codes stop working; what it pushed stays."""
    with db.write(engine) as conn:
        if not auth.revoke(conn, workstation_id):
            raise fail(404, "not-found", f"unknown workstation {workstation_id}")
    log.info("workstation %s revoked by %s", workstation_id, who.name)
    return RevokeResponse(workstation_id=workstation_id, revoked=True)


@router.get("/admin/tokens", response_model=TokenList, responses=ERRORS)
def tokens(engine: EngineDep, who: Annotated[auth.Caller, Depends(admin)]) -> TokenList:
    """Every qa/admin token and enrolled workstation: name, role, created, last used, revoked; never a secret."""
    with db.read(engine) as conn:
        return TokenList(tokens=[TokenInfo(**t) for t in auth.list_tokens(conn)])


@router.post("/admin/tokens/{token_id}/revoke", response_model=TokenRevokeResponse,
             responses={**ERRORS, 404: {"model": Error}})
def revoke_token(token_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], engine: EngineDep,
                 who: Annotated[auth.Caller, Depends(admin)]) -> TokenRevokeResponse:
    """A qa/admin token stops working at once (401); revoking one already revoked changes nothing."""
    try:
        with db.write(engine) as conn:
            row = auth.revoke_token(conn, token_id)
    except auth.TokenError as exc:
        raise fail(404, "not-found", str(exc)) from None
    log.info("%s token %s (%s) revoked by %s", row["role"], row["id"], row["name"], who.name)
    return TokenRevokeResponse(id=row["id"], name=row["name"], revoked=True)


recovery.install(router)  # GET /workstations/{id}/head, POST /workstations/{id}/recovery
