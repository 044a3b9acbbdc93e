#!/usr/bin/env python
"""Benchmark: de-identify a 500-slice CT study, beside dicognito and dicom-anonymizer on the same files in the
same run; and the OCR time per ultrasound frame (burned-in text).

OURS      services.export.export_deidentified to a folder: the whole use case (role check, every file read,
          PS3.15 Annex E profile with the site's default options, keyed UIDs, date shift, text scrubbing, the
          final byte check of every object, written under a temporary name and moved, manifest, audit entry).
          With the site's default `[deid] workers` (one process per core: the objects are de-identified by
          worker processes, the calling thread writes them).
OURS-1    the same with `[deid] workers = 1` (everything in the calling process).
OURS-CORE the per-file loop alone, in one process: read, Deidentifier.deidentify, check, encode, write.
DICOGNITO dicognito 0.19 Anonymizer.anonymize per file (read, anonymize, save_as).
DICOM-ANONYMIZER dicom-anonymizer 2.1 anonymize_dicom_file(in, out) per file.
Ratio = ours / the faster baseline, in instances per second (target >= 1.0).
OCR       clean_pixel_data on a 640x480 8-bit ultrasound-like frame with two lines of burned-in text (tesseract
          5, upscaled 3x): seconds per frame.

    .venv/bin/python bench/deid.py [--slices 500] [--size 512] [--repeats 3] [--data DIR] [--ocr-frames 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout on sys.path)
from _common import DemoData, Timed, interleaved, warm_page_cache

sys.path.insert(0, str(_common.REPO / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", help="keep the generated study here (reused by later runs)")
    parser.add_argument("--ocr-frames", type=int, default=5)
    args = parser.parse_args()
    import pydicom
    from dicognito.anonymizer import Anonymizer
    from dicomanonymizer import anonymize_dicom_file
    from keyrings.alt.file import PlaintextKeyring

    from workstation.core.roles import Role, User
    from workstation.core.site import parse_site_config
    from workstation.deid import DeidOptions, Deidentifier, KeyedMapping
    from workstation.deid.validate import encode, problems
    from workstation.services.export import Destination, ExportRequest, export_deidentified
    from workstation.services.session import WorkSession
    from workstation.store.database import Identity, Store

    data = DemoData(args.data, args.slices, args.size, seed=7)
    files = [Path(f) for f in data.files]
    warm_page_cache(files)
    work = Path(tempfile.mkdtemp(prefix="ws-bench-deid-"))
    backend = PlaintextKeyring()
    backend.file_path = str(work / "kr.cfg")
    store = Store.open(work / "store.sqlite", Identity(User("bench", Role.REVIEWER), "ws-bench"), backend)
    session = WorkSession(parse_site_config({}), store)
    secret = bytes(range(32))
    counter = iter(range(1_000_000))

    def fresh() -> Path:
        out = work / f"out-{next(counter)}"
        return out

    def clean(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    one_process = WorkSession(parse_site_config({"deid": {"workers": 1}}), store)

    def use_case(chosen: WorkSession) -> Timed:
        out = fresh()
        start = time.perf_counter()
        report = export_deidentified(ExportRequest(Destination("folder", str(out)), paths=(str(data.folder),),
                                                   include_results=False), chosen.config, chosen, secret)
        seconds = time.perf_counter() - start
        assert report.written == len(files), report.left_out
        clean(out)
        return Timed(report.written, seconds)

    def ours_core():
        out = fresh()
        out.mkdir()
        deid = Deidentifier(DeidOptions(), KeyedMapping(secret))
        start = time.perf_counter()
        for n, path in enumerate(files):
            result = deid.deidentify(pydicom.dcmread(path))
            data = encode(result.dataset)
            assert not problems(result, data)  # as the use case does: the written bytes are checked
            (out / f"{n}.dcm").write_bytes(data)
        seconds = time.perf_counter() - start
        clean(out)
        return Timed(len(files), seconds)

    def dicognito():
        out = fresh()
        out.mkdir()
        anonymizer = Anonymizer(seed="bench")
        start = time.perf_counter()
        for n, path in enumerate(files):
            ds = pydicom.dcmread(path)
            anonymizer.anonymize(ds)
            ds.save_as(out / f"{n}.dcm")
        seconds = time.perf_counter() - start
        clean(out)
        return Timed(len(files), seconds)

    def dicom_anonymizer():
        out = fresh()
        out.mkdir()
        start = time.perf_counter()
        for n, path in enumerate(files):
            anonymize_dicom_file(str(path), str(out / f"{n}.dcm"))
        seconds = time.perf_counter() - start
        clean(out)
        return Timed(len(files), seconds)

    cases = {"ours (export use case)": lambda: use_case(session), "ours (use case, 1 process)": lambda: use_case(one_process),
             "ours (per-file loop)": ours_core, "dicognito": dicognito,
             "dicom-anonymizer": dicom_anonymizer}
    timings, _ = interleaved(cases, args.repeats, warmup=1)
    n = len(files)
    from workstation.services.export_work import default_workers

    print(f"{n} CT slices {args.size}x{args.size}, best of {args.repeats} (median), instances/s; "
          f"default workers here: {default_workers(0)}")
    rates = {name: n / t.best for name, t in timings.items()}
    for name, t in timings.items():
        print(f"  {name:28s} {n / t.best:8.1f}/s  ({t.best:.2f} s best, {t.median:.2f} s median)")
    baseline = max(rates["dicognito"], rates["dicom-anonymizer"])
    print(f"  ratio ours / faster baseline: {rates['ours (export use case)'] / baseline:.2f} "
          f"(1 process {rates['ours (use case, 1 process)'] / baseline:.2f}, "
          f"per-file loop {rates['ours (per-file loop)'] / baseline:.2f}; target >= 1.0)")
    ocr(args.ocr_frames)
    store.close()
    shutil.rmtree(work, ignore_errors=True)


def ocr(frames: int) -> None:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from pydicom.dataset import Dataset

    from deid.corpus import FONT
    from workstation.deid.pixels import clean_pixel_data

    rng = np.random.default_rng(1)
    times = []
    for _ in range(frames):
        image = Image.fromarray(rng.normal(70, 20, (480, 640)).clip(0, 140).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        draw.text((10, 8), "DOE JANE 12345678 2026-12-04", fill=255, font=ImageFont.truetype(FONT, 18))
        draw.text((10, 450), "L12-5 MI 0.9 TIS 0.4", fill=255, font=ImageFont.truetype(FONT, 16))
        ds = Dataset()
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", 480, 640
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.asarray(image).tobytes()
        ds.file_meta = pydicom_meta()
        start = time.perf_counter()
        boxes = clean_pixel_data(ds)
        times.append(time.perf_counter() - start)
    print(f"OCR burned-in text, 640x480 ultrasound frame: {min(times):.2f} s best, {sorted(times)[len(times) // 2]:.2f} s "
          f"median per frame ({boxes} text boxes blanked)")


def pydicom_meta():
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


if __name__ == "__main__":
    main()
