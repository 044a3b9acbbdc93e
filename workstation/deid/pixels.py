"""Burned-in text: which images carry it, and blanking it where OCR (Debian tesseract-ocr) finds it.

Annotations are burned in bright (white, yellow) over darker anatomy; speckle makes tesseract see "words"
everywhere in the raw image, so each frame is first reduced to its bright pixels (>= TEXT_LEVEL of the frame's
range) as black on white, upscaled 3x (small overlay fonts read far better), and read in sparse-text mode; every
word box with a letter or digit is blanked (set to 0 in every sample) with a small margin. OCR misses text it
cannot read (dark or dim text, handwriting, tiny or rotated fonts): the README says so.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pydicom

OCR_SCALE = 3
TEXT_LEVEL = 200  # of 255: what counts as annotation brightness
MARGIN_PX = 2
OCR_TIMEOUT_S = 60
# Classes and modalities known to carry burned-in annotation (US, SC, XA/RF, endoscopy, photographs).
BURNED_IN_MODALITIES = {"US", "IVUS", "SC", "XA", "RF", "ES", "XC", "GM", "OT"}
BURNED_IN_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1",  # US image, US multi-frame
    "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",  # secondary capture
    "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4",
    "1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.12.2",  # XA, RF
    "1.2.840.10008.5.1.4.1.1.77.1.1", "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # VL endoscopic (+ video)
}


class OcrUnavailable(RuntimeError):
    """tesseract is not installed: images that need cleaning cannot be exported."""


def burned_in_reason(ds: pydicom.Dataset) -> str | None:
    """Why this image may carry burned-in text, or None (CT, MR... without BurnedInAnnotation YES)."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        return None
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation is YES"
    if str(ds.get("SOPClassUID", "")) in BURNED_IN_CLASSES:
        return f"{pydicom.uid.UID(str(ds.SOPClassUID)).name} images may carry burned-in text"
    modality = str(ds.get("Modality", "")).upper()
    if modality in BURNED_IN_MODALITIES:
        return f"{modality} images may carry burned-in text"
    return None


def tesseract() -> str:
    found = shutil.which("tesseract")
    if found is None:
        raise OcrUnavailable("tesseract is not installed (Debian package tesseract-ocr): images that may carry "
                             "burned-in text cannot be cleaned")
    return found


def text_boxes(frame8: np.ndarray, binary: str | None = None) -> list[tuple[int, int, int, int, str]]:
    """Word boxes (x0, y0, x1, y1, text) OCR finds in an 8-bit greyscale frame, in frame pixels."""
    from PIL import Image

    image = Image.fromarray(frame8).resize((frame8.shape[1] * OCR_SCALE, frame8.shape[0] * OCR_SCALE),
                                           Image.Resampling.BICUBIC)
    png = io.BytesIO()
    image.save(png, format="PNG")
    done = subprocess.run([binary or tesseract(), "stdin", "stdout", "--psm", "11", "-l", "eng", "tsv"],
                          input=png.getvalue(), capture_output=True, timeout=OCR_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise OcrUnavailable(f"tesseract failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    boxes = []
    for line in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not any(c.isalnum() for c in cells[11]):
            continue
        left, top, width, height = (int(c) for c in cells[6:10])
        boxes.append((left // OCR_SCALE, top // OCR_SCALE, -(-(left + width) // OCR_SCALE),
                      -(-(top + height) // OCR_SCALE), cells[11]))
    return boxes


def eight_bit(frame: np.ndarray, bits_stored: int = 8, signed: bool = False) -> np.ndarray:
    """A frame as 8-bit greyscale for OCR (colour: luminance), scaled from the range its bits can hold, not
    the frame's own range: a frame without bright text must not have its anatomy stretched up to "bright"."""
    data = frame.astype(np.float32)
    if data.ndim == 3:
        data = data[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    low = -(2.0 ** (bits_stored - 1)) if signed else 0.0
    high = 2.0 ** (bits_stored - 1) - 1 if signed else 2.0 ** bits_stored - 1
    return ((data.clip(low, high) - low) * (255.0 / (high - low))).astype(np.uint8)


def frames_of(ds: pydicom.Dataset) -> np.ndarray:
    pixels = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixels if frames > 1 else pixels[np.newaxis]


def bright_text(frame: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Black-on-white image of the frame's bright pixels: what tesseract reads."""
    grey = eight_bit(frame, int(ds.get("BitsStored", 8) or 8), int(ds.get("PixelRepresentation", 0) or 0) == 1)
    return np.where(grey >= TEXT_LEVEL, 0, 255).astype(np.uint8)


def burned_in_words(ds: pydicom.Dataset) -> list[str]:
    """The words OCR reads in the image (every frame), as cleaning sees them."""
    binary = tesseract()
    return [box[4] for frame in frames_of(ds) for box in text_boxes(bright_text(frame, ds), binary)]


MAX_DECODED = 4 << 30  # bytes of decoded pixels one object may need
MAX_RATIO = 200  # decoded bytes per compressed byte believed (as for viewing: workstation.dicom.limits)


def _check_size(ds: pydicom.Dataset) -> None:
    """The header's pixel size checked against the bytes the object holds, before anything is decoded."""
    def number(keyword: str, default: int) -> int:
        value = ds.get(keyword, default)
        try:
            return int(value if value not in (None, "") else default)
        except (TypeError, ValueError):
            raise ValueError(f"{keyword} is not a number") from None

    rows, columns, samples = number("Rows", 0), number("Columns", 0), number("SamplesPerPixel", 1)
    bits, frames = number("BitsAllocated", 8), number("NumberOfFrames", 1)
    if not (0 < rows <= 65535 and 0 < columns <= 65535 and samples in (1, 3) and bits in (1, 8, 16, 32)
            and 0 < frames <= 100_000):
        raise ValueError("implausible pixel description (rows, columns, samples, bits or frames)")
    needed = rows * columns * samples * max(bits // 8, 1) * frames
    held = len(ds.PixelData or b"")
    encapsulated = ds.file_meta.TransferSyntaxUID.is_compressed if "TransferSyntaxUID" in ds.file_meta else False
    if needed > MAX_DECODED or (encapsulated and needed > held * MAX_RATIO) or (not encapsulated and held < needed):
        raise ValueError(f"declares {needed} bytes of pixels, holds {held}")


def clean_pixel_data(ds: pydicom.Dataset, margin: int = MARGIN_PX) -> int:
    """Blank every text box OCR finds in every frame; returns the number of boxes. Writes the pixels back
    uncompressed (RGB for YCbCr sources) and sets BurnedInAnnotation to NO."""
    binary = tesseract()
    _check_size(ds)
    pixels = ds.pixel_array.copy()
    stack = pixels if int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels[np.newaxis]  # views into pixels
    count = 0
    for frame in stack:
        for x0, y0, x1, y1, _ in text_boxes(bright_text(frame, ds), binary):
            frame[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin] = 0
            count += 1
    photometric = str(ds.PhotometricInterpretation)
    if photometric.startswith("YBR"):
        photometric = "RGB"  # pydicom decoded it to RGB
    ds.set_pixel_data(pixels, photometric, int(ds.BitsStored), generate_instance_uid=False)
    ds.BurnedInAnnotation = "NO"
    return count
