"""Pixel decoding on pydicom's own test files: modality LUT, photometrics, compression, endianness, spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from fixtures_data import demo_catalog, demo_display_set, demo_study, sample_file, write_image  # noqa: F401
from pydicom.pixels import apply_color_lut, apply_modality_lut

from workstation.core.study import DisplaySet, FileLocation, InstanceHeader, PixelFormat
from workstation.dicom.header import read_header
from workstation.dicom.pixels import DecodeError, decode_instance, output_dtype
from workstation.dicom.scan import scan_paths
from workstation.render.windowing import WindowRenderer
from workstation.core.windowing import WindowLevel
from workstation.services.loading import SeriesLoad


def header_of(path: str | Path) -> InstanceHeader:
    header = read_header(FileLocation(str(path)))
    assert isinstance(header, InstanceHeader), header
    return header


def decoded(path: str | Path) -> np.ndarray:
    header = header_of(path)
    return decode_instance(header, output_dtype([header.pixel]))


def loaded(path: str | Path):
    """Scan one file and load its only display set: (display set, volume)."""
    catalog = scan_paths([path])
    assert catalog.problems == []
    [display_set] = catalog.display_sets
    load = SeriesLoad(display_set)
    volume = load.run()
    assert load.problems == [] and volume.fully_loaded
    return display_set, volume


def reference(path: str) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return apply_modality_lut(ds.pixel_array, ds)


# -- modality LUT -------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "693_UNCR.dcm"])
def test_ct_hu_equals_pydicom_modality_lut(name: str) -> None:
    path = sample_file(name)
    _, volume = loaded(path)
    assert np.issubdtype(volume.array.dtype, np.integer)
    assert np.array_equal(volume.array[0], reference(path))
    assert volume.array.min() < -500  # HU, not stored values


def test_non_integer_slope_gives_float32_equal_to_pydicom() -> None:
    path = sample_file("MR2_UNCR.dcm")
    header = header_of(path)
    assert header.pixel.rescale_slope == pytest.approx(3.774114)
    assert output_dtype([header.pixel]) == np.float32
    values = decoded(path)
    assert values.dtype == np.float32
    assert np.allclose(values[0], reference(path), rtol=1e-6, atol=1e-4)


def test_modality_lut_sequence_is_applied() -> None:
    path = sample_file("mlut_18.dcm")
    header = header_of(path)
    assert header.pixel.has_modality_lut
    assert output_dtype([header.pixel]) == np.float32
    assert np.array_equal(decoded(path)[0], reference(path).astype(np.float32))


# -- output dtype -------------------------------------------------------------


def test_output_dtype_choices(demo_display_set: DisplaySet) -> None:
    assert output_dtype([h.pixel for h in demo_display_set.instances]) == np.int16  # 12 bit + -1024
    fmt = PixelFormat(rows=1, columns=1)
    assert output_dtype([PixelFormat(1, 1, bits_allocated=8, bits_stored=8)]) == np.uint8
    assert output_dtype([fmt]) == np.uint16
    assert output_dtype([PixelFormat(1, 1, pixel_representation=1)]) == np.int16
    assert output_dtype([PixelFormat(1, 1, pixel_representation=1, rescale_intercept=-1024)]) == np.int32
    assert output_dtype([PixelFormat(1, 1, rescale_slope=0.5)]) == np.float32
    assert output_dtype([PixelFormat(1, 1, rescale_intercept=0.25)]) == np.float32
    assert output_dtype([PixelFormat(1, 1, has_modality_lut=True)]) == np.float32
    assert output_dtype([PixelFormat(1, 1, samples_per_pixel=3, photometric="RGB")]) == np.uint8
    # A display set mixing formats gets a type holding all of them.
    eight = PixelFormat(1, 1, bits_allocated=8, bits_stored=8)
    signed12 = PixelFormat(1, 1, bits_stored=12, pixel_representation=1)
    assert output_dtype([eight, signed12]) == np.int16
    assert output_dtype([eight, PixelFormat(1, 1, bits_stored=12, rescale_slope=2.5)]) == np.float32


def test_signed_and_unsigned_pixel_representation(tmp_path: Path) -> None:
    raw = np.array([[0, 1, 0x7FFF], [0x8000, 0xFFFE, 0xFFFF]], dtype=np.uint16)
    unsigned = write_image(tmp_path / "u.dcm", raw, signed=False)
    signed = write_image(tmp_path / "s.dcm", raw, signed=True)
    u, s = decoded(unsigned), decoded(signed)
    assert u.dtype == np.uint16 and s.dtype == np.int16
    assert u[0].tolist() == [[0, 1, 32767], [32768, 65534, 65535]]
    assert s[0].tolist() == [[0, 1, 32767], [-32768, -2, -1]]


def test_signed_12_bit_is_sign_extended_and_rescaled(tmp_path: Path) -> None:
    raw = np.array([[0x0000, 0x07FF], [0x0800, 0x0FFF]], dtype=np.uint16)
    path = write_image(tmp_path / "s12.dcm", raw, bits_stored=12, signed=True,
                       RescaleSlope="1", RescaleIntercept="-100")
    values = decoded(path)
    assert values.dtype == np.int16
    assert values[0].tolist() == [[-100, 1947], [-2148, -101]]


# -- MONOCHROME1 ----------------------------------------------------------------


def test_monochrome1_is_inverted_when_rendered() -> None:
    display_set, volume = loaded(sample_file("RG1_UNCR.dcm"))
    header = display_set.first
    assert header.pixel.photometric == "MONOCHROME1" and header.pixel.inverted
    assert header.series.modality == "CR"
    frame = volume.array[0]
    low, high = int(frame.min()), int(frame.max())
    window = WindowLevel((low + high) / 2, high - low)
    normal = WindowRenderer(volume.array.dtype).render(frame, window)
    inverted = WindowRenderer(volume.array.dtype, invert=header.pixel.inverted).render(frame, window)
    assert inverted.dtype == np.uint8 and inverted.shape == frame.shape
    assert np.all(inverted[frame == low] == 255) and np.all(inverted[frame == high] == 0)
    assert np.array_equal(inverted, 255 - normal)


def test_monochrome2_is_not_inverted(demo_display_set: DisplaySet) -> None:
    assert not demo_display_set.first.pixel.inverted


# -- multi-frame ------------------------------------------------------------------


def test_multi_frame_mr_has_ten_frames() -> None:
    display_set, volume = loaded(sample_file("emri_small.dcm"))
    assert display_set.first.frames == 10 and len(display_set.frames) == 10
    assert len(display_set.instances) == 1
    assert volume.array.shape == (10, 64, 64)
    ds = pydicom.dcmread(sample_file("emri_small.dcm"))
    assert np.array_equal(volume.array, ds.pixel_array)
    assert not np.array_equal(volume.array[0], volume.array[9])


def test_enhanced_ct_frames_are_ordered_by_per_frame_position() -> None:
    """eCT_Supplemental: orientation (-1,0,0,0,1,0) has normal -z, so the frame at z=-149 comes first."""
    path = sample_file("eCT_Supplemental.dcm")
    display_set, volume = loaded(path)
    assert [f.frame for f in display_set.frames] == [1, 0]
    assert display_set.slice_spacing == pytest.approx(10.0)
    ds = pydicom.dcmread(path)
    rescale = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    assert "RescaleIntercept" not in ds  # only in the functional groups
    stored = ds.pixel_array.astype(np.int32) * int(rescale.RescaleSlope) + int(rescale.RescaleIntercept)
    assert volume.array.min() == -1024
    assert np.array_equal(volume.array[0], stored[1]) and np.array_equal(volume.array[1], stored[0])
    assert volume.index_to_patient(0, 0, 0) == pytest.approx([99.5, -301.5, -149.0])
    assert volume.index_to_patient(0, 0, 1) == pytest.approx([99.5, -301.5, -159.0])


# -- compression and byte order ---------------------------------------------------

LOSSLESS_PAIRS = [
    ("emri_small_RLE.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
    ("emri_small_big_endian.dcm", "emri_small.dcm"),
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("MR_small_bigendian.dcm", "MR_small.dcm"),
    ("MR_small_implicit.dcm", "MR_small.dcm"),
    ("693_J2KR.dcm", "693_UNCR.dcm"),
    ("MR2_J2KR.dcm", "MR2_UNCR.dcm"),
    ("SC_rgb_rle.dcm", "SC_rgb.dcm"),
    ("SC_rgb_expb.dcm", "SC_rgb.dcm"),
    ("US1_J2KR.dcm", "US1_UNCR.dcm"),
]


@pytest.mark.parametrize(("variant", "original"), LOSSLESS_PAIRS)
def test_lossless_variants_decode_to_the_original_values(variant: str, original: str) -> None:
    a, b = decoded(sample_file(variant)), decoded(sample_file(original))
    assert header_of(sample_file(variant)).transfer_syntax_uid != header_of(sample_file(original)).transfer_syntax_uid
    assert a.shape == b.shape  # dtypes may differ: 693_J2KR.dcm declares 16 stored bits, 693_UNCR.dcm 14
    assert np.array_equal(a, b)


@pytest.mark.parametrize(("lossy", "reference_file", "shape"), [
    # *_UNCI.dcm are pydicom-data's uncompressed copies of what the irreversible J2K files decode to.
    ("MR2_J2KI.dcm", "MR2_UNCI.dcm", (1, 1024, 1024)),
    ("693_J2KI.dcm", "693_UNCI.dcm", (1, 512, 512)),
    ("US1_J2KI.dcm", "US1_UNCI.dcm", (1, 480, 640, 3)),
    ("SC_rgb_jpeg_dcmtk.dcm", None, (1, 100, 100, 3)),
    ("SC_rgb_jpeg_lossy_gdcm.dcm", None, (1, 100, 100, 3)),
    ("JPGExtended.dcm", None, (1, 1024, 256)),
])
def test_lossy_variants_decode_to_the_right_shape(lossy: str, reference_file: str | None, shape: tuple) -> None:
    header = header_of(sample_file(lossy))
    values = decoded(sample_file(lossy))
    assert values.shape == shape
    if reference_file is not None:
        expected = decoded(sample_file(reference_file))
        assert values.dtype == expected.dtype
        one_step = abs(header.pixel.rescale_slope)  # allow one stored unit for decoder rounding
        assert np.max(np.abs(values.astype(float) - expected.astype(float))) <= one_step + 1e-3


def test_lossy_jpeg_colour_is_close_to_the_original() -> None:
    original = decoded(sample_file("SC_rgb.dcm")).astype(float)
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm"):
        assert np.mean(np.abs(decoded(sample_file(name)).astype(float) - original)) < 3.0


def test_jpeg_lossy_12_bit_decodes_or_is_reported() -> None:
    """pydicom's JPEG-lossy.dcm has a malformed scan header that only some decoders accept."""
    header = header_of(sample_file("JPEG-lossy.dcm"))
    try:
        values = decode_instance(header, output_dtype([header.pixel]))
    except DecodeError as exc:
        assert "could not be decoded" in str(exc)
    else:
        assert values.shape == (1, 1024, 256)


# -- colour ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_16bit.dcm", "SC_rgb_2frame.dcm"])
def test_colour_is_rgb_uint8(name: str) -> None:
    display_set, volume = loaded(sample_file(name))
    assert display_set.first.pixel.is_colour and volume.is_colour
    assert volume.array.dtype == np.uint8
    assert volume.array.shape == (display_set.first.frames, 100, 100, 3)


def test_16_bit_rgb_keeps_the_high_byte() -> None:
    eight, sixteen = decoded(sample_file("SC_rgb.dcm")), decoded(sample_file("SC_rgb_16bit.dcm"))
    assert np.array_equal(eight, sixteen)


def test_palette_colour_becomes_rgb() -> None:
    """OT-PAL-8-face.dcm has no File Meta at all: accepted at scan time, so it must decode too."""
    path = sample_file("OT-PAL-8-face.dcm")
    display_set, volume = loaded(path)
    assert display_set.first.pixel.photometric == "PALETTE COLOR"
    assert volume.array.shape == (1, 480, 640, 3) and volume.array.dtype == np.uint8
    ds = pydicom.dcmread(path, force=True)
    ds.file_meta.TransferSyntaxUID = display_set.first.transfer_syntax_uid
    rgb = apply_color_lut(ds.pixel_array, ds)  # 16-bit palette entries
    assert np.array_equal(volume.array[0], (rgb >> 8).astype(np.uint8))
    assert len(np.unique(volume.array[0].reshape(-1, 3), axis=0)) > 50  # real colours, not grey


def test_colour_frame_renders_as_stored() -> None:
    rgb = decoded(sample_file("SC_rgb.dcm"))[0]
    assert np.array_equal(WindowRenderer(np.uint8).render(rgb, WindowLevel(10, 5)), rgb)


# -- pixel spacing ------------------------------------------------------------------------


def test_pixel_spacing_from_pixel_spacing() -> None:
    header = header_of(sample_file("MR_small.dcm"))
    assert header.pixel_spacing == pytest.approx((0.3125, 0.3125))
    assert header.spacing_source == "PixelSpacing"


def test_zero_pixel_spacing_is_ignored() -> None:
    """RG1_UNCR.dcm carries PixelSpacing 0\\0: unknown, not a zero-size pixel."""
    header = header_of(sample_file("RG1_UNCR.dcm"))
    assert header.pixel_spacing is None and header.spacing_source == ""


def test_cr_imager_pixel_spacing(tmp_path: Path) -> None:
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    cr = write_image(tmp_path / "cr.dcm", pixels, Modality="CR", ImagerPixelSpacing=["0.139", "0.15"])
    header = header_of(cr)
    assert header.pixel_spacing == pytest.approx((0.139, 0.15))
    assert header.spacing_source == "ImagerPixelSpacing"
    both = write_image(tmp_path / "both.dcm", pixels, Modality="CR", ImagerPixelSpacing=["0.2", "0.2"],
                       PixelSpacing=["0.1", "0.1"])
    assert header_of(both).spacing_source == "PixelSpacing"
    assert header_of(both).pixel_spacing == pytest.approx((0.1, 0.1))


def test_anisotropic_spacing_goes_to_the_right_axes(tmp_path: Path) -> None:
    """PixelSpacing is (between rows, between columns): a column step moves along the row direction."""
    pixels = np.zeros((4, 6), dtype=np.uint16)
    path = write_image(tmp_path / "aniso.dcm", pixels, PixelSpacing=["0.5", "0.8"],
                       ImageOrientationPatient=[1, 0, 0, 0, 1, 0], ImagePositionPatient=[10, 20, 30])
    _, volume = loaded(path)
    assert volume.pixel_spacing == pytest.approx((0.5, 0.8))
    assert volume.index_to_patient(1, 0, 0) == pytest.approx([10.8, 20, 30])
    assert volume.index_to_patient(0, 1, 0) == pytest.approx([10, 20.5, 30])


def test_truncated_native_file_is_caught_at_scan() -> None:
    problem = read_header(FileLocation(sample_file("MR_truncated.dcm")))
    assert not isinstance(problem, InstanceHeader)
    assert problem.reason.startswith("truncated")


# -- deflated transfer syntax -------------------------------------------------------------


def test_deflated_image_scans_and_decodes() -> None:
    """image_dfl.dcm: the bytes after a deflated header are compressed, so the pixel data check must inflate."""
    path = sample_file("image_dfl.dcm")
    display_set, volume = loaded(path)
    assert display_set.first.transfer_syntax_uid == "1.2.840.10008.1.2.1.99"
    assert np.array_equal(volume.array[0], pydicom.dcmread(path).pixel_array)


def test_deflated_demo_slice_equals_the_phantom(demo_study, tmp_path: Path) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(demo_study.files[3])
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert (tmp_path / "deflated.dcm").stat().st_size < demo_study.files[3].stat().st_size
    _, volume = loaded(tmp_path / "deflated.dcm")
    assert volume.array.dtype == np.int16
    assert np.array_equal(volume.array[0], demo_study.phantom.hu[3])
    data = (tmp_path / "deflated.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    problem = read_header(FileLocation(str(tmp_path / "cut.dcm")))
    assert not isinstance(problem, InstanceHeader) and "corrupt" in problem.reason


def test_deflated_object_without_pixels_is_still_reported(tmp_path: Path) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    sr = pydicom.dcmread(sample_file("test-SR.dcm"))
    sr.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    sr.save_as(tmp_path / "sr.dcm")
    problem = read_header(FileLocation(str(tmp_path / "sr.dcm")))
    assert not isinstance(problem, InstanceHeader) and problem.reason == "no pixel data (Comprehensive SR Storage)"
