"""`workstation worklist [--json] [--unread] [--flagged] [--today] [--modality M] [--config F]`.

Every local study (received, retrieved, opened) with its AI state, AI priority (per model: highest calibrated
score and the number of findings at or above the alert threshold, saying whether the site's or the model's
threshold was used) and review state, most urgent first. `--json` prints `workstation.worklist/1`:
`{"format", "rows": [{"study_instance_uid", "patient_name", "patient_id", "study_date", "study_time",
"modalities", "description", "source", "arrived_utc", "folder", "ai_state", "flagged", "alerts", "top_score",
"models": [{"name", "version", "findings", "top_score", "alerts", "threshold", "threshold_source"}],
"review_state", "open_at": {"series_instance_uid", "frame_index", "finding_id", "score"} or null, "jobs": [...]}]}`.
Exit 0, 2 for a configuration error, 3 when the store cannot be opened.
"""

from __future__ import annotations

import argparse
import json
import sys


def worklist_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation worklist", description="Local studies, most urgent first.")
    parser.add_argument("--json", action="store_true", help="print the workstation.worklist/1 JSON document")
    parser.add_argument("--unread", action="store_true")
    parser.add_argument("--flagged", action="store_true", help="only studies with findings above the alert threshold")
    parser.add_argument("--today", action="store_true")
    parser.add_argument("--modality", default="")
    parser.add_argument("--config", metavar="FILE")
    args = parser.parse_args(argv)
    opened = open_store_or_exit(args.config)
    if isinstance(opened, int):
        return opened
    config, store = opened
    from workstation.services.worklist import WorklistService, rows_text

    try:
        service = WorklistService(config, store)
        filters = tuple(name for name in ("unread", "flagged", "today") if getattr(args, name))
        rows = service.rows(filters, args.modality)
        print(json.dumps(service.document(rows), indent=2) if args.json else rows_text(rows))
        return 0
    finally:
        store.close()


def open_store_or_exit(config_option):
    """(config, open store) or the exit status after saying why not."""
    from workstation.core.site import ConfigError
    from workstation.services.config import load_site_config
    from workstation.services.session import StoreLocked, open_store

    try:
        config = load_site_config(config_option)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return config, open_store(config)
    except StoreLocked as exc:
        print(f"error: the encrypted store cannot be opened: {exc}", file=sys.stderr)
        return 3
