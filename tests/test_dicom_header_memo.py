"""Headers share decoded series attributes only when their raw bytes are identical."""

from __future__ import annotations

from workstation.core.study import FileLocation
from workstation.dicom.header import read_header

from fixtures_data import copy_series, demo_study, rewrite  # noqa: F401 - session fixture


def test_each_slice_keeps_its_own_values(demo_study, tmp_path):
    files = copy_series(demo_study, tmp_path)[:4]
    rewrite(files[1], WindowCenter=[50, -500], WindowWidth=[350, 1400], PixelSpacing=[0.5, 0.6])
    rewrite(files[2], SeriesDescription="Other recon", PatientName="OTHER^NAME", RescaleIntercept=-1000)
    rewrite(files[3], SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen")
    first, second, third, fourth = (read_header(FileLocation(str(f))) for f in files)
    spacing = demo_study.phantom.pixel_spacing_mm
    assert (first.window_centers, first.pixel_spacing) == ((40.0, -600.0), (spacing, spacing))
    assert (second.window_centers, second.window_widths, second.pixel_spacing) == ((50.0, -500.0), (350.0, 1400.0), (0.5, 0.6))
    assert first.series.description == "Chest CT phantom 2.5 mm" and third.series.description == "Other recon"
    assert third.series.study.patient.name == "OTHER^NAME" and first.series.study.patient.name == "DEMO^PHANTOM"
    assert (first.pixel.rescale_intercept, third.pixel.rescale_intercept) == (-1024.0, -1000.0)
    assert fourth.series.study.patient.name == "Müller^Jürgen"
    # identical raw attributes give the very same (shared) objects: decoded once per series
    again = read_header(FileLocation(str(files[0])))
    assert again.series is first.series and again.pixel is first.pixel
    assert first.geometry.position != second.geometry.position  # per-slice values are never shared
