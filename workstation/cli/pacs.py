"""`workstation pacs echo|find|retrieve`: the PACS operations for IT and scripts.

Each prints what it did; exit 0 on success, 1 when the operation failed (or a
retrieval was partial), 2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def pacs_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation pacs", description="Query and retrieve from configured PACS nodes.")
    parser.add_argument("--config", metavar="FILE", help="site configuration (default: $WORKSTATION_CONFIG or the platform's)")
    commands = parser.add_subparsers(dest="command", required=True)
    echo = commands.add_parser("echo", help="C-ECHO a node")
    echo.add_argument("node")
    find = commands.add_parser("find", help="C-FIND studies (or their series)")
    find.add_argument("node")
    find.add_argument("--patient-id", default="")
    find.add_argument("--patient-name", default="", help="DICOM wildcards * and ? allowed")
    find.add_argument("--accession", default="")
    find.add_argument("--date", default="", metavar="FROM-TO", help="YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD")
    find.add_argument("--modality", default="")
    find.add_argument("--description", default="")
    find.add_argument("--level", choices=("study", "series"), default="study")
    find.add_argument("--json", action="store_true")
    get = commands.add_parser("retrieve", help="C-MOVE or C-GET a study (or some of its series) into the local cache")
    get.add_argument("node")
    get.add_argument("--study", required=True, metavar="UID")
    get.add_argument("--series", action="append", default=[], metavar="UID", help="repeat for several series")
    get.add_argument("--method", choices=("move", "get"), help="default: the node's configured method")
    args = parser.parse_args(argv)

    from workstation.core.site import ConfigError
    from workstation.net.errors import PacsError
    from workstation.services.config import load_site_config
    from workstation.services.pacs import PacsService

    try:
        config = load_site_config(args.config)
        config.node(args.node)
        query = _query(args) if args.command == "find" else None
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from workstation.cli._session import open_audit_session

    session = open_audit_session(config, "pacs", "queries and retrievals are") if args.command != "echo" else None
    service = PacsService(config, audit=session.audit if session else None)
    try:
        if args.command == "echo":
            seconds = service.echo(args.node)
            node = config.node(args.node)
            print(f"C-ECHO {args.node} ({node.ae_title}@{node.host}:{node.port}): success in {seconds * 1000:.0f} ms")
            return EXIT_OK
        if args.command == "find":
            return _find(service, args, query)
        return _retrieve(service, args)
    except PacsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        service.close()
        if session is not None:
            session.end("pacs")


def _query(args: argparse.Namespace):
    from workstation.core.pacs import StudyQuery

    date_from, date_to = "", ""
    if args.date:
        date_from, _, date_to = args.date.partition("-") if "-" in args.date else (args.date, "", args.date)
    return StudyQuery(patient_name=args.patient_name, patient_id=args.patient_id, accession_number=args.accession,
                      date_from=date_from, date_to=date_to, modality=args.modality, description=args.description)


def _find(service, args: argparse.Namespace, query) -> int:
    studies = service.find_studies(args.node, query)
    rows = []
    for study in studies:
        row = asdict(study)
        row["modalities"] = list(study.modalities)
        if args.level == "series":
            row["series"] = [asdict(s) for s in service.find_series(args.node, study.study_instance_uid)]
        rows.append(row)
    if args.json:
        print(json.dumps({"format": "workstation.pacs-find/1", "node": args.node, "level": args.level, "studies": rows}, indent=2))
        return EXIT_OK
    print(f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'} on {args.node}")
    for row in rows:
        print(f"  {row['study_date'] or '-':8}  {row['patient_name'] or '(no name)'}  ID {row['patient_id'] or '-'}  "
              f"{row['description'] or '(no description)'}  [{'/'.join(row['modalities']) or '-'}]  "
              f"acc {row['accession_number'] or '-'}  {row['study_instance_uid']}")
        for series in row.get("series", []):
            count = series["instance_count"] if series["instance_count"] is not None else "?"
            print(f"      series {series['number'] if series['number'] is not None else '-'}  {series['modality']:<4} "
                  f"{series['description'] or '(no description)'}  {count} instance(s)  {series['series_instance_uid']}")
    return EXIT_OK


def _retrieve(service, args: argparse.Namespace) -> int:
    def show(progress, stored: int) -> None:
        expected = progress.expected
        print(f"\r  {stored} received, {progress.completed} completed, {progress.failed} failed"
              + (f" of {expected}" if expected is not None else ""), end="", flush=True)

    method = args.method or service.config.node(args.node).retrieve
    print(f"Retrieving study {args.study} from {args.node} by C-{method.upper()}"
          + (f", {len(args.series)} series" if args.series else ""))
    result = service.retrieve(args.node, args.study, args.series, method=method, progress=show)
    print()
    print(f"{result.status}: {result.received} instance(s) in the cache ({result.new} new), {result.failed} failed"
          f" -> {service.study_dir(args.study)}")
    for failure in result.failures:
        print(f"  {failure}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED
