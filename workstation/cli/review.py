"""`workstation review status PATH...|--study UID [--json]`: where a study's AI review stands.

Prints, per series and stored run, each finding's number, state, who and
comments, the pending count and the sign-off (`workstation.review-status/1`
with --json). Exit 0 when the newest run of every listed series is signed off
(the one the viewer shows), 1 when one is not (or none is stored), 2 for a usage or configuration error, 3 when the
store cannot be opened. It reads review entries only (no pixel data, no
patient names) and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_SIGNED, EXIT_OPEN, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3


def review_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation review", description="Review status of studies (AI findings).")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="each finding's state, who, comments, pending count and sign-off")
    status.add_argument("paths", nargs="*", metavar="PATH", help="DICOM files or folders of the study")
    status.add_argument("--study", metavar="UID", help="a Study Instance UID instead of paths")
    status.add_argument("--json", action="store_true", help="print the workstation.review-status/1 document")
    status.add_argument("--config", metavar="FILE", help="site configuration (default: $WORKSTATION_CONFIG or the platform's)")
    args = parser.parse_args(argv)
    if bool(args.paths) == bool(args.study):
        parser.error("give either PATH... or --study UID")

    from workstation.core.site import ConfigError
    from workstation.services.config import load_site_config
    from workstation.services.review_status import status_document, status_text
    from workstation.services.session import open_store
    from workstation.store.database import StoreError

    try:
        config = load_site_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    series_uids = _series_of(args.paths) if args.paths else []
    try:
        store = open_store(config)
    except StoreError as exc:
        print(f"error: the review store cannot be opened: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    with store:
        document = status_document(store, series_uids, args.study or "")
    print(json.dumps(document, indent=2) if args.json else status_text(document))
    runs = [run for series in document["series"] for run in series["runs"][:1]]  # the newest run of each series
    return EXIT_SIGNED if runs and all(run["signoff"] for run in runs) else EXIT_OPEN


def _series_of(paths: list[str]) -> list[str]:
    from workstation.dicom.scan import scan_paths

    catalog = scan_paths(paths)
    return list(dict.fromkeys(d.series.series_instance_uid for d in catalog.display_sets))
