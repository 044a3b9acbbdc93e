"""`workstation scan`: the workstation.scan/1 JSON document, the text report and exit codes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_data import BAD_FILES, DEMO_SLICES, bad_folder, demo_study, only_bad_folder  # noqa: F401

from workstation.cli import main
from workstation.demo import DemoStudy


@pytest.fixture(autouse=True)
def _restore_warning_capture():
    """main() routes warnings to logging for the whole process; undo that after each test."""
    yield
    logging.captureWarnings(False)


def run_scan(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["scan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _series(report: dict) -> list[dict]:
    return [s for p in report["patients"] for st in p["studies"] for s in st["series"]]


def test_json_report_of_the_demo_study(capsys, demo_study: DemoStudy) -> None:
    code, out, _ = run_scan(capsys, str(demo_study.directory), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["format"] == "workstation.scan/1"
    assert report["roots"] == [str(demo_study.directory)]
    assert report["files_scanned"] == report["images"] == DEMO_SLICES
    assert report["unreadable"] == []
    [patient] = report["patients"]
    assert patient["patient_name"] == "DEMO^PHANTOM" and patient["patient_id"] == "DEMO-0007"
    [study] = patient["studies"]
    assert study["study_instance_uid"] == demo_study.study_instance_uid
    assert study["study_description"] == "CT CHEST DEMO (SYNTHETIC)" and study["study_date"] == "20240101"
    [series] = study["series"]
    assert series["series_instance_uid"] == demo_study.series_instance_uid
    assert series["modality"] == "CT"
    assert series["description"] == "Chest CT phantom 2.5 mm"
    assert series["series_number"] == 2
    assert series["instance_count"] == series["frame_count"] == DEMO_SLICES
    assert (series["rows"], series["columns"]) == (256, 256)
    assert series["slice_spacing_mm"] == pytest.approx(2.5)
    assert series["warnings"] == [] and series["part"] == ""


def test_json_lists_unreadable_files_with_reasons(capsys, bad_folder: Path) -> None:
    code, out, _ = run_scan(capsys, str(bad_folder), "--json")
    assert code == 0  # something could be read
    report = json.loads(out)
    unreadable = {Path(u["path"]).name: u["reason"] for u in report["unreadable"]}
    assert set(unreadable) == set(BAD_FILES)
    for name, words in BAD_FILES.items():
        assert all(word.lower() in unreadable[name].lower() for word in words)
    assert all(set(u) == {"path", "reason"} for u in report["unreadable"])
    modalities = sorted(s["modality"] for s in _series(report))
    assert modalities == ["CT", "CT", "MR"]
    assert report["images"] == sum(s["instance_count"] for s in _series(report))


def test_nothing_readable_exits_1(capsys, only_bad_folder: Path) -> None:
    code, out, _ = run_scan(capsys, str(only_bad_folder), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["patients"] == [] and report["images"] == 0
    assert len(report["unreadable"]) == len(BAD_FILES)


def test_nonexistent_path_exits_1_and_is_listed(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    code, out, _ = run_scan(capsys, str(missing), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["unreadable"] == [{"path": str(missing), "reason": "no such file or folder"}]


def test_missing_path_next_to_a_good_one_still_exits_0(capsys, demo_study: DemoStudy, tmp_path: Path) -> None:
    code, out, _ = run_scan(capsys, str(demo_study.files[0]), str(tmp_path / "gone.dcm"), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["images"] == 1 and len(report["unreadable"]) == 1


def test_text_report_lists_problems_without_traceback(capsys, bad_folder: Path, demo_study: DemoStudy) -> None:
    code, out, err = run_scan(capsys, str(bad_folder))
    assert code == 0
    assert "Traceback" not in out + err
    assert out.startswith(f"Scanned {len(BAD_FILES) + 9} file(s)")
    assert f"{len(BAD_FILES)} unreadable" in out
    assert "Patient DEMO^PHANTOM" in out and "CT CHEST DEMO (SYNTHETIC)" in out
    assert "Unreadable files (skipped):" in out
    for name in BAD_FILES:
        [line] = [line for line in out.splitlines() if line.strip().startswith(str(bad_folder / name) + ":")]
        assert line.split(": ", 1)[1].strip()  # a reason follows the path
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_text_report_shows_warnings(capsys, demo_study: DemoStudy) -> None:
    some = [str(p) for i, p in enumerate(demo_study.files) if i not in (10, 11, 12)]
    code, out, _ = run_scan(capsys, *some)
    assert code == 0
    assert "warning: irregular slice spacing" in out
    assert f"{DEMO_SLICES - 3} instance(s), {DEMO_SLICES - 3} frame(s)" in out


def test_usage_error_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan"])
    assert exc.value.code == 2


def test_installed_entry_point(demo_study: DemoStudy, bad_folder: Path, only_bad_folder: Path) -> None:
    script = Path(sys.executable).parent / "workstation"
    if not script.exists():
        pytest.skip("workstation console script not installed in this environment")
    result = subprocess.run([str(script), "scan", str(demo_study.directory), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "workstation.scan/1"
    assert _series(report)[0]["instance_count"] == DEMO_SLICES
    assert "Traceback" not in result.stderr
    bad = subprocess.run([str(script), "scan", str(only_bad_folder)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "Unreadable files (skipped):" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def _as_other_series(paths: list[Path], **changes) -> None:
    import pydicom
    from pydicom.uid import generate_uid

    series_uid = generate_uid()
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, 9
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("changes", [
    {"StudyTime": "101500", "StudyDescription": "edited"},
    {"PatientID": "OTHER-ID"},  # inconsistent data: the study still appears once, never an empty patient
])
def test_each_study_appears_once(capsys, demo_study: DemoStudy, tmp_path: Path, changes: dict) -> None:
    import shutil

    copies = []
    for path in demo_study.files[:6]:
        copies.append(tmp_path / path.name)
        shutil.copyfile(path, copies[-1])
    _as_other_series(copies[:2], **changes)
    code, out, _ = run_scan(capsys, str(tmp_path), "--json")
    assert code == 0
    report = json.loads(out)
    studies = [st for p in report["patients"] for st in p["studies"]]
    assert [st["study_instance_uid"] for st in studies] == [demo_study.study_instance_uid]
    assert all(p["studies"] for p in report["patients"])
    assert sorted(s["instance_count"] for s in studies[0]["series"]) == [2, 4]


def test_file_names_that_are_not_utf8_are_printed_escaped(capsys, demo_study: DemoStudy, tmp_path: Path) -> None:
    """A name from another system's encoding (bytes 0xE9, 0xFF) used to end the text report in UnicodeEncodeError."""
    import os

    folder = tmp_path / "latin1"
    folder.mkdir()
    good = folder / os.fsdecode(b"s\xe9rie-\xff.dcm")
    good.write_bytes(demo_study.files[0].read_bytes())
    (folder / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"notes")
    code, out, err = run_scan(capsys, str(folder))
    assert code == 0 and "Traceback" not in out + err
    assert "1 image instance(s), 1 unreadable" in out
    assert "caf\\xe9.txt: not a DICOM file" in out
    code, out, _ = run_scan(capsys, str(folder), "--json")
    assert code == 0 and json.loads(out)["unreadable"][0]["path"].endswith("caf\udce9.txt")
    script = Path(sys.executable).parent / "workstation"
    if script.exists():  # the real stdout (strict UTF-8), not pytest's capture
        done = subprocess.run([str(script), "scan", str(folder)], capture_output=True, timeout=60)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
        assert b"caf\\xe9.txt" in done.stdout
