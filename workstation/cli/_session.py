"""The audit session a command line tool works in: opened when the store opens, else said (never silently)."""

from __future__ import annotations

import sys


def open_audit_session(config, application: str, what: str):
    """A started WorkSession, or None after printing why `what` is not recorded."""
    from workstation.services.session import StoreLocked, WorkSession

    try:
        session = WorkSession.open(config)
    except StoreLocked as exc:
        print(f"warning: {what} not recorded in the audit trail: {exc}", file=sys.stderr)
        return None
    session.start(application)
    return session
