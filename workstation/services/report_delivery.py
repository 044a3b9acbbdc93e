"""Use case "report a signed-off review": draft, edit, finalise, and deliver to the RIS (HL7) and FHIR.

A draft needs a sign-off in force (a reopened review has none) and the study's
images (positions, HU); show and send need only the store. Every version is an
append-only store entry with its audit entry; a final version is queued once
per destination with its message bytes and control ID, then delivered: an ACK
AA (or HTTP 2xx) ends it, AE/AR (4xx) is kept for a user's retry, no answer is
retried with backoff. Audit entries name the destination and control ID, never
the patient.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import ssl
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import keyring
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

from workstation.core.audit import AuditEvent, Outcome
from workstation.core.review import Action
from workstation.core.roles import PermissionDenied
from workstation.core.site import SiteConfig
from workstation.core.study import Catalog
from workstation.dicom.sources import open_location
from workstation.reports import hl7, mllp
from workstation.reports.draft import REPORTED_STATES, Identifiers, ReportDraft, ReportFinding, render_text
from workstation.reports.estimate import SliceGeometry, estimate
from workstation.reports.fhir import build_bundle, classify
from workstation.services.results_build import NothingToBuild, display_set_for_run, review_context
from workstation.store.database import Store, StoredRun, now_utc
from workstation.store.report_store import (
    DELIVERED, QUEUED, REJECTED, RETRYING, ReportSend, ReportStore, ReportVersion,
)

log = logging.getLogger(__name__)
FORMATS = ("hl7", "fhir")
FIRST_RETRY_S = 30.0
FHIR_TOKEN_SERVICE = "workstation-fhir"


class ReportError(RuntimeError):
    """Why a report cannot be drafted, finalised or queued (said to the user as is)."""


@dataclass(frozen=True)
class Delivery:
    send_id: str
    format: str
    destination: str
    control_id: str
    state: str
    answer: str
    reason: str


class ReportService:
    def __init__(self, config: SiteConfig, store: Store, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self.config, self.store, self.reports = config, store, ReportStore(store)
        self.backend = backend

    # ----- drafting
    def signed_run(self, study_uid: str) -> StoredRun:
        """The study's newest run whose review is signed off now."""
        for run in self.store.study_runs(study_uid):
            if review_context(self.store, run) is not None:
                return run
        raise ReportError("no signed-off review for this study: sign off the AI review first")

    def draft(self, study_uid: str, catalog: Catalog) -> ReportVersion:
        """A new draft from the sign-off in force, measured on the study's images."""
        self._require()
        run = self.signed_run(study_uid)
        draft = build_draft(self.store, run, catalog)
        return self.reports.add_version("draft", study_uid, run.series_instance_uid, run.run_id, draft.signoff_entry_id,
                                        render_text(draft), draft.structured(), asdict(draft.identifiers),
                                        self._event("report.draft", study_uid, draft.signoff_entry_id))

    def latest(self, study_uid: str) -> ReportVersion | None:
        versions = self.reports.versions(study_uid)
        return versions[-1] if versions else None

    def edit(self, study_uid: str, text: str) -> ReportVersion:
        return self._new_version("edit", study_uid, text)

    def finalise(self, study_uid: str, text: str | None = None) -> ReportVersion:
        """The final text (the latest version's unless given); refused when the sign-off it came from is not in force."""
        return self._new_version("final", study_uid, text)

    def _new_version(self, kind: str, study_uid: str, text: str | None) -> ReportVersion:
        self._require()
        base = self.latest(study_uid)
        if base is None:
            raise ReportError("no report draft for this study yet")
        if kind == "final" and base.kind == "final" and (text is None or text == base.text):
            return base
        run = self.signed_run(study_uid)
        signoff = review_context(self.store, run)
        if run.run_id != base.run_id or signoff is None or signoff.signoff_entry_id != base.signoff_entry_id:
            raise ReportError("the review was reopened or signed off again since this draft: make a new draft")
        final_text = base.text if text is None else text
        if not final_text.strip():
            raise ReportError("the report text is empty")
        return self.reports.add_version(kind, study_uid, base.series_instance_uid, base.run_id, base.signoff_entry_id,
                                        final_text, base.structured, base.identifiers,
                                        self._event(f"report.{kind}", study_uid, base.signoff_entry_id,
                                                    text_sha256=hashlib.sha256(final_text.encode()).hexdigest()))

    # ----- queueing and delivery
    def queue(self, study_uid: str, formats: tuple[str, ...] = FORMATS) -> list[ReportSend]:
        """Queue the final version for each configured destination (once each; an older version's unsent
        messages are superseded). A version sent before and corrected later goes as a correction."""
        version = self.latest(study_uid)
        if version is None or version.kind != "final":
            raise ReportError("finalise the report before sending it")
        corrected = any(s.state == DELIVERED for s in self.reports.sends(study_uid))
        draft = ReportDraft.from_structured(version.structured, Identifiers(**version.identifiers))
        queued = []
        for fmt in formats:
            destination = self.destination(fmt)
            if destination is None:
                continue
            existing = [s for s in self.reports.sends(study_uid) if s.version_id == version.version_id
                        and s.format == fmt and s.destination == destination]
            if existing:
                queued.append(existing[0])
                continue
            control_id = uuid.uuid4().hex[:20].upper()
            if fmt == "hl7":
                data = hl7.build_oru(draft, version.text, control_id, self.config.delivery.ris, corrected=corrected,
                                     signed_at_utc=draft.signed_at_utc)
            else:
                data = build_bundle(draft, version.text, version.version_id, corrected=corrected,
                                    signed_at_utc=draft.signed_at_utc, review_sr_uid=self._review_sr(version))
            queued.append(self.reports.queue(version, fmt, destination, control_id, data))
        if not queued:
            raise ReportError("no report destination configured ([ris] or [fhir] in the site file)")
        return queued

    def retry_rejected(self, study_uid: str) -> int:
        """A user's retry of messages the receiver refused: the same bytes and control ID go again."""
        rejected = self.reports.sends(study_uid, (REJECTED,))
        for send in rejected:
            self.reports.update(send.send_id, state=QUEUED, next_attempt_utc="")
        return len(rejected)

    def deliver(self, study_uid: str | None = None, now: datetime | None = None, due_only: bool = False) -> list[Delivery]:
        """Try every queued (and, when due or asked, retrying) message once."""
        moment = now or datetime.now(timezone.utc)
        results = []
        for send in self.reports.sends(study_uid, (QUEUED, RETRYING)):
            if due_only and send.next_attempt_utc and send.next_attempt_utc > moment.isoformat():
                continue
            results.append(self._deliver_one(send, moment))
        return results

    def destination(self, fmt: str) -> str | None:
        delivery = self.config.delivery
        if fmt == "hl7":
            return None if delivery.ris is None else f"mllp://{delivery.ris.host}:{delivery.ris.port}"
        if fmt == "fhir":
            if delivery.fhir is None:
                return None
            return delivery.fhir.url or f"folder:{delivery.fhir.folder}"
        raise ReportError(f"unknown report format {fmt!r} (hl7 or fhir)")

    def _deliver_one(self, send: ReportSend, moment: datetime) -> Delivery:
        data = self.reports.data(send.send_id)
        attempts = send.attempts + 1
        try:
            state, answer, reason = self._hl7(send, data) if send.format == "hl7" else self._fhir(send, data)
        except OSError as exc:  # the FHIR folder could not be written: keep and retry
            state, answer, reason = RETRYING, "", f"cannot write: {exc.strerror or exc}"
        retry_at = ""
        if state == RETRYING:
            retry_at = (moment + timedelta(seconds=self.backoff(send.format, attempts))).isoformat()
        self.reports.update(send.send_id, state=state, attempts=attempts, answer=answer, reason=reason[:500],
                            next_attempt_utc=retry_at)
        outcome = Outcome.SUCCESS if state == DELIVERED else Outcome.MINOR_FAILURE
        self.store.append(AuditEvent("report.send", now_utc(), {
            "format": send.format, "destination": send.destination, "control_id": send.control_id,
            "report_version_id": send.version_id, "state": state, "answer": answer, "attempt": attempts},
            send.study_instance_uid, outcome, reason[:200]))
        return Delivery(send.send_id, send.format, send.destination, send.control_id, state, answer, reason)

    def _hl7(self, send: ReportSend, data: bytes) -> tuple[str, str, str]:
        ris = self.config.delivery.ris
        if ris is None:
            return RETRYING, "", "[ris] is no longer configured"
        context = None
        if ris.tls:
            context = ssl.create_default_context(cafile=ris.ca_file)
            if ris.cert_file:
                context.load_cert_chain(ris.cert_file, ris.key_file)
        try:
            answer = mllp.send(ris.host, ris.port, data, ris.timeout_s, context)
            ack = hl7.parse_ack(answer)
        except mllp.MllpError as exc:
            return RETRYING, "", str(exc)
        except hl7.Hl7Error as exc:
            return RETRYING, "", str(exc)
        if ack.control_id and ack.control_id != send.control_id:
            return RETRYING, ack.code, f"the ACK names another message ({ack.control_id[:20]})"
        if ack.accepted:
            return DELIVERED, ack.code, ""
        return REJECTED, ack.code, f"{ack.code}: {ack.text or 'refused without a reason'}"

    def _fhir(self, send: ReportSend, data: bytes) -> tuple[str, str, str]:
        fhir = self.config.delivery.fhir
        if fhir is None:
            return RETRYING, "", "[fhir] is no longer configured"
        if fhir.url is None:
            folder = Path(fhir.folder).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=".json")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, folder / f"report-{send.control_id}.json")  # our own name, never a data value
            return DELIVERED, "written", ""
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        if fhir.token_key:
            token = keyring.get_keyring().get_password(FHIR_TOKEN_SERVICE, fhir.token_key) if self.backend is None \
                else self.backend.get_password(FHIR_TOKEN_SERVICE, fhir.token_key)
            if not token:
                return REJECTED, "", f"no FHIR token in the OS keyring under {FHIR_TOKEN_SERVICE}/{fhir.token_key}"
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = httpx.post(fhir.url, content=data, headers=headers, timeout=fhir.timeout_s,
                                  verify=ssl.create_default_context(cafile=fhir.ca_file) if fhir.ca_file else True)
        except httpx.HTTPError as exc:
            return RETRYING, "", f"cannot reach the FHIR server: {exc.__class__.__name__}: {exc}"[:300]
        outcome = classify(response.status_code, response.content)
        state = DELIVERED if outcome.delivered else RETRYING if outcome.retry else REJECTED
        return state, str(response.status_code), outcome.text

    def backoff(self, fmt: str, attempts: int) -> float:
        settings = self.config.delivery.ris if fmt == "hl7" else self.config.delivery.fhir
        ceiling = min(settings.max_backoff_s if settings else 3600.0, FIRST_RETRY_S * 2 ** max(attempts - 1, 0))
        return random.uniform(ceiling / 2, ceiling)

    def _review_sr(self, version: ReportVersion) -> str:
        from workstation.store.result_queue import ResultQueue

        for item in ResultQueue(self.store).items(version.study_instance_uid):
            if item.kind == "review-sr" and item.run_id == version.run_id and item.signoff_entry_id == version.signoff_entry_id:
                return item.sop_instance_uid
        return ""

    def _require(self) -> None:
        user = self.store.identity.user
        if not user.may(Action.SIGNOFF.permission):
            self.store.append(AuditEvent("access.denied", now_utc(), {"permission": Action.SIGNOFF.permission.value,
                                                                      "reason": "report refused"}, "", Outcome.MINOR_FAILURE,
                                         "report refused"))
            raise PermissionDenied(user, Action.SIGNOFF.permission)

    def _event(self, kind: str, study_uid: str, signoff_entry_id: str, **details) -> AuditEvent:
        return AuditEvent(kind, now_utc(), {"signoff_entry_id": signoff_entry_id, **details}, study_uid)


def build_draft(store: Store, run: StoredRun, catalog: Catalog) -> ReportDraft:
    """The draft's values: every kept finding measured on its key slice (the reader's diameter when there is one)."""
    review = review_context(store, run)
    if review is None:
        raise ReportError("the review of this run is not signed off")
    heatmap = store.heatmap(run.run_id)
    try:
        display_set = display_set_for_run(catalog, run, None if heatmap is None else heatmap.shape[0])
    except (NothingToBuild, ValueError) as exc:
        raise ReportError(str(exc)) from None
    measured = _reader_diameters(store, run.series_instance_uid)
    findings, identifiers = [], None
    for state in sorted(review.final_states, key=lambda s: int(s["number"])):
        if state["state"] not in REPORTED_STATES:
            continue
        geometry = state["geometry"]
        frame = int(geometry["frame_index"])
        if not 0 <= frame < len(display_set.frames):
            raise ReportError(f"finding {state['number']} lies on slice {frame + 1}, outside the series")
        ds = _read(display_set.frames[frame].instance.location)
        identifiers = identifiers or _identifiers(ds)
        pixels = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)
        box = tuple(float(v) for v in geometry["box_px"])
        heat = None if heatmap is None else heatmap[frame].astype(np.float64)
        value = estimate(box, pixels, _geometry(ds), heat, _measured_for(measured, state["finding_id"], frame, box))
        findings.append(ReportFinding(
            int(state["number"]), str(state["label"]), str(state["state"]), frame,
            int(ds.InstanceNumber) if "InstanceNumber" in ds and ds.InstanceNumber is not None else None,
            str(ds.SOPInstanceUID), value.center_mm, value.side, value.long_mm, value.short_mm, value.source,
            value.mean_hu, "" if state["state"] == "added" else f"{run.model.name} {run.model.version}",
            None if state.get("score") is None else float(state["score"])))
    if identifiers is None:
        identifiers = _identifiers(_read(display_set.frames[0].instance.location))
    return ReportDraft(run.study_instance_uid, run.series_instance_uid, run.run_id, review.signoff_entry_id,
                       review.signed_by, review.signed_at_utc, run.model.name, run.model.version, tuple(findings),
                       identifiers)


def _read(location) -> pydicom.Dataset:
    with open_location(location) as stream:
        return pydicom.dcmread(stream)


def _geometry(ds: pydicom.Dataset) -> SliceGeometry:
    try:
        position = tuple(float(v) for v in ds.ImagePositionPatient)
        orientation = tuple(float(v) for v in ds.ImageOrientationPatient)
        spacing = tuple(float(v) for v in ds.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        raise ReportError("the finding's image has no usable position, orientation or pixel spacing") from None
    if len(position) != 3 or len(orientation) != 6 or len(spacing) != 2 or min(spacing) <= 0:
        raise ReportError("the finding's image has no usable position, orientation or pixel spacing")
    return SliceGeometry(position, orientation[:3], orientation[3:], spacing)


def _identifiers(ds: pydicom.Dataset) -> Identifiers:
    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return "" if value is None else str(value).strip()

    return Identifiers(text("PatientID"), text("IssuerOfPatientID"), text("PatientName"), text("PatientBirthDate"),
                       text("PatientSex").upper(), text("AccessionNumber"), text("StudyDate"), text("StudyTime"),
                       text("StudyDescription"), text("Modality"))


def _reader_diameters(store: Store, series_uid: str) -> list:
    """The reader's nodule-diameter measurements in force on the series (in mm), if measurements are kept."""
    try:
        from workstation.core.measure_log import current
        from workstation.store.measurements import MeasurementStore
    except ImportError:  # pragma: no cover - measurements ship with the same version
        return []
    return [s.measurement for s in current(MeasurementStore(store).entries(series_uid))
            if s.measurement.kind == "diameter" and s.measurement.unit == "mm"]


def _measured_for(measurements: list, finding_id: str, frame: int, box: tuple) -> tuple[float, float] | None:
    """The diameter measured for this finding ("Measure" on its box), else one drawn on its slice inside its box."""
    for m in measurements:
        if m.finding_id == finding_id and "long" in m.values:
            return float(m.values["long"]), float(m.values["short"])
    c0, r0, c1, r1 = box
    for m in measurements:
        xs, ys = [p[0] for p in m.points], [p[1] for p in m.points]
        centre = (sum(xs) / len(xs), sum(ys) / len(ys))
        if m.frame_index == frame and c0 <= centre[0] <= c1 and r0 <= centre[1] <= r1 and "long" in m.values:
            return float(m.values["long"]), float(m.values["short"])
    return None
