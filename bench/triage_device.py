#!/usr/bin/env python
"""Benchmark: the triage pipeline after receipt, on the inference device (for a machine with a GPU and no DICOM
network peers). The receiver's reports are replayed (TriageService.on_instance for each file, as the receiver
calls it), so the clock covers completion, queueing, scanning and decoding from the cache, the run on the
device, recording it and the worklist flag; beside it the bare model run (engine.run_model, warm) on the same
series. Then --studies studies reported at once: all flagged, studies/min.

    python bench/triage_device.py [--slices 300] [--size 512] [--studies 10] [--study-slices 60] [--repeats 3]

bench/triage.py measures the same with real DCMTK pushes (and storescp as the receive baseline).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from keyrings.alt.file import PlaintextKeyring

from workstation.core.roles import Role, User
from workstation.core.site import parse_site_config
from workstation.demo.phantom import make_chest_phantom
from workstation.demo.writer import write_ct_series
from workstation.dicom.scan import scan_paths
from workstation.services.loading import SeriesLoad
from workstation.services.triage import TriageService
from workstation.services.worklist import WorklistService
from workstation.store.database import Identity, Store
from workstation.store.triage_queue import TriageQueue


def write_study(root: Path, seed: int, slices: int, size: int) -> tuple[Path, list[tuple[str, str, str, Path]]]:
    folder = root / f"ct-{seed}-{slices}-{size}"
    if not folder.exists():
        write_ct_series(make_chest_phantom(seed=seed, slices=slices, size=size, nodule_count=4), folder, seed)
    reports = []
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID",
                                                                           "SOPInstanceUID"])
        reports.append((ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, path))
    return folder, reports


def flag_time(work: Path, studies: list[list[tuple[str, str, str, Path]]], expected: int | None) -> tuple[float, str]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rule = {"name": "ct", "modality": "CT", "models": ["nodule-detector"]}
    if expected:
        rule["expected_instances"] = expected
    config = parse_site_config({"users": {"default_role": "reviewer"}, "routing": {"quiet_s": 0.5, "rules": [rule]}})
    backend = PlaintextKeyring()
    backend.file_path = str(work / "keyring.cfg")
    with Store.open(work / "store.sqlite", Identity(User("bench", Role.REVIEWER), "ws-bench"), backend) as store:
        triage = TriageService(config, store)
        triage.start()
        worklist = WorklistService(config, store)
        wanted = {reports[0][0] for reports in studies}
        try:
            start, start_wall = time.perf_counter(), time.time()
            for reports in studies:
                for report in reports:
                    triage.on_instance(*report, calling_ae="MODALITY")
            while True:
                if wanted <= {r.study.study_instance_uid for r in worklist.rows() if r.flagged}:
                    elapsed = time.perf_counter() - start
                    if len(studies) == 1:
                        _breakdown(store, triage.queue.jobs()[0], start_wall, elapsed)
                    return elapsed, triage.device or "?"
                failed = [j.state_text for j in triage.queue.jobs(("failed", "not-applicable"))]
                if failed:
                    raise SystemExit(f"jobs failed: {failed}")
                time.sleep(0.02)
        finally:
            triage.stop()


def _breakdown(store, job, start_wall: float, elapsed: float) -> None:
    """Where the time went, from the job's timestamps and the run's own measure (InferenceService: run_model)."""
    import datetime as dt

    def at(text: str) -> float:
        return dt.datetime.fromisoformat(text).timestamp() - start_wall

    deadline = time.monotonic() + 30
    while not job.finished_utc and time.monotonic() < deadline:  # flagged (run stored) just before the job's mark
        time.sleep(0.01)
        job = TriageQueue(store).job(job.job_id)
    run = [e for e in store.audit_entries() if e.kind == "inference.run"][-1]
    created, started, finished = at(job.created_utc), at(job.started_utc), at(job.finished_utc)
    print(f"    reported -> queued {created:.3f} s, -> claimed {started:.3f} s, run_model {run.details['seconds']:.3f} s, "
          f"load+record+rest {finished - started - run.details['seconds']:.3f} s, -> flagged {elapsed:.3f} s", flush=True)


def bare(folder: Path) -> float:
    from workstation.inference.engine import choose_device, run_model
    from workstation.inference.registry import find_model, load_manifests

    manifest = find_model(load_manifests()[0], "nodule-detector")
    volume = SeriesLoad(scan_paths([folder]).display_sets[0], start_frame=0).run()
    device = choose_device()
    start = time.perf_counter()
    run_model(manifest, volume, device)
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - start


def line(name: str, values: list[float]) -> str:
    return f"{name:<46} {min(values):8.3f} s (median {statistics.median(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--study-slices", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-triage-device-"))
    try:
        print("writing the studies ...", flush=True)
        big_folder, big = write_study(root / "data", 21, args.slices, args.size)
        batch = [write_study(root / "data", 40 + i, args.study_slices, args.size)[1] for i in range(args.studies)]
        warm_folder, warm = write_study(root / "data", 20, 12, args.size)
        bare(warm_folder)
        flag_time(root / "warm", [warm], None)
        ours, base, ours_batch, base_batch, device = [], [], [], [], "?"
        for repeat in range(args.repeats):
            seconds, device = flag_time(root / f"o{repeat}", [big], args.slices)
            ours.append(seconds)
            base.append(bare(big_folder))
            ours_batch.append(flag_time(root / f"b{repeat}", batch, None)[0])
            base_batch.append(sum(bare(f) for f in sorted((root / "data").glob(f"ct-4*-{args.study_slices}-{args.size}"))))
            print(f"  run {repeat + 1}: ours {ours[-1]:.3f} s, bare {base[-1]:.3f} s; batch {ours_batch[-1]:.3f} s", flush=True)
        print(f"\ndevice {device}; python {sys.version.split()[0]}; {args.slices} x {args.size}^2 CT; best of {args.repeats}")
        print(line("reported -> flagged in the worklist (ours)", ours))
        print(line("bare model run, warm (run_model)", base))
        print(f"{'ratio':<46} {min(ours) / min(base):8.2f}")
        print(line(f"{args.studies} studies of {args.study_slices} slices at once", ours_batch)
              + f"  = {args.studies / min(ours_batch) * 60:.1f} studies/min (quiet time 0.5 s included)")
        print(line("  one bare model run each", base_batch) + f"  = {args.studies / min(base_batch) * 60:.1f} studies/min")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
