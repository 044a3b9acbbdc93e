"""`workstation results send|status`: the results queue from the command line (a reading-room script, IT).

send --study UID [PATH...] [--node NAME] [--retry-failed]: builds the objects of every series of the study with
a stored AI run (images from PATH, else the study's folder in the PACS cache), queues them and sends what is
queued for the study. Exit 0 when everything for the study is at the PACS, 1 when something waits for a retry
or was refused (the reason is printed), 2 usage/configuration, 3 store cannot be opened.
status [--study UID] [--json]: every queued object with its state (workstation.results-status/1).
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_LEFT, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
STATUS_FORMAT = "workstation.results-status/1"
CONFIG_HELP = "site configuration (default: $WORKSTATION_CONFIG or the platform's)"


def add_send(commands) -> None:
    send_cmd = commands.add_parser("send", help="build, queue and send a study's result objects to the PACS")
    send_cmd.add_argument("paths", nargs="*", metavar="PATH", help="the study's images (default: its PACS cache folder)")
    send_cmd.add_argument("--study", metavar="UID", required=True, help="Study Instance UID")
    send_cmd.add_argument("--node", metavar="NAME", help="PACS node (default: [results] node)")
    send_cmd.add_argument("--retry-failed", action="store_true", help="send objects the PACS refused before again")
    send_cmd.add_argument("--config", metavar="FILE", help=CONFIG_HELP)


def add_status(commands) -> None:
    status_cmd = commands.add_parser("status", help="the queued result objects and their state")
    status_cmd.add_argument("--study", metavar="UID", help="only this study")
    status_cmd.add_argument("--json", action="store_true", help=f"print the {STATUS_FORMAT} document")
    status_cmd.add_argument("--config", metavar="FILE", help=CONFIG_HELP)


def send(args) -> int:
    opened = _open(args.config)
    if isinstance(opened, int):
        return opened
    config, session = opened
    from workstation.results import ContextError
    from workstation.services.pacs import default_cache
    from workstation.services.results_build import NothingToBuild
    from workstation.services.results_send import ResultsOutbox, study_state

    try:
        node = args.node or config.results.node
        if not node:
            print("error: no PACS node for results: give --node or set [results] node", file=sys.stderr)
            return EXIT_USAGE
        config.node(node)
        from workstation.dicom.scan import scan_paths

        paths = args.paths or [str(default_cache(config).study_dir(args.study))]
        catalog = scan_paths(paths)
        outbox = ResultsOutbox(config, session.store, session.audit)
        series = [d.series.series_instance_uid for d in catalog.display_sets
                  if d.series.study.study_instance_uid == args.study]
        for series_uid in dict.fromkeys(series):
            try:
                queued = outbox.build_and_queue(series_uid, catalog, node)
                print(f"queued {len(queued)} object(s) of series {series_uid}")
            except (NothingToBuild, ContextError) as exc:
                print(f"skipped series {series_uid}: {exc}")
        if args.retry_failed:
            outbox.retry_failed(args.study)
        report = outbox.send_pending(args.study, due_only=False)
        print(f"{node}: {report.summary()}")
        items = outbox.items(args.study)
        if items:
            print(study_state(items))
        return EXIT_OK if items and all(i.state == "sent" for i in items) else EXIT_LEFT
    except Exception as exc:  # noqa: BLE001 - configuration or store problems: a message and exit 2
        from workstation.core.site import ConfigError

        if isinstance(exc, ConfigError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise
    finally:
        session.end("results")


def status(args) -> int:
    opened = _open(args.config)
    if isinstance(opened, int):
        return opened
    config, session = opened
    from workstation.services.results_send import ResultsOutbox

    try:
        items = ResultsOutbox(config, session.store).items(args.study)
    finally:
        session.end("results")
    document = {"format": STATUS_FORMAT, "objects": [{
        "sop_instance_uid": i.sop_instance_uid, "kind": i.kind, "study_instance_uid": i.study_instance_uid,
        "source_series_instance_uid": i.series_instance_uid, "run_id": i.run_id, "node": i.node, "state": i.state,
        "attempts": i.attempts, "status": i.status, "reason": i.reason, "created_utc": i.created_utc,
        "updated_utc": i.updated_utc, "next_attempt_utc": i.next_attempt_utc} for i in items]}
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        for o in document["objects"]:
            extra = f"  {o['reason']}" if o["reason"] else ""
            print(f"{o['state']:<9} {o['kind']:<9} {o['node']:<8} {o['sop_instance_uid']}  study {o['study_instance_uid']}{extra}")
        if not items:
            print("no result objects queued")
    return EXIT_OK if all(i.state == "sent" for i in items) else EXIT_LEFT


def _open(config_option: str | None):
    from workstation.core.site import ConfigError
    from workstation.services.config import load_site_config
    from workstation.services.session import WorkSession
    from workstation.store.database import StoreError

    try:
        config = load_site_config(config_option)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        session = WorkSession.open(config)
    except StoreError as exc:
        print(f"error: the store cannot be opened: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    session.start("results")
    return config, session
