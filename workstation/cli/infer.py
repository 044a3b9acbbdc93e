"""`workstation infer PATH... [--model NAME[:VERSION]] [--json]`: the viewer's AI engine, headless.

Exit 0 when at least one series was analysed, 1 when none could be (each
skipped series with the reason, e.g. too few slices for the model), 2 for a
usage error or a model asked for by name that must not run (unknown, modified
weights, wrong modality, a series outside its input requirements).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_NOTHING, EXIT_REFUSED = 0, 1, 2
FORMAT = "workstation.infer/1"


def infer_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation infer", description="Run an AI model on the series under PATHs.")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--model", metavar="NAME[:VERSION]", help="default: the newest model accepting each series")
    parser.add_argument("--json", action="store_true", help=f"print the {FORMAT} JSON document")
    parser.add_argument("--config", metavar="FILE", help="site configuration (for the audit trail's user and store)")
    args = parser.parse_args(argv)

    from workstation.dicom.scan import scan_paths
    from workstation.services.inference import InferenceService

    service = InferenceService()
    session = _audit_session(args.config)
    if session is not None:
        service.run_recorded.connect(session.review.record_run)
    try:
        return _infer(args, service, scan_paths(args.paths))
    finally:
        if session is not None:
            session.end("infer")


def _audit_session(config_option: str | None):
    from workstation.cli._session import open_audit_session
    from workstation.core.site import ConfigError
    from workstation.services.config import load_site_config

    try:
        config = load_site_config(config_option)
    except ConfigError as exc:
        print(f"warning: runs are not recorded in the audit trail: {exc}", file=sys.stderr)
        return None
    return open_audit_session(config, "infer", "runs are")


def _infer(args, service, catalog) -> int:
    from workstation.inference.registry import ModelError
    from workstation.services.loading import SeriesLoad

    runs, skipped = [], []
    for display_set in catalog.display_sets:
        uid = display_set.series.series_instance_uid
        try:
            service.choose(display_set, args.model)  # before decoding: a refused series is never loaded
            volume = SeriesLoad(display_set, start_frame=0).run()
            result = service.run(display_set, volume, args.model)
        except ModelError as exc:
            skipped.append({"series_instance_uid": uid, "reason": str(exc)})
            if args.model:  # the model the user asked for must not run: say so and stop
                print(f"error: {exc}", file=sys.stderr)
                if args.json:
                    print(json.dumps(_document(runs, skipped, catalog, error=str(exc)), indent=2))
                return EXIT_REFUSED
            continue
        runs.append(_run_json(result))
    document = _document(runs, skipped, catalog)
    print(json.dumps(document, indent=2) if args.json else _text(document))
    return EXIT_OK if runs else EXIT_NOTHING


def _document(runs: list, skipped: list, catalog, error: str | None = None) -> dict[str, Any]:
    document = {"format": FORMAT, "runs": runs, "skipped": skipped,
                "unreadable": [{"path": str(p.location), "reason": p.reason} for p in catalog.problems]}
    if error is not None:
        document["error"] = error
    return document


def _run_json(result) -> dict[str, Any]:
    return {
        "study_instance_uid": result.study_instance_uid,
        "series_instance_uid": result.series_instance_uid,
        "model": {"name": result.model.name, "version": result.model.version, "sha256": result.model.sha256},
        "device": result.device,
        "seconds": round(result.seconds, 3),
        "started_utc": result.started_utc,
        "findings": [{
            "id": f.finding_id, "label": f.label, "score": f.score, "frame_index": f.frame_index,
            "sop_instance_uid": f.sop_instance_uid,
            "box_px": dict(zip(("column0", "row0", "column1", "row1"), f.box_px)),
            "box_mm": [list(f.box_mm[0]), list(f.box_mm[1])],
            "center_mm": list(f.center_mm),
            "frames": list(f.frames),
        } for f in result.sorted_findings()],
    }


def _text(document: dict[str, Any]) -> str:
    lines = []
    for run in document["runs"]:
        model = run["model"]
        lines.append(f"Series {run['series_instance_uid']}: {model['name']} {model['version']} on {run['device']}, "
                     f"{run['seconds']:.2f} s, {len(run['findings'])} finding(s)")
        for f in run["findings"]:
            x, y, z = f["center_mm"]
            lines.append(f"  {f['label']} {f['score']:.2f}  slice {f['frame_index'] + 1}  at ({x:.1f}, {y:.1f}, {z:.1f}) mm")
    lines.extend(f"skipped {s['series_instance_uid']}: {s['reason']}" for s in document["skipped"])
    lines.extend(f"unreadable {u['path']}: {u['reason']}" for u in document["unreadable"])
    return "\n".join(lines) or "nothing to analyse"
