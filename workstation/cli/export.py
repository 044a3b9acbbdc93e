"""`workstation export PATH...|--study UID... (--out DIR | --zip FILE | --node NAME) [--options ...] [--json]`:
de-identified export (DICOM PS3.15 Annex E with the site's options) for research and model improvement.

Exit 0 when every object went out, 1 when some were left out (each listed with the reason) or the export was
cancelled, 2 for a usage or configuration error, a role the site does not allow (recorded), or when the
export cannot start (destination, keyring, store: an export is never made without its audit entry).
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


def export_main(argv: list[str]) -> int:
    if argv and argv[0] == "reidentify":
        return _reidentify(argv[1:])
    parser = argparse.ArgumentParser(prog="workstation export",
                                     description="Export studies de-identified (DICOM PS3.15 Annex E, keyed pseudonyms).")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, DICOMDIR or zip to export")
    parser.add_argument("--study", metavar="UID", action="append", default=[],
                        help="a Study Instance UID (repeatable): from PATHs, or from the retrieval cache")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="DIR", help="a new (or empty) folder")
    where.add_argument("--zip", metavar="FILE", help="a new zip file")
    where.add_argument("--node", metavar="NAME", help="a [pacs.NAME] research node (C-STORE)")
    parser.add_argument("--options", metavar="NAME=BOOL", nargs="+", default=[],
                        help="override the site's options, e.g. clean_pixel_data=false retain_modified_dates=true")
    parser.add_argument("--no-results", action="store_true", help="leave out our AI result and review objects")
    parser.add_argument("--json", action="store_true", help="print the manifest and what was left out as JSON")
    parser.add_argument("--config", metavar="FILE", help="site configuration (default: $WORKSTATION_CONFIG or the platform's)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    if not args.paths and not args.study:
        print("error: give PATHs or --study UIDs", file=sys.stderr)
        return EXIT_USAGE
    from workstation.core.site import ConfigError
    from workstation.deid import deid_settings
    from workstation.services.config import load_site_config
    from workstation.services.export import (
        Destination,
        ExportError,
        ExportRefused,
        ExportRequest,
        export_deidentified,
        site_secret,
    )
    from workstation.services.session import StoreLocked, WorkSession

    try:
        config = load_site_config(args.config)
        options = deid_settings(config).options.replace(**_overrides(args.options))
        if args.node:
            config.node(args.node)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    destination = (Destination("folder", args.out) if args.out else Destination("zip", args.zip) if args.zip
                   else Destination("node", args.node))
    try:
        session = WorkSession.open(config)
    except StoreLocked as exc:
        print(f"error: not exported: the audit trail cannot be written ({exc})", file=sys.stderr)
        return EXIT_USAGE
    session.start("export")
    try:
        request = ExportRequest(destination, tuple(args.paths), tuple(args.study), options,
                                include_results=not args.no_results)
        report = export_deidentified(request, config, session, site_secret(),
                                     progress=_progress if not args.json and sys.stderr.isatty() else _quiet)
    except ExportRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        session.end("export")
    if args.json:
        print(json.dumps({"manifest": report.manifest, "left_out": [
            {"item": lo.item, "source": lo.source, "reason": lo.reason} for lo in report.left_out]}, indent=2))
    else:
        print(f"exported {report.written} object(s) de-identified to {destination.describe()} "
              f"({destination.target}); export {report.export_id}")
        for lo in report.left_out:
            print(f"left out: {lo.source}: {lo.reason}")
        if report.cancelled:
            print("cancelled: nothing was written")
    return report.exit_code


def _reidentify(argv: list[str]) -> int:
    """`workstation export reidentify PSEUDONYM`: admins only, from the re-identification table (if the site keeps
    one). Exit 0 found, 1 not found, 2 usage / refused / store closed."""
    parser = argparse.ArgumentParser(prog="workstation export reidentify",
                                     description="The original patient ID or Study Instance UID behind a pseudonym "
                                                 "(admins only; the site must keep the re-identification table).")
    parser.add_argument("pseudonym", help="a patient pseudonym (P-...) or a de-identified Study Instance UID")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--config", metavar="FILE", help="site configuration")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    from workstation.core.site import ConfigError
    from workstation.services.config import load_site_config
    from workstation.services.export import ExportRefused, reidentify
    from workstation.services.session import StoreLocked, WorkSession

    try:
        config = load_site_config(args.config)
        session = WorkSession.open(config)
    except (ConfigError, StoreLocked) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    session.start("export")
    try:
        links = reidentify(session, args.pseudonym)
    except ExportRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        session.end("export")
    if args.json:
        print(json.dumps([{"kind": l.kind, "pseudonym": l.pseudonym, "original": l.original, "export_id": l.export_id,
                           "at_utc": l.at_utc} for l in links], indent=2))
    else:
        for link in links:
            print(f"{link.kind} {link.pseudonym} = {link.original} (export {link.export_id}, {link.at_utc})")
        if not links:
            print(f"{args.pseudonym}: not in the re-identification table")
    return EXIT_OK if links else EXIT_PARTIAL


def _overrides(items: list[str]) -> dict[str, bool]:
    found = {}
    for item in items:
        name, _, value = item.partition("=")
        if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise ValueError(f"--options {item}: expected NAME=true or NAME=false")
        found[name.strip()] = value.lower() in ("true", "yes", "1")
    return found


def _progress(done: int, total: int) -> None:
    print(f"\r{done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def _quiet(done: int, total: int) -> None:
    return None
