"""Use case "export de-identified": select studies, de-identify every object, check it, write it atomically to a
folder, a zip or a research PACS node, and record one audit entry and a manifest (no patient data in either).

Only roles the site allows (default reviewer, admin) may export; a refusal is itself recorded. Each object
that cannot go out (burned-in text the site does not clean, undecodable pixels, a residue found by the final
check, a node's refusal) is left out and named with the reason; the others still go. Nothing half-written is
left in a destination: folders and zips are written under a temporary name and moved into place at the end.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO

import keyring.backend
import keyring.errors
import pydicom

from workstation import __version__
from workstation.core.audit import Outcome
from workstation.core.site import ConfigError, SiteConfig
from workstation.core.study import FileLocation
from workstation.core.tasks import CancelToken
from workstation.deid import DeidOptions, Deidentifier, KeyedMapping, deid_settings
from workstation.deid.pixels import OcrUnavailable
from workstation.deid.validate import encode
from workstation.dicom.sources import iter_locations, open_location
from workstation.services.export_work import Refused, WorkerDied, deidentify_all, work
from workstation.services.export_writers import DestinationError, writer_for
from workstation.store.keys import SERVICE, KeyringUnavailable, usable_backend

FORMAT = "workstation.deid-export/1"
PROFILE = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"
TABLE_EDITION = "Table E.1-1 as of 2024-09-19"
SECRET_NAME = "deid-site-secret"
DESTINATION_KINDS = ("folder", "zip", "node")


class ExportRefused(PermissionError):
    """The user's role may not export (recorded as access.denied)."""


class ExportError(Exception):
    """The export cannot start: destination, selection, secret or OCR (the message says which)."""


@dataclass(frozen=True)
class Destination:
    kind: str  # folder | zip | node
    target: str  # a path, or a [pacs.NAME] node name

    def describe(self) -> str:
        return f"node {self.target}" if self.kind == "node" else self.kind


@dataclass(frozen=True)
class ExportRequest:
    destination: Destination
    paths: tuple[str, ...] = ()
    study_uids: tuple[str, ...] = ()
    options: DeidOptions | None = None  # None: the site's
    include_results: bool = True  # our AI result / review SRs, GSPS, maps of the stored runs


@dataclass(frozen=True)
class LeftOut:
    item: str  # "input #N" (+ the file where the user may see it)
    source: str  # the file, for the person exporting (not in the manifest)
    reason: str


@dataclass
class ExportReport:
    export_id: str
    destination: Destination
    written: int = 0
    left_out: list[LeftOut] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    cancelled: bool = False
    reidentification_kept: bool = False  # the site keeps pseudonym -> original in the encrypted store

    @property
    def exit_code(self) -> int:
        return 0 if not self.left_out and not self.cancelled and self.written else 1


def site_secret(backend: keyring.backend.KeyringBackend | None = None) -> bytes:
    """The site's de-identification secret in the OS keyring, made on first use (never written to a file).
    Workstations of one site share it (IT copies it once) so that their exports link up."""
    try:
        chosen = usable_backend(backend)
        value = chosen.get_password(SERVICE, SECRET_NAME)
        if value is None:
            chosen.set_password(SERVICE, SECRET_NAME, os.urandom(32).hex())
            value = chosen.get_password(SERVICE, SECRET_NAME)
    except (KeyringUnavailable, keyring.errors.KeyringError) as exc:
        raise ExportError(f"no de-identification secret: {exc}") from None
    try:
        secret = bytes.fromhex(value or "")
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise ExportError(f"the keyring entry {SERVICE}/{SECRET_NAME} is not a de-identification secret")
    return secret


def site_options(config: SiteConfig) -> list[str]:
    """The names of the de-identification options the site chose (for the export dialog)."""
    return deid_settings(config).options.names()


def reidentify(session, pseudonym: str) -> list:
    """The originals behind a pseudonym or a de-identified Study Instance UID, from the re-identification table:
    admins only (a refusal is recorded as access.denied, a lookup as export.reidentify, neither with patient data)."""
    from workstation.store.deid_links import DeidLinks, NotAdmin

    try:
        found = DeidLinks(session.store).lookup(pseudonym)
    except NotAdmin as exc:
        session.audit.record("access.denied", outcome=Outcome.MINOR_FAILURE, function="export.reidentify",
                             outcome_text="re-identification is for admins only")
        raise ExportRefused(str(exc)) from None
    session.audit.record("export.reidentify", found=len(found), pseudonym=pseudonym)
    return found


def check_role(config: SiteConfig, session) -> None:
    """ExportRefused (recorded as access.denied) unless the user's role may export."""
    allowed = deid_settings(config).export_roles
    role = session.user.role.value if session.user.role else None
    if role not in allowed:
        session.audit.record("access.denied", outcome=Outcome.MINOR_FAILURE, function="export",
                             outcome_text=f"role {role or 'none'} may not export (allowed: {', '.join(allowed)})")
        raise ExportRefused(f"{session.user.login} ({role or 'no role'}) may not export de-identified studies "
                            f"(allowed: {', '.join(allowed)})")


def export_deidentified(request: ExportRequest, config: SiteConfig, session, secret: bytes,
                        progress: Callable[[int, int], None] = lambda _d, _t: None,
                        cancel: CancelToken | None = None, results_builder=None) -> ExportReport:
    """Run the export (ExportRefused / ExportError before anything is written)."""
    check_role(config, session)
    settings = deid_settings(config)
    options = request.options or settings.options
    if request.destination.kind not in DESTINATION_KINDS:
        raise ExportError(f"unknown destination kind {request.destination.kind!r}")
    node = config.node(request.destination.target) if request.destination.kind == "node" else None
    locations, left_out = _select(request, config)
    extra, missing = _results(request, session, locations, results_builder) if request.include_results else ([], [])
    left_out += missing
    if not locations and not extra:
        raise ExportError("nothing to export: no DICOM objects found for the selection")
    report = ExportReport(uuid.uuid4().hex[:16], request.destination, left_out=left_out)
    try:
        writer = writer_for(request.destination, report.export_id)
    except DestinationError as exc:
        raise ExportError(str(exc)) from None
    deid = Deidentifier(options, KeyedMapping(secret), settings.safe_private)
    entries, studies, patients, totals, links = [], set(), {}, Counter(), set()
    sources = [(f"input #{n + 1}", loc) for n, loc in enumerate(locations)] + \
              [(f"result object #{n + 1}", ds) for n, ds in enumerate(extra)]
    images = deidentify_all(locations, options, secret, settings.safe_private, settings.workers, cancel, deid,
                            writer.spill_folder())
    outcomes = itertools.chain(images, (work(deid, ds) for ds in extra))
    try:
        done = 0
        for (item, source), outcome in zip(sources, _checked(outcomes)):
            progress(done, len(sources))  # objects done so far, left-out ones included
            if cancel is not None and cancel.cancelled:
                break
            done += 1
            if outcome.original_study:
                studies.add(outcome.original_study)
            if isinstance(outcome, Refused):
                shown = str(source) if isinstance(source, FileLocation) else item
                report.left_out.append(LeftOut(item, shown, outcome.reason))
                continue
            keys = (outcome.pseudonym, outcome.study_uid, outcome.series_uid)
            name = writer.add_spilled(keys, outcome.spilled) if outcome.spilled else writer.add(keys, outcome.data)
            links.add(("patient", outcome.pseudonym, outcome.original_patient))
            links.add(("study", outcome.study_uid, outcome.original_study_uid_of_result))
            patients.setdefault(outcome.pseudonym, set()).add(outcome.study_uid)
            totals.update({f"scrubbed.{k}": v for k, v in outcome.scrubbed.items()})
            if outcome.pixel_boxes is not None:
                totals["pixel_text_boxes"] += outcome.pixel_boxes
                totals["pixel_cleaned_instances"] += 1
            entries.append({"file": name, "sop_class": outcome.sop_class, "modality": outcome.modality,
                            "study_uid": outcome.study_uid, "series_uid": outcome.series_uid,
                            "sop_instance_uid": outcome.sop_uid, "actions": outcome.actions,
                            "scrubbed": outcome.scrubbed, "pixel_text_boxes": outcome.pixel_boxes})
        images.close()  # its workers have stopped writing before the writer commits or removes anything
        report.cancelled = done < len(sources)  # only a cancel ends the loop early
        if not report.cancelled:
            progress(len(sources), len(sources))
        manifest = _manifest(report, options, entries, patients, totals)
        report.manifest = manifest
        if report.cancelled:
            writer.abort()
            entries = []
        else:
            failed = [LeftOut(name, name, reason) for name, reason in writer.commit(manifest, node, config, cancel)]
            report.left_out += failed
            sent = {e["file"] for e in entries} - {f.item for f in failed}
            report.written = len(sent)
            manifest["counts"] = {"written": report.written, "left_out": len(report.left_out)}
            manifest["left_out"] = [{"item": lo.item, "reason": lo.reason} for lo in report.left_out]
            writer.keep_manifest(manifest, config)
            if settings.keep_reidentification and report.written:
                from workstation.store.deid_links import DeidLinks

                DeidLinks(session.store).add(report.export_id, sorted(links))
                report.reidentification_kept = True
    except BaseException:
        images.close()
        writer.abort()
        raise
    finally:
        _audit(session, request, report, options, studies)
    return report


def _checked(outcomes: Iterator) -> Iterator:
    """The outcomes, with what stops the whole export turned into ExportError."""
    try:
        yield from outcomes
    except (OcrUnavailable, WorkerDied) as exc:
        raise ExportError(str(exc)) from None


def _select(request: ExportRequest, config: SiteConfig) -> tuple[list[FileLocation], list[LeftOut]]:
    paths = list(request.paths)
    if request.study_uids and not paths:
        from workstation.services.pacs import default_cache

        cache = default_cache(config)
        for uid in request.study_uids:
            folder = cache.study_dir(uid)
            if not folder.is_dir():
                raise ExportError(f"study {uid} is not in the retrieval cache (give its files as PATH)")
            paths.append(str(folder))
    if not paths:
        raise ExportError("nothing selected: give PATHs or --study UIDs")
    locations, left_out = [], []
    for found in iter_locations(paths):
        if isinstance(found, FileLocation):
            locations.append(found)
        elif type(found).__name__ != "Skipped":  # not DICOM at all (a text file beside the images): not listed
            left_out.append(LeftOut(f"input file {len(left_out) + 1}", str(found.location), found.reason))
    if request.study_uids and request.paths:
        wanted = set(request.study_uids)
        locations = [loc for loc in locations if _study_of(loc) in wanted]
    return locations, left_out


def _study_of(location: FileLocation) -> str:
    try:
        with open_location(location) as handle:
            ds = pydicom.dcmread(handle, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        return str(ds.get("StudyInstanceUID", ""))
    except Exception:  # noqa: BLE001 - unreadable: not part of the selection
        return ""


def _results(request: ExportRequest, session, locations: list[FileLocation],
             builder) -> tuple[list[pydicom.Dataset], list[LeftOut]]:
    """Our own objects (AI result SR, review SR, GSPS, map) for the selected series with stored runs."""
    if builder is None:
        builder = _build_results
    try:
        return list(builder(session, locations)), []
    except Exception as exc:  # noqa: BLE001 - the images still go; the report says what is missing and why
        return [], [LeftOut("result objects", "the stored AI results and reviews",
                            f"could not be built: {type(exc).__name__}: {exc}")]


def _build_results(session, locations: list[FileLocation]) -> list[pydicom.Dataset]:
    from workstation.dicom.scan import scan_paths
    from workstation.services.results_build import NothingToBuild, build_for_series

    if not locations or session is None:
        return []
    catalog = scan_paths(sorted({loc.path for loc in locations}))
    made = []
    for series in sorted({d.series.series_instance_uid for d in catalog.display_sets}):
        if not session.store.inference_runs(series):
            continue
        try:
            built = build_for_series(session.store, series, catalog)
        except NothingToBuild:
            continue
        comments = [e.comment for e in session.store.feedback(series) if e.comment.strip()]
        for obj in built:
            plain = pydicom.dcmread(BytesIO(encode(obj.dataset)))  # highdicom's types refuse plain items and edits
            if obj.kind == "review-sr" and comments:
                _add_comments(plain, comments)
            made.append(plain)
    return made


def _add_comments(sr: pydicom.Dataset, comments: list[str]) -> None:
    """The readers' comments as TEXT items (DCM 121106 Comment) under the review SR's root, so that they go out
    with it, scrubbed like any SR text (they are free text: names, numbers, dates may be in them)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    for comment in comments:
        name = Dataset()
        name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "121106", "DCM", "Comment"
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
        item.ConceptNameCodeSequence = Sequence([name])
        item.TextValue = comment
        sr.ContentSequence.append(item)


@functools.lru_cache(maxsize=1)
def _tesseract_version() -> str:
    try:
        done = subprocess.run(["tesseract", "--version"], capture_output=True, timeout=10, check=False)
        return (done.stdout or done.stderr).decode(errors="replace").splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "not installed"


def _manifest(report: ExportReport, options: DeidOptions, entries: list[dict], patients: dict, totals: Counter) -> dict:
    return {
        "format": FORMAT, "export_id": report.export_id,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "profile": PROFILE, "table": TABLE_EDITION, "options": options.names(),
        "codes": [{"value": v, "scheme": "DCM", "meaning": m} for v, m in options.codes(options.clean_pixel_data)],
        "mapping": "HMAC-SHA-256 under the site secret: UIDs as 2.25.<128-bit>, patients as P-<code>, "
                   "one date shift per patient",
        "tools": {"workstation": __version__, "pydicom": pydicom.__version__, "tesseract": _tesseract_version()},
        "destination": report.destination.describe(),
        "patients": [{"pseudonym": p, "studies": sorted(s)} for p, s in sorted(patients.items())],
        "summary": dict(sorted(totals.items())),
        "instances": entries,
    }


def _audit(session, request: ExportRequest, report: ExportReport, options: DeidOptions, studies: set[str]) -> None:
    outcome = Outcome.SUCCESS if report.exit_code == 0 else Outcome.MINOR_FAILURE
    text = "cancelled" if report.cancelled else (f"{len(report.left_out)} left out" if report.left_out else "")
    session.audit.record("export", next(iter(sorted(studies)), ""), outcome, text, export_id=report.export_id,
                         instances=report.written, left_out=len(report.left_out), profile=PROFILE,
                         options=options.names(), destination=request.destination.describe(),
                         reidentification_kept=report.reidentification_kept,
                         studies=sorted(s for s in studies if s),
                         manifest_sha256=hashlib.sha256(json.dumps(report.manifest, sort_keys=True).encode()).hexdigest())


__all__ = ["ConfigError", "Destination", "ExportError", "ExportRefused", "ExportReport", "ExportRequest", "LeftOut",
           "check_role", "export_deidentified", "reidentify", "site_options", "site_secret"]
