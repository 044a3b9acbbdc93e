"""Dashboard sign-in: a qa/admin token is exchanged once for a random session id in an HttpOnly, SameSite=Strict
cookie (never in a URL); the server keeps only the id's SHA-256, the principal and the expiry. A revoked principal's
sessions stop at once (checked on every request); sign-out deletes the session."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, delete, select

from .. import auth, db

COOKIE = "ws_dashboard"
metadata = MetaData()

sessions = Table(
    "monitor_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("principal_id", Integer, nullable=False, index=True),
    Column("created_utc", String(40), nullable=False),
    Column("expires_utc", String(40), nullable=False),
)


def create_tables(engine: Engine) -> None:
    metadata.create_all(engine)


def sign_in(conn: Connection, token: str, hours: float) -> tuple[str, auth.Caller] | None:
    """A new session for a valid qa/admin token: (session id, who); None for any other token."""
    who = auth.identify(conn, token)
    if who is None or not who.is_staff:
        return None
    p = db.principals.c
    row = conn.execute(select(p.id).where(p.token_hash == auth.secret_hash(token), p.revoked_utc.is_(None))).first()
    if row is None:
        return None
    session_id = auth.new_secret()
    now = datetime.now(timezone.utc)
    conn.execute(delete(sessions).where(sessions.c.expires_utc < now.isoformat(timespec="microseconds")))
    conn.execute(sessions.insert().values(id_hash=auth.secret_hash(session_id), principal_id=row.id,
                                          created_utc=now.isoformat(timespec="microseconds"),
                                          expires_utc=(now + timedelta(hours=hours)).isoformat(timespec="microseconds")))
    return session_id, who


def current(conn: Connection, session_id: str | None) -> auth.Caller | None:
    """Who holds this session: None when unknown, expired, or the principal was revoked."""
    if not session_id:
        return None
    s, p = sessions.c, db.principals.c
    row = conn.execute(select(p.name, p.role, s.expires_utc).join_from(sessions, db.principals, s.principal_id == p.id)
                       .where(s.id_hash == auth.secret_hash(session_id), p.revoked_utc.is_(None))).first()
    if row is None or row.expires_utc <= db.now_utc():
        return None
    return auth.Caller(row.role, row.name)


def sign_out(conn: Connection, session_id: str | None) -> None:
    if session_id:
        conn.execute(delete(sessions).where(sessions.c.id_hash == auth.secret_hash(session_id)))
