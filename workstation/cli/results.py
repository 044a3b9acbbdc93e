"""`workstation results build|...`: AI results and reader decisions as DICOM objects for the PACS.

`build PATH... [--study UID] [--series UID]... --out DIR [--json]` writes, for each
series under PATH with a stored AI run, the AI result SR, the review SR (once
signed off), the GSPS and the Parametric Map as OUT/<kind>-<SOP Instance UID>.dcm.
Exit 0 when something was written, 1 when nothing could be built, 2 for a usage
or configuration error, 3 when the store cannot be opened. Writing the files is
an `export` audit entry (the SOP Instance UIDs, never a patient name).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_NOTHING, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
BUILD_FORMAT = "workstation.results-build/1"


def results_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation results",
                                     description="AI results and reader decisions as DICOM SR, GSPS and Parametric Map.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_build(commands)
    from workstation.cli.results_queue import add_send, add_status, send, status

    add_send(commands)
    add_status(commands)
    args = parser.parse_args(argv)
    handlers = {"build": _build, "send": send, "status": status}
    return handlers[args.command](args)


def _add_build(commands) -> None:
    build = commands.add_parser("build", help="write the result objects of the stored AI runs as DICOM files")
    build.add_argument("paths", nargs="+", metavar="PATH", help="the source images (files, folders, DICOMDIR, zip)")
    build.add_argument("--study", metavar="UID", help="only series of this Study Instance UID")
    build.add_argument("--series", metavar="UID", action="append", help="only this series (repeatable)")
    build.add_argument("--out", metavar="DIR", required=True, help="folder for the objects (created if missing)")
    build.add_argument("--json", action="store_true", help=f"print the {BUILD_FORMAT} document")
    build.add_argument("--config", metavar="FILE", help="site configuration (default: $WORKSTATION_CONFIG or the platform's)")


def _build(args) -> int:
    from workstation.core.site import ConfigError
    from workstation.dicom.scan import scan_paths
    from workstation.services.config import load_site_config
    from workstation.services.session import open_store
    from workstation.store.database import StoreError

    try:
        config = load_site_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    catalog = scan_paths(args.paths)
    series = _selected_series(catalog, args.study, args.series)
    try:
        store = open_store(config)
    except StoreError as exc:
        print(f"error: the review store cannot be opened: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    with store:
        document = _build_series(store, catalog, series, args.out)
    print(json.dumps(document, indent=2) if args.json else _text(document))
    return EXIT_OK if document["written"] else EXIT_NOTHING


def _selected_series(catalog, study: str | None, series: list[str] | None) -> list[tuple[str, str]]:
    """(study, series) UIDs under the paths, filtered by --study / --series, in catalogue order."""
    chosen = []
    for display_set in catalog.display_sets:
        pair = (display_set.series.study.study_instance_uid, display_set.series.series_instance_uid)
        if (study and pair[0] != study) or (series and pair[1] not in series) or pair in chosen:
            continue
        chosen.append(pair)
    return chosen


def _build_series(store, catalog, series: list[tuple[str, str]], out: str) -> dict[str, Any]:
    from workstation.core.audit import AuditEvent
    from workstation.results import ContextError, build_results
    from workstation.services.results_build import NothingToBuild, contexts_for_series, write_objects
    from workstation.store.database import now_utc

    written, skipped = [], []
    for study_uid, series_uid in series:
        try:
            run, review = contexts_for_series(store, series_uid, catalog)
            objects = build_results(run, review)
        except (NothingToBuild, ContextError) as exc:
            skipped.append({"series_instance_uid": series_uid, "reason": str(exc)})
            continue
        paths = write_objects(objects, out)
        entries = [{"kind": o.kind, "path": str(p.resolve()), "sop_instance_uid": str(o.dataset.SOPInstanceUID),
                    "series_instance_uid": str(o.dataset.SeriesInstanceUID), "content_key": o.content_key,
                    "study_instance_uid": study_uid, "source_series_instance_uid": series_uid, "run_id": run.run_id,
                    "signed_off": review is not None} for o, p in zip(objects, paths)]
        written += entries
        store.append(AuditEvent("export", now_utc(), {
            "what": "results", "destination": "files", "series_instance_uid": series_uid, "run_id": run.run_id,
            "objects": [{"kind": e["kind"], "sop_instance_uid": e["sop_instance_uid"]} for e in entries]}, study_uid))
    if not series:
        skipped.append({"series_instance_uid": "", "reason": "no image series under the given paths matches"})
    return {"format": BUILD_FORMAT, "written": written, "skipped": skipped}


def _text(document: dict[str, Any]) -> str:
    lines = [f"wrote {e['kind']:<9} {e['path']}" for e in document["written"]]
    lines += [f"skipped {s['series_instance_uid'] or '-'}: {s['reason']}" for s in document["skipped"]]
    return "\n".join(lines) or "nothing to build"
