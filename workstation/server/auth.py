"""Tokens and enrolment codes: random, stored only as SHA-256, compared in constant time.

Three kinds of caller: a workstation (token from enrolment; may push its own entries and read its own
status), qa (reads entries and every status), admin (qa, plus enrolment codes and revocation).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, select, update

from workstation.core.audit import GENESIS

from . import db

ROLES = ("qa", "admin")
DEFAULT_CODE_TTL_HOURS = 72.0


TOUCH_EVERY_S = 60  # a token's last use is written at most this often (a write per request would cost more)


@dataclass(frozen=True)
class Caller:
    role: str  # "workstation", "qa" or "admin"
    name: str  # the workstation id, or the principal's name
    principal_id: int | None = None  # qa/admin: the principals row
    last_used_utc: str | None = None

    def needs_touch(self) -> bool:
        if self.last_used_utc is None:
            return True
        try:
            then = datetime.fromisoformat(self.last_used_utc)
        except ValueError:
            return True
        return (datetime.now(timezone.utc) - then).total_seconds() >= TOUCH_EVERY_S

    @property
    def is_staff(self) -> bool:
        return self.role in ROLES


class EnrolmentError(Exception):
    """The code cannot enrol this workstation (the message says why)."""


CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: read out and typed by IT


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_code() -> str:
    """An enrolment code IT can read out and type: 5 groups of 5 (about 122 bits), never starting with '-'
    (a command line would take `--code -x...` for an option)."""
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(25))
    return "-".join(chars[i:i + 5] for i in range(0, 25, 5))


def normalise_code(code: str) -> str:
    """Typed codes compare case-, spacing- and dash-blind: `abcde fghjk...`, `ABCDEFGHJK...` and the printed
    `ABCDE-FGHJK-...` are one code (stored hashes are of the printed form)."""
    chars = "".join(c for c in code if not c.isspace() and c not in "-_").upper()
    if len(chars) == 25 and all(c in CODE_ALPHABET for c in chars):
        return "-".join(chars[i:i + 5] for i in range(0, 25, 5))
    return "".join(code.split()).upper()


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _same(stored_hash: str | None, secret: str) -> bool:
    return stored_hash is not None and hmac.compare_digest(stored_hash, secret_hash(secret))


def identify(conn: Connection, token: str) -> Caller | None:
    """Who holds `token`; None for an unknown or revoked one."""
    hashed = secret_hash(token)
    w, p = db.workstations, db.principals
    row = conn.execute(select(w.c.id, w.c.token_hash, w.c.last_used_utc).where(w.c.token_hash == hashed)).first()
    if row is not None and _same(row.token_hash, token):
        return Caller("workstation", row.id, None, row.last_used_utc)
    row = conn.execute(select(p.c.id, p.c.name, p.c.role, p.c.token_hash, p.c.last_used_utc)
                       .where(p.c.token_hash == hashed, p.c.revoked_utc.is_(None))).first()
    if row is not None and _same(row.token_hash, token):
        return Caller(row.role, row.name, row.id, row.last_used_utc)
    return None


def touch(conn: Connection, who: Caller) -> None:
    """Record that `who`'s token was used now (shown by the token list)."""
    now = db.now_utc()
    if who.principal_id is not None:
        conn.execute(update(db.principals).where(db.principals.c.id == who.principal_id).values(last_used_utc=now))
    elif who.role == "workstation":
        conn.execute(update(db.workstations).where(db.workstations.c.id == who.name).values(last_used_utc=now))


def list_tokens(conn: Connection) -> list[dict]:
    """Every qa/admin token (revoked ones too) and every workstation ever enrolled: who, role, times; no secret."""
    p, w = db.principals, db.workstations
    tokens = [{"id": r.id, "name": r.name, "role": r.role, "created_utc": r.created_utc,
               "last_used_utc": r.last_used_utc, "revoked_utc": r.revoked_utc}
              for r in conn.execute(select(p.c.id, p.c.name, p.c.role, p.c.created_utc, p.c.last_used_utc,
                                           p.c.revoked_utc).order_by(p.c.id))]
    tokens += [{"id": None, "name": r.id, "role": "workstation", "created_utc": r.enrolled_utc,
                "last_used_utc": r.last_used_utc, "revoked_utc": r.revoked_utc}
               for r in conn.execute(select(w.c.id, w.c.enrolled_utc, w.c.last_used_utc, w.c.revoked_utc)
                                     .where(w.c.enrolled_utc.is_not(None)).order_by(w.c.id))]
    return tokens


class TokenError(Exception):
    """No such token, or a name that several tokens share (the message says which)."""


def revoke_token(conn: Connection, which: str | int) -> dict:
    """Revoke a qa/admin token by id, or by name when one live token has it; the revoked row (id, name, role)."""
    p = db.principals
    if isinstance(which, int) or str(which).isdigit():
        rows = conn.execute(select(p.c.id, p.c.name, p.c.role, p.c.revoked_utc).where(p.c.id == int(which))).all()
    else:
        rows = conn.execute(select(p.c.id, p.c.name, p.c.role, p.c.revoked_utc)
                            .where(p.c.name == which, p.c.revoked_utc.is_(None))).all()
    if not rows:
        raise TokenError(f"no qa/admin token {which!r} (ids and names: workstation-server tokens)")
    if len(rows) > 1:
        raise TokenError(f"{len(rows)} live tokens are named {which!r} (ids {', '.join(str(r.id) for r in rows)}): "
                         "give the id")
    row = rows[0]
    if row.revoked_utc is None:
        conn.execute(update(p).where(p.c.id == row.id).values(revoked_utc=db.now_utc()))
    return {"id": row.id, "name": row.name, "role": row.role}


def ensure_workstation(conn: Connection, workstation_id: str) -> None:
    exists = conn.execute(select(db.workstations.c.id).where(db.workstations.c.id == workstation_id)).first()
    if exists is None:
        conn.execute(db.workstations.insert().values(id=workstation_id, head_seq=0, head_hash=GENESIS, entries=0))


def issue_code(conn: Connection, workstation_id: str, ttl_hours: float = DEFAULT_CODE_TTL_HOURS) -> tuple[str, str]:
    """A one-time enrolment code for `workstation_id`: (code, expires_utc)."""
    if not ttl_hours > 0:
        raise ValueError("ttl_hours must be positive")
    ensure_workstation(conn, workstation_id)
    code = new_code()
    now = datetime.now(timezone.utc)
    expires = (now + timedelta(hours=ttl_hours)).isoformat(timespec="microseconds")
    conn.execute(db.enrolment_codes.insert().values(code_hash=secret_hash(code), workstation_id=workstation_id,
                                                    issued_utc=now.isoformat(timespec="microseconds"),
                                                    expires_utc=expires))
    return code, expires


def enrol(conn: Connection, code: str, workstation_id: str) -> str:
    """Use `code` (once) for `workstation_id`; the workstation's new token (its previous one stops working)."""
    code = normalise_code(code)
    hashed = secret_hash(code)
    row = conn.execute(select(db.enrolment_codes).where(db.enrolment_codes.c.code_hash == hashed)).first()
    if row is None or not _same(row.code_hash, code):
        raise EnrolmentError("unknown enrolment code")
    if row.used_utc is not None:
        raise EnrolmentError("this enrolment code was already used (or its workstation revoked)")
    now = db.now_utc()
    if row.expires_utc <= now:
        raise EnrolmentError(f"this enrolment code expired at {row.expires_utc}")
    if not hmac.compare_digest(row.workstation_id.encode(), workstation_id.encode()):
        raise EnrolmentError("this enrolment code was issued for another workstation")
    used = conn.execute(update(db.enrolment_codes).where(db.enrolment_codes.c.code_hash == hashed,
                                                         db.enrolment_codes.c.used_utc.is_(None))
                        .values(used_utc=now))
    if used.rowcount != 1:  # used by a concurrent request
        raise EnrolmentError("this enrolment code was already used (or its workstation revoked)")
    token = new_secret()
    conn.execute(update(db.workstations).where(db.workstations.c.id == workstation_id)
                 .values(token_hash=secret_hash(token), enrolled_utc=now, revoked_utc=None))
    return token


def revoke(conn: Connection, workstation_id: str) -> bool:
    """The workstation's token and its unused codes stop working; its entries stay. False if unknown."""
    now = db.now_utc()
    done = conn.execute(update(db.workstations).where(db.workstations.c.id == workstation_id)
                        .values(token_hash=None, revoked_utc=now))
    conn.execute(update(db.enrolment_codes).where(db.enrolment_codes.c.workstation_id == workstation_id,
                                                  db.enrolment_codes.c.used_utc.is_(None)).values(used_utc=now))
    return done.rowcount == 1


def issue_token(conn: Connection, role: str, name: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = new_secret()
    conn.execute(db.principals.insert().values(name=name, role=role, token_hash=secret_hash(token),
                                               created_utc=db.now_utc()))
    return token
