"""What both SRs share: a finding as a TID 1410 planar ROI group, the algorithm, the observers, the document.

A TID 1410 group has room for one region (and highdicom, following TID 1419,
allows no coordinates on its measurements), so each finding is two groups with
the same tracking UID: the 2-D box (SCOORD polyline on the image, what viewers
draw) with the score, and the same outline in patient mm (SCOORD3D polygon).
"""

from __future__ import annotations

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes as sr_codes

from workstation.results import codes
from workstation.results.context import (
    MANUFACTURER, MODEL_NAME, SERIES_NUMBERS, SOFTWARE_VERSION, Item, RunContext, copy_source_details, dicom_date_time,
    model_text, series_uid_of, source_of,
)
from workstation.results.regions import box_outline, has_patient_geometry, outline_mm
from workstation.results.tracking import derived_uid, series_uid

Group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations


def algorithm(run: RunContext) -> hd.sr.AlgorithmIdentification:
    """TID 4019: the model by name and version; the weights' sha256 and the run as parameters."""
    return hd.sr.AlgorithmIdentification(
        name=run.model.name, version=run.model.version,
        parameters=[f"weights sha256={run.model.sha256}", f"run={run.run_id}", f"device={run.device}"])


def device_observer(run: RunContext) -> hd.sr.ObserverContext:
    """The model running on this workstation, as the TID 1004 device observer."""
    return hd.sr.ObserverContext(
        observer_type=sr_codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", run.workstation_id, run.model.name, run.model.version),
            name=model_text(run)[:64], manufacturer_name=MANUFACTURER, model_name=run.model.name[:64],
            serial_number=run.workstation_id[:64]))


def roi_groups(run: RunContext, item: Item, algorithm_id: hd.sr.AlgorithmIdentification | None,
               evaluations: list[hd.sr.QualitativeEvaluation] | None = None) -> list[Group]:
    """The finding's 2-D group (polyline on the image, with the score) and, when the image has patient geometry,
    its 3-D twin (the same outline in mm); both carry the finding's tracking UID, type and verdict."""
    source = source_of(run, item.frame_index, item.sop_instance_uid)
    outline = box_outline(item.box_px)
    common = {"tracking_identifier": hd.sr.TrackingIdentifier(uid=item.tracking_uid, identifier=item.tracking_id),
              "finding_type": codes.finding_type(item.label), "algorithm_id": algorithm_id,
              "qualitative_evaluations": evaluations or None}
    measurements = None
    if item.score is not None:
        measurements = [hd.sr.Measurement(name=codes.SCORE, value=round(float(item.score), 6), unit=codes.UNITLESS,
                                          algorithm_id=algorithm_id)]
    groups = [Group(referenced_region=hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=outline,
        source_image=hd.sr.SourceImageForRegion(str(source.SOPClassUID), str(source.SOPInstanceUID))),
        measurements=measurements, **common)]
    if has_patient_geometry(source):
        groups.append(Group(referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=outline_mm(source, outline),
            frame_of_reference_uid=str(source.FrameOfReferenceUID)), **common))
    return groups


def _nothing_found(run: RunContext) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """No finding is a result too; TID 1500 needs a group for it: one TID 1501 group saying "absent"."""
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid("nothing-found", series_uid_of(run), run.model.name, run.run_id), identifier="no findings"),
        algorithm_id=algorithm(run),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.PRESENCE, codes.ABSENT)])


def document(run: RunContext, kind: str, observation: hd.sr.ObservationContext,
             groups: list[Group], moment_utc: str,
             description: str, local_schemes: set[str], **flags) -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR holding one TID 1500 report; evidence: every source image of the series.
    `local_schemes`: our local coding schemes the groups use, declared in Coding Scheme Identification."""
    first = run.sources[0]
    report = hd.sr.MeasurementReport(
        observation_context=observation,
        procedure_reported=codes.procedure_reported(str(getattr(first, "Modality", ""))),
        imaging_measurements=groups or [_nothing_found(run)])
    date, time = dicom_date_time(moment_utc)
    sr = hd.sr.Comprehensive3DSR(
        evidence=run.sources, content=report,
        series_instance_uid=series_uid(series_uid_of(run), run.model.name, run.model.version, kind),
        series_number=SERIES_NUMBERS[kind], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME, software_versions=SOFTWARE_VERSION,
        device_serial_number=run.workstation_id[:64], series_description=description[:64],
        content_date=date, content_time=time, series_date=date, series_time=time,
        coding_schemes=[CodingSchemeIdentificationItem(d, name=codes.SCHEME_NAMES[d],
                                                       responsible_organization=codes.RESPONSIBLE)
                        for d in sorted(local_schemes)] or None,
        **flags)
    copy_source_details(sr, first, image_series=False)
    return sr
