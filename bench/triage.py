#!/usr/bin/env python
"""Benchmark: time to flag. A chest CT pushed by DCMTK storescu to our receiver, routed, queued, run and in the
worklist, against receiving alone plus the bare model run.

OURS          PacsService receiver + TriageService (rule: CT -> nodule-detector, complete at the expected count)
              + WorklistService: the clock runs from starting storescu (first instance sent) until the study's
              worklist row is flagged (its findings in the store, above the alert threshold).
BASE          storescu -> DCMTK storescp (receive alone, TCP_NODELAY) + the bare model run on the same series
              (workstation.inference.engine.run_model on the volume already decoded, weights already loaded):
              the sum is what any triage needs at least; our extra is completion, queueing, scanning and
              decoding the series from the cache, recording the run and reading the worklist.
BATCH         --studies studies (default 10, --study-slices each) pushed at once by as many storescu
              processes: time until every one is flagged, studies/min; beside it storescu -> storescp of the
              same files (one after another) + one bare run per study.

Figures are the best of --repeats (median beside it) after a warm-up push (torch imported, weights loaded,
on both sides). Runs on the inference device (CUDA when present, else CPU). Needs root (private network
namespace: storescp listens on all interfaces) and DCMTK.

    .venv/bin/python bench/triage.py [--slices 300] [--size 512] [--studies 10] [--study-slices 60] [--repeats 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from netpeers.isolation import enter_private_netns, isolation_problem  # noqa: E402  (stdlib only)

if not {"-h", "--help"} & set(sys.argv[1:]) and not enter_private_netns():
    raise SystemExit(f"triage.py needs a private network namespace (storescp listens on all interfaces): "
                     f"{isolation_problem()}. Run it as root on Linux.")

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from keyrings.alt.file import PlaintextKeyring  # noqa: E402

from netpeers.dcmtk import NET_TIMEOUTS, StorescpPeer  # noqa: E402
from netpeers.process import LOCALHOST, free_port, peer_env, require_tool  # noqa: E402
from workstation.core.roles import Role, User  # noqa: E402
from workstation.core.site import parse_site_config  # noqa: E402
from workstation.demo.phantom import make_chest_phantom  # noqa: E402
from workstation.demo.writer import write_ct_series  # noqa: E402
from workstation.dicom.scan import scan_paths  # noqa: E402
from workstation.services import triage_intake  # noqa: E402
from workstation.services.loading import SeriesLoad  # noqa: E402
from workstation.services.pacs import PacsService  # noqa: E402
from workstation.services.triage import TriageService  # noqa: E402
from workstation.services.worklist import WorklistService  # noqa: E402
from workstation.store.database import Identity, Store  # noqa: E402

AET, SENDER = "WSBENCH", "STORESCU"
BIG = "BENCH TIME TO FLAG"


def write_study(root: Path, seed: int, slices: int, size: int, description: str = "") -> tuple[Path, str]:
    """A phantom CT with 4 nodules; `description` (Series Description) lets a rule expect its count."""
    folder = root / f"ct-{seed}-{slices}-{size}"
    if not folder.exists():
        write_ct_series(make_chest_phantom(seed=seed, slices=slices, size=size, nodule_count=4), folder, seed)
        if description:
            import pydicom

            for path in folder.iterdir():
                ds = pydicom.dcmread(path)
                ds.SeriesDescription = description
                ds.save_as(path)
    uid = scan_paths([folder]).display_sets[0].series.study.study_instance_uid
    return folder, uid


def storescu(port: int, aet: str, paths: list[Path]) -> subprocess.Popen:
    return subprocess.Popen([require_tool("storescu"), *NET_TIMEOUTS, "+sd", "+r", "-aet", SENDER, "-aec", aet,
                             LOCALHOST, str(port), *map(str, paths)], env=peer_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


class Ours:
    """A fresh store, cache, receiver and triage service (as `workstation receive` runs them)."""

    def __init__(self, work: Path, slices: int) -> None:
        self.work = work
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        self.port = free_port()
        # the big series is complete at its count; the others after 1 s without a new instance
        self.config = parse_site_config({
            # all --studies storescu processes connect from 127.0.0.1 at once (the default allows 4 per address)
            "workstation": {"ae_title": AET, "store_port": self.port, "bind_address": LOCALHOST,
                            "max_associations_per_host": 32},
            "users": {"default_role": "reviewer"}, "cache": {"directory": str(work / "cache")},
            "pacs": {"SENDER": {"ae_title": SENDER, "host": LOCALHOST, "port": 104}},
            "routing": {"quiet_s": 1, "rules": [
                {"name": "big", "series_description": BIG, "expected_instances": slices, "models": ["nodule-detector"]},
                {"name": "chest-ct", "modality": "CT", "models": ["nodule-detector"]}]}})
        backend = PlaintextKeyring()
        backend.file_path = str(work / "keyring.cfg")
        self.store = Store.open(work / "store.sqlite", Identity(User("bench", Role.REVIEWER), "ws-bench"), backend)
        self.pacs = PacsService(self.config)
        self.triage = TriageService(self.config, self.store)
        triage_intake.connect(self.pacs, self.triage)
        self.pacs.start_receiver()
        self.triage.start()
        self.worklist = WorklistService(self.config, self.store)

    def push_and_flag(self, studies: list[tuple[Path, str]], timeout: float = 1800) -> float:
        start = time.perf_counter()
        senders = [storescu(self.port, AET, [folder]) for folder, _ in studies]
        wanted = {uid for _, uid in studies}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flagged = {r.study.study_instance_uid for r in self.worklist.rows() if r.flagged}
            if wanted <= flagged:
                elapsed = time.perf_counter() - start
                break
            failed = [s for s in senders if s.poll() not in (None, 0)]
            if failed:
                raise SystemExit(f"storescu failed: {failed[0].stderr.read()}")
            time.sleep(0.05)
        else:
            raise SystemExit(f"not all flagged within {timeout} s: "
                             + "; ".join(j.state_text for j in self.triage.queue.jobs()))
        for sender in senders:
            if sender.wait(60) != 0:
                raise SystemExit(f"storescu failed: {sender.stderr.read()}")
        return elapsed

    def close(self) -> None:
        self.triage.stop()
        self.pacs.close()
        self.store.close()


def base_receive(work: Path, folders: list[Path]) -> float:
    peer = StorescpPeer(work / "storescp", aet="STORESCP")
    peer.start()
    try:
        start = time.perf_counter()
        sender = storescu(peer.port, "STORESCP", folders)
        if sender.wait(600) != 0:
            raise SystemExit(f"storescu -> storescp failed: {sender.stderr.read()}")
        return time.perf_counter() - start
    finally:
        peer.stop()


def base_forward(folder: Path) -> tuple[float, str]:
    from workstation.inference.engine import choose_device, run_model
    from workstation.inference.registry import find_model, load_manifests

    manifests, _ = load_manifests()
    manifest = find_model(manifests, "nodule-detector")
    display_set = scan_paths([folder]).display_sets[0]
    volume = SeriesLoad(display_set, start_frame=0).run()
    device = choose_device()
    start = time.perf_counter()
    run_model(manifest, volume, device)
    return time.perf_counter() - start, device


def best(values: list[float]) -> str:
    return f"{min(values):7.2f} s (median {statistics.median(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--study-slices", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, help="keep the generated studies here and reuse them")
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="bench-triage-"))
    data.mkdir(parents=True, exist_ok=True)
    print(f"writing the studies into {data} ...", flush=True)
    big = write_study(data, 21, args.slices, args.size, BIG)
    batch = [write_study(data, 40 + i, args.study_slices, args.size) for i in range(args.studies)]
    warm = write_study(data, 20, 12, args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-triage-work-"))

    base_forward(warm[0])  # torch imported, weights loaded (the same cache our worker uses)
    ours_single, ours_batch, recv_single, recv_batch, fwd_single, fwd_batch = [], [], [], [], [], []
    device = "?"
    for repeat in range(args.repeats):
        recv_single.append(base_receive(work / f"b{repeat}", [big[0]]))
        seconds, device = base_forward(big[0])
        fwd_single.append(seconds)
        ours = Ours(work / f"o{repeat}", args.slices)
        try:
            ours.push_and_flag([warm])  # warm-up of this receiver / worker
            ours_single.append(ours.push_and_flag([big]))
            ours_batch.append(ours.push_and_flag(batch))
        finally:
            ours.close()
        recv_batch.append(base_receive(work / f"c{repeat}", [folder for folder, _ in batch]))
        fwd_batch.append(sum(base_forward(folder)[0] for folder, _ in batch))
        print(f"  run {repeat + 1}: ours {ours_single[-1]:.2f} s / batch {ours_batch[-1]:.2f} s; "
              f"storescp {recv_single[-1]:.2f} s + forward {fwd_single[-1]:.2f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    if args.data is None:
        shutil.rmtree(data, ignore_errors=True)

    base = [r + f for r, f in zip(recv_single, fwd_single)]
    base_b = [r + f for r, f in zip(recv_batch, fwd_batch)]
    print(f"\ndevice {device}; {args.slices} x {args.size}^2 CT; best of {args.repeats}")
    print(f"{'time to flag, one study':<44} {best(ours_single)}")
    print(f"{'  storescu -> storescp (receive alone)':<44} {best(recv_single)}")
    print(f"{'  bare forward pass (run_model, warm)':<44} {best(fwd_single)}")
    print(f"{'  baseline sum':<44} {best(base)}")
    print(f"{'  ratio ours / baseline (target <= 1.2)':<44} {min(ours_single) / min(base):7.2f}")
    print(f"{f'{args.studies} studies of {args.study_slices} slices at once':<44} {best(ours_batch)}"
          f"  = {args.studies / min(ours_batch) * 60:.1f} studies/min")
    print(f"{'  baseline: storescp + one forward pass each':<44} {best(base_b)}"
          f"  = {args.studies / min(base_b) * 60:.1f} studies/min")
    print(f"{'  ratio ours / baseline':<44} {min(ours_batch) / min(base_b):7.2f}")


if __name__ == "__main__":
    main()
