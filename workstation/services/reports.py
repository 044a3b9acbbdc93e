"""The scan report shown by `workstation scan`: a stable JSON document and a text rendering.

JSON format "workstation.scan/1" is documented in the README; add fields, never rename them.
"""

from __future__ import annotations

from typing import Any

from workstation.core.study import Catalog

FORMAT = "workstation.scan/1"


def scan_report(catalog: Catalog, roots: list[str]) -> dict[str, Any]:
    patients: dict[tuple[str, str], dict[str, Any]] = {}
    studies: dict[str, dict[str, Any]] = {}
    for display_set in catalog.display_sets:
        series, study = display_set.series, display_set.series.study
        s = studies.get(study.study_instance_uid)
        if s is None:  # a study is listed once, under the patient of its first series
            patient = study.patient
            p = patients.setdefault((patient.patient_id, patient.name), {
                "patient_id": patient.patient_id, "patient_name": patient.name,
                "birth_date": patient.birth_date, "sex": patient.sex, "studies": [],
            })
            s = studies[study.study_instance_uid] = {
                "study_instance_uid": study.study_instance_uid, "study_date": study.date,
                "study_description": study.description, "accession_number": study.accession_number, "series": [],
            }
            p["studies"].append(s)
        s["series"].append({
            "series_instance_uid": series.series_instance_uid,
            "series_number": series.number,
            "part": display_set.label,
            "modality": series.modality,
            "description": series.description,
            "instance_count": len(display_set.instances),
            "frame_count": len(display_set.frames),
            "rows": display_set.first.pixel.rows,
            "columns": display_set.first.pixel.columns,
            "slice_spacing_mm": display_set.slice_spacing,
            "warnings": list(display_set.warnings),
        })
    return {
        "format": FORMAT,
        "roots": roots,
        "files_scanned": catalog.files_scanned,
        "images": len(catalog.headers),
        "patients": list(patients.values()),
        "unreadable": [_problem(p) for p in catalog.problems if not is_warning(p.reason)],
        "warnings": [_problem(p) for p in catalog.problems if is_warning(p.reason)],  # files read, but suspicious
        "results": [{"path": str(r.location), "kind": r.kind, "sop_instance_uid": r.sop_instance_uid,
                     "study_instance_uid": r.study_instance_uid, "referenced_series": list(r.referenced_series_uids)}
                    for r in catalog.results],
    }


def _problem(problem) -> dict[str, str]:
    return {"path": str(problem.location), "reason": problem.reason}


def is_warning(reason: str) -> bool:
    """A problem about a file that was still read (e.g. a suspicious preamble), not a skipped file."""
    return reason.startswith("warning:")


def printable(text: str) -> str:
    """`text` with the bytes of names that are not UTF-8 (surrogate escapes) shown as \\xNN, so it can be printed."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def format_report(report: dict[str, Any]) -> str:
    lines = [f"Scanned {report['files_scanned']} file(s): {report['images']} image instance(s), "
             f"{len(report['unreadable'])} unreadable"
             + (f", {len(report['warnings'])} warning(s)." if report.get("warnings") else ".")]
    for patient in report["patients"]:
        lines.append(f"Patient {patient['patient_name'] or '(no name)'}  ID {patient['patient_id'] or '(none)'}")
        for study in patient["studies"]:
            lines.append(f"  Study {study['study_date'] or '-'}  {study['study_description'] or '(no description)'}"
                         f"  [{study['study_instance_uid']}]")
            for s in study["series"]:
                part = f" part {s['part']}" if s["part"] else ""
                lines.append(f"    Series {s['series_number'] if s['series_number'] is not None else '-'}{part}  "
                             f"{s['modality']:<4} {s['description'] or '(no description)'}  "
                             f"{s['instance_count']} instance(s), {s['frame_count']} frame(s)")
                lines.extend(f"      warning: {w}" for w in s["warnings"])
    if report.get("results"):
        lines.append("Results objects (shown over the series they refer to):")
        lines.extend(f"  {r['kind']:<5} {r['path']}" for r in report["results"])
    if report.get("warnings"):
        lines.append("Warnings (files read):")
        lines.extend(f"  {w['path']}: {w['reason']}" for w in report["warnings"])
    if report["unreadable"]:
        lines.append("Unreadable files (skipped):")
        lines.extend(f"  {u['path']}: {u['reason']}" for u in report["unreadable"])
    return printable("\n".join(lines))
