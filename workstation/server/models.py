"""Request and response bodies of the API (pydantic; unknown fields and wrong types are refused)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SkipValidation, ValidationError, model_validator

from workstation.core.audit import AuditEntry, canonical_json
from workstation.core.sync import ENTRY_FIELDS, MAX_BATCH, Record, SyncItem, free_form_problem

from . import push_decoder
from .fastjson import loads
from .wire import WireError, check_items

WORKSTATION_ID = r"^[A-Za-z0-9_.-]{1,128}$"
WorkstationId = Annotated[str, Field(pattern=WORKSTATION_ID, examples=["ws-rad-01"])]
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class WireRecord(Strict):
    """The feedback entry or inference record an audit entry binds (by id and SHA-256 in its details)."""

    kind: Literal["feedback", "inference"]
    id: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any]


class WireItem(Strict):
    """One audit entry of a workstation's hash chain (workstation.core.audit.AuditEntry), with its record."""

    seq: int = Field(ge=1, le=2**62)
    entry_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="a UUID")
    workstation_id: WorkstationId
    at_utc: str = Field(min_length=1, max_length=40)
    kind: str = Field(pattern=r"^[a-z0-9._-]{1,64}$", examples=["finding.accept"])
    user: str = Field(max_length=256)
    role: str = Field(max_length=32)
    study_instance_uid: str = Field(max_length=128)
    outcome: int = Field(ge=-2**63, le=2**63 - 1)
    outcome_text: str = Field(max_length=4096)
    details: dict[str, Any]
    prev_hash: Hash
    hash: Hash
    record: WireRecord | None = None

    _text: str = PrivateAttr(default="")  # the item's canonical JSON, made once: stored and compared as is

    @model_validator(mode="after")
    def _canonical(self) -> WireItem:
        problem = free_form_problem(self.details, "details") or (
            None if self.record is None else free_form_problem(self.record.payload, "record.payload"))
        if problem is not None:
            raise ValueError(problem)
        try:  # e.g. NaN, or a lone surrogate in a string: cannot be hashed
            self._text = canonical_json(self.model_dump()).decode("utf-8")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not canonical JSON ({exc}); numbers must be finite") from None
        return self

    @property
    def canonical_text(self) -> str:
        return self._text

    def to_sync_item(self) -> SyncItem:
        record = None if self.record is None else Record(self.record.kind, self.record.id, self.record.payload)
        return SyncItem(AuditEntry(**{name: getattr(self, name) for name in ENTRY_FIELDS}), record)


class PushRequest(Strict):
    workstation_id: WorkstationId
    # documented as WireItems; checked by wire.check_items (the same rules, without a model per item)
    items: SkipValidation[list[WireItem]] = Field(description=f"in seq order; at most {MAX_BATCH} per push (413 beyond)")

    _checked: list[tuple[SyncItem, str]] | None = PrivateAttr(default=None)
    _problems: list[str | None] | None = PrivateAttr(default=None)
    _raw: bytes | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_items(self) -> PushRequest:
        if self._checked is not None or self._raw is not None:  # made by decoded() or deferred()
            return self
        try:
            self._checked = check_items(self.items)
        except WireError as exc:
            raise ValueError(str(exc)) from None
        return self

    @classmethod
    def deferred(cls, body: bytes) -> PushRequest:
        """The body, read but not yet decoded (api.push's fast_body): the route decodes it with resolved() on the
        worker thread that then checks and stores the items. Decoded on the event loop's thread instead, the
        items were handed across threads and cores, which cost a fifth of the server's CPU per entry."""
        request = cls.model_construct(workstation_id="", items=[])
        request._raw = body
        return request

    def resolved(self) -> PushRequest:
        """This request with its body decoded and checked: push_decoder's one pass when it vouches for the body,
        else the exact path, whose refusal is FastAPI's own (400 for a body that is not JSON, 422 naming the
        first wrong field)."""
        if self._raw is None:
            return self
        decoded = PushRequest.decoded(self._raw)
        if decoded is not None:
            return decoded
        try:
            data = loads(self._raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep: as FastAPI answers them
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error",
                                           "input": {}}]) from None
        try:
            return PushRequest.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) \
                from None

    @classmethod
    def decoded(cls, body: bytes) -> PushRequest | None:
        """The request from push_decoder's one pass over a valid body (api.push's fast_body); None otherwise."""
        decoded = push_decoder.decode(body)
        if decoded is None:
            return None
        request = cls.model_construct(workstation_id=decoded.workstation_id, items=decoded.checked)
        request._checked, request._problems = decoded.checked, decoded.problems
        return request

    @property
    def checked(self) -> list[tuple[SyncItem, str]]:
        """Each item as (SyncItem, canonical JSON text)."""
        return self._checked or []

    def own_problems(self) -> list[str | None]:
        """Each item's `problem()` (hash, record binding): the decoder's, made from the pieces it encoded."""
        if self._problems is None:
            return [item.problem() for item, _ in self.checked]
        return self._problems



class Head(BaseModel):
    seq: int
    hash: str


class PushResponse(BaseModel):
    accepted: int = Field(description="items new to the server, now committed")
    duplicates: int = Field(description="items the server already held, identical")
    acknowledged: list[str] = Field(description="entry_id of every item of the batch: the server holds them all")
    head: Head


class EnrolRequest(Strict):
    code: str = Field(min_length=1, max_length=256)
    workstation_id: WorkstationId


class EnrolResponse(BaseModel):
    workstation_id: str
    token: str


class CodeRequest(Strict):
    workstation_id: WorkstationId
    ttl_hours: float | None = Field(default=None, gt=0, le=24 * 365)
    replace: bool = Field(default=False, description="the id already has entries and a live token, and moves to the "
                                                     "machine that uses this code (recorded as an incident)")


class CodeResponse(BaseModel):
    code: str
    expires_utc: str


class RevokeResponse(BaseModel):
    workstation_id: str
    revoked: bool


class TokenInfo(BaseModel):
    id: int | None = Field(description="qa/admin tokens: what POST /admin/tokens/{id}/revoke takes; null for workstations")
    name: str = Field(description="the principal's name, or the workstation id")
    role: Literal["qa", "admin", "workstation"]
    created_utc: str | None
    last_used_utc: str | None = Field(description="to the minute: updated at most once a minute")
    revoked_utc: str | None


class TokenList(BaseModel):
    tokens: list[TokenInfo] = Field(description="every qa/admin token and every enrolled workstation; never a secret")


class TokenRevokeResponse(BaseModel):
    id: int
    name: str
    revoked: bool


class Health(BaseModel):
    status: Literal["ok"]
    database: str
    version: str


class Incident(BaseModel):
    id: int = Field(description="pass as `after` to GET /workstations/{id}/incidents for the ones after it")
    at_utc: str = Field(description="first seen")
    kind: str = Field(description="gap, broken-link, altered, conflict, forbidden; flood: too many to list one by one")
    seq: int | None
    entry_id: str | None
    message: str
    occurrences: int = Field(description="how many times it happened (identical repeats are folded into one row)")
    last_utc: str | None = Field(description="last seen (null when seen once)")


class IncidentsPage(BaseModel):
    items: list[Incident]
    next: int | None = Field(description="pass as `after` for the next page; null on the last page")


class WorkstationStatus(BaseModel):
    workstation_id: str
    entries: int
    head: Head
    last_push_utc: str | None
    enrolled: bool
    revoked_utc: str | None
    incidents: list[Incident] = Field(description="the last 100 incidents, oldest first")
    incidents_total: int = Field(description="incident rows in all (GET /workstations/{id}/incidents pages them)")


class AllStatus(BaseModel):
    workstations: list[WorkstationStatus]


class EntriesPage(BaseModel):
    items: list[dict[str, Any]] = Field(description="wire items as pushed, each with received_utc")
    next: int | None = Field(description="pass as `after` for the next page; null on the last page")


class ErrorDetail(BaseModel):
    error: str = Field(description="unauthorized, forbidden, not-found, conflict, chain, too-large, invalid-json, "
                                   "invalid, too-many-requests, internal")
    message: str
    seq: int | None = Field(default=None, description="409: the entry that was refused")
    entry_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(default=None, description="422: each invalid field (loc, msg, type)")


class Error(BaseModel):
    detail: ErrorDetail
