"""Reading back objects we did not write, and objects that cannot be used: a Problem each, never an exception."""

from __future__ import annotations

import copy
from io import BytesIO

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from workstation.results import read_results
from workstation.results.regions import outline_mm


def vendor_sr(sources, groups, observer, three_d=True):
    """An SR as another highdicom-based tool would write it."""
    report = hd.sr.MeasurementReport(observation_context=hd.sr.ObservationContext(**observer),
                                     procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=groups)
    cls = hd.sr.Comprehensive3DSR if three_d else hd.sr.ComprehensiveSR
    return cls(evidence=sources, content=report, series_instance_uid=hd.UID(), series_number=77,
               sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Other Vendor")


def person(name):
    return {"observer_person_context": hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=name))}


def test_a_circle_from_another_vendor_becomes_its_bounding_box_with_the_probability(sources):
    image = sources[5]
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="lesion 1"),
        referenced_region=hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.CIRCLE, graphic_data=np.array([[50.0, 60.0], [58.0, 60.0]]),
            source_image=hd.sr.SourceImageForRegion(image.SOPClassUID, image.SOPInstanceUID)),
        finding_type=codes.SCT.Lesion,
        measurements=[hd.sr.Measurement(name=codes.DCM.Probability, value=0.42, unit=codes.UCUM.NoUnits)])
    sr = vendor_sr(sources, [group], person("Smith^Anna"), three_d=False)
    (result,), problems = read_results([sr])
    assert problems == []
    (finding,) = result.findings
    assert (result.kind, result.source) == ("sr", "Smith, Anna")
    assert finding.box_px == pytest.approx((42.0, 52.0, 58.0, 68.0))
    assert (finding.label, finding.score, finding.tracking_id, finding.sop_instance_uid) == (
        "lesion", pytest.approx(0.42), "lesion 1", image.SOPInstanceUID)


def test_a_region_only_in_patient_mm_is_placed_on_its_image_when_the_images_are_at_hand(sources):
    image = sources[9]
    outline = np.array([[30, 40], [50, 40], [50, 55], [30, 55], [30, 40]], dtype=np.float32)
    algorithm = hd.sr.AlgorithmIdentification(name="other-ai", version="2.1")
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="n1"),
        referenced_region=hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POLYGON,
                                              graphic_data=outline_mm(image, outline),
                                              frame_of_reference_uid=image.FrameOfReferenceUID),
        finding_type=codes.SCT.Nodule, algorithm_id=algorithm)
    device = {"observer_device_context": hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="box"))}
    sr = vendor_sr(sources, [group], device)
    (result,), _ = read_results([sr] + sources)
    (finding,) = result.findings
    assert result.source == "other-ai 2.1" and finding.sop_instance_uid == image.SOPInstanceUID
    assert finding.box_px == pytest.approx((30, 40, 50, 55), abs=1e-3)
    (alone,), _ = read_results([sr])  # without the images there is nowhere to draw it: said, not guessed
    assert alone.findings == () and "no region that can be placed" in alone.notes[0]


@pytest.fixture
def objects(written):
    return {kind: pydicom.dcmread(path) for kind, path in written.items()}


def truncated(path, fraction):
    data = open(path, "rb").read()
    return pydicom.dcmread(BytesIO(data[:int(len(data) * fraction)]))


def test_damaged_and_foreign_objects_become_problems_and_the_good_ones_still_read(objects, written, sources):
    wrong_template = copy.deepcopy(objects["ai-sr"])
    wrong_template.SOPInstanceUID = "1.2.3.1"
    wrong_template.ContentTemplateSequence[0].TemplateIdentifier = "2000"
    wrong_template.ConceptNameCodeSequence[0].CodeValue = "18748-4"
    wrong_template.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    text_sr = copy.deepcopy(objects["ai-sr"])
    text_sr.SOPClassUID, text_sr.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.11", "1.2.3.2"
    no_content = copy.deepcopy(objects["review-sr"])
    no_content.SOPInstanceUID = "1.2.3.3"
    del no_content.ContentSequence
    bad_graphic = copy.deepcopy(objects["gsps"])
    bad_graphic.SOPInstanceUID = "1.2.3.4"
    bad_graphic.GraphicAnnotationSequence[0].GraphicObjectSequence[0].GraphicData = [1.0, 2.0, 3.0]
    no_mapping = copy.deepcopy(objects["pmap"])
    no_mapping.SOPInstanceUID = "1.2.3.5"
    del no_mapping.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence
    short_pixels = copy.deepcopy(objects["pmap"])
    short_pixels.SOPInstanceUID = "1.2.3.6"
    short_pixels.PixelData = short_pixels.PixelData[:1000]
    broken = [truncated(written["ai-sr"], f) for f in (0.3, 0.6, 0.9)] + [
        wrong_template, text_sr, no_content, bad_graphic, no_mapping, short_pixels]
    results, problems = read_results(broken + list(objects.values()) + sources)
    assert sorted(r.kind for r in results) == ["gsps", "pmap", "review-sr", "sr"]
    by_uid = {p.sop_instance_uid: p.reason for p in problems}
    assert len(problems) == len(broken) and len(by_uid) == 7  # the three truncated copies share their UID
    assert "not a TID 1500 measurement report (template 2000)" in by_uid["1.2.3.1"]
    assert "not measurement reports" in by_uid["1.2.3.2"]
    assert by_uid["1.2.3.4"].startswith("presentation state not shown")
    assert "no real-world value mapping" in by_uid["1.2.3.5"]
    assert by_uid["1.2.3.6"].startswith("parametric map not shown")
    assert all("\n" not in p.reason and len(p.reason) < 240 for p in problems)


def test_images_and_other_objects_are_passed_over_silently(sources):
    assert read_results(sources) == ([], [])
    assert read_results([pydicom.Dataset()]) == ([], [])
