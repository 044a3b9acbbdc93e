"""`workstation audit verify|export`: check and export the encrypted audit trail.

verify: exit 0 when the hash chain, the records it covers and the file's pages
are intact; 1 naming the first entry that does not fit (or the integrity
problem). export (admin role only): exit 0 when written; 2 when the user may
not export (refused and recorded as access.denied) or for a usage/configuration
error. Exit 3 when the store cannot be opened (its reason is printed). Both
are recorded in the audit trail themselves (audit.verify, audit.export).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_PROBLEM, EXIT_REFUSED, EXIT_LOCKED = 0, 1, 2, 3
CONFIG_HELP = "site configuration (default: $WORKSTATION_CONFIG or the platform's)"


def audit_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation audit", description="Verify or export the encrypted audit trail.")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check the hash chain, the records and the store's integrity")
    verify.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    export = commands.add_parser("export", help="export the audit entries (admin role)")
    export.add_argument("--since", metavar="DATE|DATETIME",
                        help="entries at or after this time: YYYY-MM-DD or ISO 8601 date and time (UTC unless an offset is given)")
    export.add_argument("--format", choices=("json", "dicom-xml"), default="json",
                        help="json (workstation.audit-export/1) or dicom-xml (DICOM PS3.15 A.5 audit messages)")
    export.add_argument("--output", metavar="FILE", type=Path, help="write here (default: standard output)")
    export.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    args = parser.parse_args(argv)

    from workstation.core.site import ConfigError
    from workstation.services.audit_export import parse_since
    from workstation.services.config import load_site_config
    from workstation.services.session import WorkSession
    from workstation.store.database import StoreError

    try:
        config = load_site_config(args.config)
        since = parse_since(args.since) if getattr(args, "since", None) else None
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        session = WorkSession.open(config)
    except StoreError as exc:  # StoreLocked (key, keyring) or a store this version cannot read
        print(f"error: the audit trail cannot be opened: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    if args.command == "verify":
        return _verify(session)
    try:
        session.start("audit")
        return _export(session, config, args, since)
    finally:
        session.end("audit")


def _verify(session) -> int:
    """Verify, then record it; a damaged file (pages failing their HMAC) may refuse the session's own entries:
    that is said on stderr and the verdict stands (exit 1 with the damaged pages and entries)."""
    from workstation.core.audit import Outcome

    unrecorded: list[str] = []
    try:
        session.start("audit")
    except Exception as exc:  # noqa: BLE001 - sqlcipher's errors on a damaged file; the verdict below says why
        unrecorded.append(f"{type(exc).__name__}: {exc}")
    report = session.store.verify()
    chain = report.chain
    problem = report.first_problem
    if report.damage:
        print(f"audit trail DAMAGED: {report.damage}")
    elif problem is None and report.integrity == "ok":
        print(f"audit trail OK: {chain.entries} entries, head {chain.head}")
    elif problem is not None:
        entry = f" (entry id {problem.entry_id})" if problem.entry_id else ""
        print(f"audit trail BROKEN: {chain.entries} entries; first problem at entry {problem.seq}{entry}: "
              f"{problem.kind}: {problem.message}")
    else:
        print(f"audit trail chain intact: {chain.entries} entries, head {chain.head}")
    print(f"store integrity: {report.integrity[:2000]}")
    if report.damage:
        print("keep the file untouched for analysis and restore the store from its backup; entries already on the "
              "central server are safe there")
    details = {"entries": chain.entries, "head": chain.head, "integrity": report.integrity[:500]}
    if problem is not None:
        details.update(problem_kind=problem.kind, problem_seq=problem.seq, problem_entry_id=problem.entry_id)
    text = "" if report.ok else (problem.message if problem is not None else f"store integrity: {report.integrity}")
    if not unrecorded:
        try:
            session.audit.record("audit.verify", outcome=Outcome.SUCCESS if report.ok else Outcome.SERIOUS_FAILURE,
                                 outcome_text=text[:500], **details)
        except Exception as exc:  # noqa: BLE001 - as above
            unrecorded.append(f"{type(exc).__name__}: {exc}")
    try:
        if unrecorded:
            session.store.close()
        else:
            session.end("audit")
    except Exception as exc:  # noqa: BLE001 - as above
        unrecorded.append(f"{type(exc).__name__}: {exc}")
        session.store.close()
    if unrecorded:
        print(f"warning: this verification could not be recorded in the audit trail ({unrecorded[0]})", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_PROBLEM


def _export(session, config, args: argparse.Namespace, since: str | None) -> int:
    from workstation.core.audit import Outcome
    from workstation.core.roles import Permission
    from workstation.services.audit_export import export
    from workstation.services.session import workstation_id

    user = session.user
    if not user.may(Permission.EXPORT_AUDIT):
        role = user.role.value if user.role else "no role"
        reason = f"{user.login} ({role}) may not export the audit trail"
        session.audit.record("access.denied", outcome=Outcome.MINOR_FAILURE, outcome_text=reason,
                             permission=Permission.EXPORT_AUDIT.value, reason="audit export refused")
        print(f"error: {reason}: only the admin role may (site configuration [users]); this refusal was recorded",
              file=sys.stderr)
        return EXIT_REFUSED

    chain = session.store.audit_entries()
    entries = session.store.audit_entries(since) if since else chain
    document = export(args.format, entries, chain, workstation_id(config), config.local.ae_title, since)
    data = document.encode("utf-8")
    details = {"count": len(entries), "format": args.format, "since": since or "",
               "destination": "file" if args.output else "stdout", "sha256": hashlib.sha256(data).hexdigest()}
    try:
        if args.output:
            _write_private(args.output, data)
        else:
            sys.stdout.write(document)
            sys.stdout.flush()
    except OSError as exc:
        session.audit.record("audit.export", outcome=Outcome.SERIOUS_FAILURE, outcome_text=f"not written: {exc}"[:500], **details)
        print(f"error: the export could not be written: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    session.audit.record("audit.export", **details)
    if args.output:
        print(f"exported {len(entries)} audit entr{'y' if len(entries) == 1 else 'ies'} ({args.format}) to {args.output}",
              file=sys.stderr)
    return EXIT_OK


def _write_private(path: Path, data: bytes) -> None:
    """Write readable by the owner only (the trail names users and studies), replacing any old file whole."""
    path = path.expanduser()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
