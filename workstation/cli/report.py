"""`workstation report draft|show|edit|send`: the report of a signed-off review, to the RIS (HL7) and FHIR.

draft PATH... --study UID     a new draft from the sign-off in force, measured on the study's images
show --study UID              the latest version and its deliveries
edit --study UID --file F     a new version with the text of F ('-': standard input)
send --study UID [--format hl7|fhir] [--retry]
                              finalise the latest version, queue it for each configured destination and
                              deliver what is due now; --retry first re-queues messages the receiver refused
Exit 0 when done (send: everything delivered), 1 when a send is not delivered yet (queued, retrying or
refused: listed), 2 for a usage, configuration or role refusal, 3 when the store cannot be opened.
`--json` prints a `workstation.report/1` document.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

EXIT_OK, EXIT_PENDING, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
FORMAT = "workstation.report/1"


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation report", description="Report a signed-off AI review.")
    commands = parser.add_subparsers(dest="command", required=True)
    draft = commands.add_parser("draft", help="a new draft from the sign-off in force")
    draft.add_argument("paths", nargs="+", metavar="PATH", help="the study's images (files, folders, DICOMDIR, zip)")
    show = commands.add_parser("show", help="the latest version and its deliveries")
    edit = commands.add_parser("edit", help="a new version with the text of a file")
    edit.add_argument("--file", required=True, metavar="F", help="the report text ('-': standard input)")
    send = commands.add_parser("send", help="finalise, queue and deliver")
    send.add_argument("--format", choices=("hl7", "fhir"), action="append", help="only this format (repeatable)")
    send.add_argument("--retry", action="store_true", help="re-queue messages the receiver refused")
    for sub in (draft, show, edit, send):
        sub.add_argument("--study", required=True, metavar="UID", help="Study Instance UID")
        sub.add_argument("--json", action="store_true", help=f"print the {FORMAT} document")
        sub.add_argument("--config", metavar="FILE", help="site configuration (default: $WORKSTATION_CONFIG or the platform's)")
    args = parser.parse_args(argv)
    return _run(args)


def _run(args) -> int:
    from workstation.core.roles import PermissionDenied
    from workstation.core.site import ConfigError
    from workstation.services.config import load_site_config
    from workstation.services.report_delivery import ReportError, ReportService
    from workstation.services.session import open_store
    from workstation.store.database import StoreError

    try:
        config = load_site_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        store = open_store(config)
    except StoreError as exc:
        print(f"error: the store cannot be opened: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    with store:
        reports = ReportService(config, store)
        try:
            code = _command(args, reports)
        except (ReportError, PermissionDenied) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        document = _document(reports, args.study)
    print(json.dumps(document, indent=2) if args.json else _text(document))
    return code


def _command(args, reports) -> int:
    if args.command == "draft":
        from workstation.dicom.scan import scan_paths

        reports.draft(args.study, scan_paths(args.paths))
    elif args.command == "edit":
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        reports.edit(args.study, text)
    elif args.command == "send":
        reports.finalise(args.study)
        if args.retry:
            reports.retry_rejected(args.study)
        queued = reports.queue(args.study, tuple(args.format or ("hl7", "fhir")))
        reports.deliver(args.study)
        states = {reports.reports.send(q.send_id).state for q in queued}
        return EXIT_OK if states == {"delivered"} else EXIT_PENDING
    elif reports.latest(args.study) is None:
        print("no report for this study yet", file=sys.stderr)
        return EXIT_PENDING
    return EXIT_OK


def _document(reports, study: str) -> dict:
    latest = reports.latest(study)
    return {
        "format": FORMAT, "study_instance_uid": study,
        "version": None if latest is None else {"version_id": latest.version_id, "kind": latest.kind,
                                                "by": latest.user, "at_utc": latest.at_utc, "text": latest.text,
                                                "findings": latest.structured.get("findings", [])},
        "versions": len(reports.reports.versions(study)),
        "deliveries": [{k: v for k, v in asdict(s).items() if k not in ("study_instance_uid",)}
                       for s in reports.reports.sends(study)],
    }


def _text(document: dict) -> str:
    version = document["version"]
    if version is None:
        return "no report"
    lines = [f"Report ({version['kind']}, version {document['versions']}, by {version['by']} at {version['at_utc'][:16]}):",
             "", version["text"], ""]
    for send in document["deliveries"]:
        line = f"{send['format'].upper()} to {send['destination']} [{send['control_id']}]: {send['state']}"
        if send["reason"]:
            line += f" ({send['reason']})"
        if send["state"] == "retrying" and send["next_attempt_utc"]:
            line += f", next attempt {send['next_attempt_utc'][:19]}"
        lines.append(line)
    return "\n".join(lines)
