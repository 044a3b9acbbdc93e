"""Measurements as stored entries (services.measurements over a real encrypted store): save, reopen, undo, rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
from keyrings.alt.file import PlaintextKeyring

from workstation.core.measure_log import MeasureAction
from workstation.core.roles import PermissionDenied, Role, User
from workstation.services.measurements import FrameInfo, MeasurementService, MeasurementSession, SeriesInfo
from workstation.store.database import Identity, Store

SERIES = SeriesInfo("1.2.study", "1.2.series", "CT",
                    tuple(FrameInfo(f"1.2.sop.{i}", (0.5, 2.0), "PixelSpacing") for i in range(6)))
IMAGE = np.arange(40 * 50, dtype=np.int16).reshape(40, 50) - 1000


@pytest.fixture
def backend(tmp_path):
    keyring = PlaintextKeyring()
    keyring.file_path = str(tmp_path / "keyring.cfg")
    return keyring


def open_store(tmp_path, backend, login="amy", role=Role.RADIOLOGIST) -> Store:
    return Store.open(tmp_path / "store.sqlite", Identity(User(login, role), "ws-07"), backend)


def session(store) -> MeasurementSession:
    return MeasurementSession(MeasurementService(store), SERIES)


def test_measurements_are_saved_with_audit_and_shown_again_after_reopening(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        work = session(store)
        length = work.add("length", 2, [(0, 0), (10, 0)])
        roi = work.add("rectangle", 3, [(10, 10), (20, 14)], IMAGE)
        assert length.measurement.values["length"] == pytest.approx(20.0) and length.measurement.unit == "mm"
        window = IMAGE[10:14, 10:20]
        assert roi.measurement.values["mean"] == pytest.approx(window.mean()) and "HU" in roi.measurement.text
        assert roi.measurement.sop_instance_uid == "1.2.sop.3" and roi.number == 2
        kinds = [e.kind for e in store.audit_entries() if e.kind.startswith("measurement.")]
        assert kinds == ["measurement.add", "measurement.add"]
        audit = store.audit_entries()[-1]
        assert audit.details["measurement_id"] == roi.measurement.measurement_id and "amy" == audit.user
        assert store.verify().ok
    with open_store(tmp_path, backend) as store:
        shown = session(store).measurements()
        assert [s.measurement.kind for s in shown] == ["length", "rectangle"]
        assert shown[1].measurement.values == roi.measurement.values and shown[0].user == "amy"


def test_edit_delete_undo_redo_are_entries_and_the_state_is_their_fold(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        work = session(store)
        first = work.add("length", 1, [(0, 0), (0, 10)])
        mid = first.measurement.measurement_id
        edited = work.edit(mid, [(0, 0), (0, 20)])
        assert edited.measurement.values["length"] == pytest.approx(10.0)
        work.delete(mid)
        assert work.measurements() == []
        assert work.undo().action is MeasureAction.DELETE
        assert work.measurements()[0].measurement.values["length"] == pytest.approx(10.0)
        work.undo()  # the edit
        assert work.measurements()[0].measurement.values["length"] == pytest.approx(5.0)
        work.redo()
        assert work.measurements()[0].measurement.values["length"] == pytest.approx(10.0)
        actions = [e.action.value for e in work.service._log.entries(SERIES.series_instance_uid)]
        assert actions == ["add", "edit", "delete", "undo", "undo", "redo"]
        with pytest.raises(Exception, match="append-only"):
            store._db.execute("DELETE FROM measurements")  # the trigger refuses
        assert len(work.service._log.entries(SERIES.series_instance_uid)) == 6


def test_diameter_keeps_its_short_axis_perpendicular_and_saves_lung_rads_values(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        work = session(store)
        shown = work.add("diameter", 0, [(10, 10), (20, 10), (14, 5), (16, 15)])
        a, b, c, d = shown.measurement.points
        assert c[0] == pytest.approx(d[0])  # perpendicular to a horizontal long axis, in mm
        values = shown.measurement.values
        assert values["long"] == pytest.approx(20.0) and values["short"] == pytest.approx(5.0)
        assert values["mean"] == 12.5


def test_another_readers_measurement_is_shown_but_not_theirs_to_change(tmp_path, backend):
    with open_store(tmp_path, backend, "amy") as store:
        mid = session(store).add("length", 0, [(0, 0), (4, 0)]).measurement.measurement_id
    with open_store(tmp_path, backend, "bob", Role.REVIEWER) as store:
        work = session(store)
        assert [s.user for s in work.measurements()] == ["amy"] and not work.mine(mid)
        with pytest.raises(ValueError, match="amy's"):
            work.delete(mid)
        assert work.undo_target() is None
        denied = [e for e in store.audit_entries() if e.kind == "access.denied"]
        assert denied and "refused" in denied[-1].outcome_text


def test_a_user_without_a_role_writes_nothing(tmp_path, backend):
    with open_store(tmp_path, backend, "eve", None) as store:
        work = session(store)
        with pytest.raises(PermissionDenied):
            work.add("length", 0, [(0, 0), (4, 0)])
        assert store._query("SELECT count(*) FROM measurements")[0][0] == 0


def test_without_a_store_measurements_live_in_memory_with_the_same_undo(tmp_path):
    service = MeasurementService(None)
    assert not service.saved
    work = MeasurementSession(service, SERIES)
    mid = work.add("angle", 0, [(10, 0), (0, 0), (0, 10)]).measurement.measurement_id
    assert work.get(mid).measurement.text == "90.0°"
    work.undo()
    assert work.measurements() == []


def test_propose_from_a_heatmap_and_from_the_image(tmp_path):
    work = MeasurementSession(MeasurementService(None), SERIES)
    heat = np.zeros((40, 50), np.uint8)
    heat[18:22, 20:30] = 200
    points, source = work.propose(0, (15, 15, 35, 25), heat, None)
    reading = work.reading("diameter", 0, points)
    assert source == "heatmap" and reading.values["long"] == pytest.approx(20.0, abs=0.6)  # 10 columns of 2 mm
    image = np.full((40, 50), -800, np.int16)
    image[18:22, 20:30] = 30
    points, source = work.propose(0, (15, 15, 35, 25), None, image)
    assert source == "image" and work.reading("diameter", 0, points).values["short"] == pytest.approx(2.0, abs=0.3)
    payload = json.dumps(work.add("diameter", 0, points).measurement.to_dict())
    assert "values" in payload


def test_audit_verify_finds_an_altered_measurement_row(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        work = session(store)
        work.add("length", 0, [(0, 0), (10, 0)])
        assert store.verify().ok
        store._db.execute("DROP TRIGGER measurements_append_only_update")  # someone with the key
        store._db.execute("UPDATE measurements SET payload = replace(payload, '\"length\":20.0', '\"length\":2.0')")
        problem = store.verify().first_problem
        assert problem is not None and problem.kind == "altered" and "measurements row" in problem.message


def test_measurements_follow_their_image_when_the_series_grows_and_stay_off_other_parts(tmp_path, backend):
    with open_store(tmp_path, backend) as store:
        mid = session(store).add("length", 2, [(0, 0), (4, 0)]).measurement.measurement_id
        grown = SeriesInfo(SERIES.study_instance_uid, SERIES.series_instance_uid, "CT",
                           (FrameInfo("1.2.sop.new", (0.5, 2.0), "PixelSpacing"),) + SERIES.frames)
        work = MeasurementSession(MeasurementService(store), grown)
        ((shown, frame),) = work.here()
        assert shown.measurement.measurement_id == mid and frame == 3  # one image arrived before it
        assert work.edit(mid, [(0, 0), (8, 0)]).measurement.frame_index == 3
        other_part = SeriesInfo(SERIES.study_instance_uid, SERIES.series_instance_uid, "CT",
                                tuple(FrameInfo(f"1.2.other.{i}", (0.5, 2.0), "PixelSpacing") for i in range(6)))
        elsewhere = MeasurementSession(MeasurementService(store), other_part)
        assert elsewhere.here() == [] and len(elsewhere.measurements()) == 1
        with pytest.raises(ValueError):
            elsewhere.edit(mid, [(0, 0), (9, 0)])
