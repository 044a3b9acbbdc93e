#!/usr/bin/env python
"""Benchmark: build the AI result objects of a 500-slice series with 20 findings, and send them by C-STORE
beside DCMTK storescu.

BUILD    workstation.results.build_results(run, review): AI SR, reader review SR, GSPS and Parametric Map of a
         500 x 512x512 demo CT with --findings (20) findings spread over the series, a heatmap blob at each
         (5 slices), and a signed-off review (accepted, rejected, one box edited, one deleted, one added).
         The source headers are read again before every run (outside the clock), as the app reads them for
         each build, so every run pays for the first look at each header. Target: <= 1 s.
ENCODE   the built objects as Part 10 bytes (what ResultsOutbox queues and sends), shown beside, not in BUILD.
SEND     ours: workstation.net.store_scu.store_objects(node, local, [outgoing(bytes) ...]), what
         ResultsOutbox.send_pending does with the queued bytes; baseline: DCMTK storescu sending the same objects
         (written once as files) to the same DCMTK storescp (TCP_NODELAY=1, -od DIR) in the same run.
         Ratio = storescu time / ours (target >= 0.9). storescp's output folder is emptied before each run
         (outside the clock) and each run is checked: every object stored, that many files received.

Figures: best and median of --repeats runs after --warmup, the cases interleaved (A B, B A, ...).
The send part moves the script into a private network namespace first (only loopback: storescp listens on all
interfaces; root and Linux needed, see tests/netpeers); --no-send measures the build alone, anywhere.

    .venv/bin/python bench/results.py [--repeats 5] [--data DIR] [--no-send] [--profile [--profile-out F]]
"""

from __future__ import annotations

import sys
from pathlib import Path

# -- isolation first: unshare(CLONE_NEWNET) moves only the calling thread, and numpy (imported by _common) may
#    start BLAS threads at import. Nothing above this line may start a thread.
_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from netpeers.isolation import enter_private_netns, isolation_problem  # noqa: E402  (stdlib only)

_SEND = not {"-h", "--help", "--no-send"} & set(sys.argv[1:])
if _SEND and not enter_private_netns():
    raise SystemExit("results.py needs a private network namespace for its send part (storescp listens on all "
                     f"interfaces), and could not enter one: {isolation_problem()}.\nRun it as root on Linux, "
                     "inside 'unshare --net' with lo up, or with --no-send (build only).")

import argparse  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import _common as C  # noqa: E402
import highdicom  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import pynetdicom  # noqa: E402

from workstation.core.findings import Finding, ModelRef  # noqa: E402
from workstation.core.review import BoxGeometry, FindingState, State, derive_states  # noqa: E402
from workstation.dicom.scan import scan_paths  # noqa: E402
from workstation.results import ReviewContext, RunContext, build_results  # noqa: E402
from workstation.services.results_send import part10  # noqa: E402
from workstation.services.review import final_state  # noqa: E402

KINDS = ["ai-sr", "review-sr", "gsps", "pmap"]
BUILD_TARGET_S = 1.0
SEND_TARGET = 0.9
STORESCP_AET = "DCMTKSCP"
MODEL = ModelRef("nodule-detector", "1.1.0", "ab" * 32)
STARTED, SIGNED = "2026-12-04T10:00:00+00:00", "2026-12-04T10:20:00+00:00"
BLOB_HALF_DEPTH = 2  # the heatmap blob spans 5 slices around each finding


# ----------------------------------------------------------------- the run and its review

def header_paths(data: C.DemoData) -> list[str]:
    """The series' files in display order (the order the heatmap is computed in)."""
    display_set = scan_paths([str(data.folder)]).display_sets[0]
    return [frame.instance.location.path for frame in display_set.frames]


def read_headers(paths: list[str]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def make_findings(sources: list[pydicom.Dataset], count: int, seed: int) -> tuple[list[Finding], np.ndarray]:
    """`count` findings spread evenly over the series, each with a heatmap blob (5 slices) peaking in its box."""
    rng = np.random.default_rng(seed)
    frames, rows, cols = len(sources), int(sources[0].Rows), int(sources[0].Columns)
    heat = np.zeros((frames, rows, cols), np.uint8)
    findings = []
    margin = BLOB_HALF_DEPTH + 1
    for k, frame in enumerate(np.linspace(margin, frames - 1 - margin, count).round().astype(int)):
        size = float(rng.uniform(0.03, 0.06) * cols)
        c0 = float(rng.uniform(0.2, 0.75) * cols)
        r0 = float(rng.uniform(0.25, 0.7) * rows)
        box = (round(c0, 2), round(r0, 2), round(c0 + size, 2), round(r0 + size * 0.9, 2))
        label = "mass" if k % 7 == 6 else "nodule"
        score = round(0.95 - 0.8 * k / max(count - 1, 1), 3)
        sop = str(sources[frame].SOPInstanceUID)
        findings.append(Finding(f"f{k:02d}", label, score, int(frame), box, ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
                                (0.0, 0.0, 0.0), (int(frame) - BLOB_HALF_DEPTH, int(frame) + BLOB_HALF_DEPTH), sop))
        cc, rc, radius = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, size / 2
        rr, cc_grid = np.ogrid[:rows, :cols]
        for dz in range(-BLOB_HALF_DEPTH, BLOB_HALF_DEPTH + 1):
            d2 = ((cc_grid - cc) ** 2 + (rr - rc) ** 2) / radius**2 + (dz / (BLOB_HALF_DEPTH + 1)) ** 2
            blob = np.where(d2 < 1.0, 250.0 * score * (1.0 - d2), 0.0)
            plane = heat[frame + dz]
            np.maximum(plane, np.clip(blob, 0, 255).astype(np.uint8), out=plane)
    return findings, heat


def make_review(findings: list[Finding], sources: list[pydicom.Dataset]) -> ReviewContext:
    """A signed-off review: every 4th finding rejected, one box edited, one finding deleted, one added."""
    states = sorted(derive_states(findings, []).values(), key=lambda s: s.number)
    final = []
    for i, state in enumerate(states):
        verdict = State.REJECTED if i % 4 == 3 else State.ACCEPTED
        kw = {"state": verdict, "by": "carol", "role": "radiologist", "at_utc": SIGNED}
        if i == 1:
            c0, r0, c1, r1 = state.geometry.box_px
            kw.update(state=State.EDITED, box_edited=True, edited=True,
                      geometry=replace(state.geometry, box_px=(c0 + 2.0, r0 + 1.0, c1 + 4.0, r1 + 3.0)))
        if i == len(states) - 1:
            kw.update(state=State.DELETED)
        final.append(final_state(replace(state, **kw)))
    frame = len(sources) // 2
    added = FindingState("added-1", "nodule", BoxGeometry(frame, (300.0, 200.0, 318.0, 216.0),
                                                           str(sources[frame].SOPInstanceUID)),
                         State.ADDED, None, "carol", "radiologist", SIGNED, number=len(states) + 1)
    final.append(final_state(added))
    return ReviewContext("carol", "radiologist", SIGNED, "signoff-bench", final)


class Study:
    """The demo series, its findings, heatmap and review; a fresh RunContext (headers read again) per build."""

    def __init__(self, data: C.DemoData, findings: int, seed: int) -> None:
        self.paths = header_paths(data)
        sources = read_headers(self.paths)
        self.findings, self.heatmap = make_findings(sources, findings, seed)
        self.review = make_review(self.findings, sources)
        self.frames_with_heat = int(np.count_nonzero(self.heatmap.reshape(len(sources), -1).max(axis=1)))

    def run(self) -> RunContext:
        return RunContext(read_headers(self.paths), MODEL, "cpu", STARTED, "run-bench", self.findings, self.heatmap,
                          "ws-bench")


# ----------------------------------------------------------------- cases

class Bench:
    def __init__(self, args, study: Study, runs: Path) -> None:
        self.args, self.study, self.runs = args, study, runs
        self.problems: list[str] = []
        self.keys: set[tuple] = set()
        self.built = None
        self.storescp = None
        self.files: dict[str, list[Path]] = {}
        self.blobs: dict[str, list[bytes]] = {}

    def _check(self, case: str, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(f"{case}: {what}")

    def build(self) -> C.Timed:
        run = self.study.run()  # headers read again, outside the clock
        t0 = time.perf_counter()
        built = build_results(run, self.study.review)
        seconds = time.perf_counter() - t0
        self._check("BUILD", [b.kind for b in built] == KINDS, f"kinds {[b.kind for b in built]}")
        self.keys.add(tuple(b.content_key for b in built))
        self._check("BUILD", len(self.keys) == 1, "content keys differ between runs of the same run and review")
        self.built = built
        return C.Timed(built, seconds)

    def encode(self) -> C.Timed:
        if self.built is None:
            self.build()
        t0 = time.perf_counter()
        blobs = [part10(b.dataset) for b in self.built]
        return C.Timed(blobs, time.perf_counter() - t0)

    # -- send
    def start_send(self) -> None:
        """The objects as queued (Parametric Map in JPEG-LS, the default) and with the map uncompressed, written once
        as files for storescu; storescp started."""
        from netpeers import dcmtk

        from workstation.core.site import parse_site_config

        built = self.built or self.build().result
        plain_map = [b for b in build_results(self.study.run(), self.study.review, compress_pmap=False) if b.kind == "pmap"]
        for variant, objects in (("default", built), ("map uncompressed", [*built[:-1], *plain_map])):
            folder = self.runs / "objects" / variant.replace(" ", "-")
            folder.mkdir(parents=True, exist_ok=True)
            self.blobs[variant] = [part10(b.dataset) for b in objects]
            self.files[variant] = []
            for b, blob in zip(objects, self.blobs[variant]):
                path = folder / f"{b.kind}.dcm"
                path.write_bytes(blob)
                self.files[variant].append(path)
        self.storescp = dcmtk.StorescpPeer(self.runs / "storescp", aet=STORESCP_AET).start()
        config = parse_site_config({
            "workstation": {"ae_title": "WSBENCH"},
            "pacs": {"SCP": {"ae_title": STORESCP_AET, "host": "127.0.0.1", "port": self.storescp.port,
                             "timeout_s": 30, "retries": 0}}})
        self.node, self.local = config.node("SCP"), config.local

    def send_cases(self) -> dict:
        cases = {}
        for variant, suffix in (("default", ""), ("map uncompressed", " (map uncompressed)")):
            cases[f"SEND ours{suffix}"] = lambda v=variant: self.send_ours(v)
            cases[f"SEND storescu{suffix}"] = lambda v=variant: self.send_storescu(v)
        return cases

    def _received(self) -> list[Path]:
        out = self.storescp.out_dir
        return sorted(p for p in out.iterdir() if p.is_file()) if out.is_dir() else []

    def _empty_scp(self) -> None:
        out = self.storescp.out_dir
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)

    def send_ours(self, variant: str) -> C.Timed:
        from workstation.net.store_scu import outgoing, store_objects

        case, blobs = f"SEND ours ({variant})", self.blobs[variant]
        self._empty_scp()
        t0 = time.perf_counter()
        objects = [outgoing(blob) for blob in blobs]
        outcomes = store_objects(self.node, self.local, objects)
        seconds = time.perf_counter() - t0
        self._check(case, all(o.stored for o in outcomes) and len(outcomes) == len(blobs),
                    f"outcomes {[(o.stored, o.status, o.reason) for o in outcomes]}")
        received = self._received()
        self._check(case, len(received) == len(blobs), f"storescp received {len(received)} files")
        return C.Timed(outcomes, seconds)

    def send_storescu(self, variant: str) -> C.Timed:
        from netpeers import dcmtk

        case, files = f"SEND storescu ({variant})", self.files[variant]
        self._empty_scp()
        t0 = time.perf_counter()
        done = dcmtk.run_tool("storescu", [*dcmtk.NET_TIMEOUTS, "-R", "-xt", "-aet", "STORESCU", "-aec", STORESCP_AET,
                                           "127.0.0.1", self.storescp.port, *files])
        seconds = time.perf_counter() - t0
        self._check(case, done.returncode == 0, f"exit {done.returncode}: {(done.stdout + done.stderr)[-400:]}")
        received = self._received()
        self._check(case, len(received) == len(files), f"storescp received {len(received)} files")
        return C.Timed(done, seconds)

    def stop(self) -> None:
        if self.storescp is not None:
            self.storescp.stop()


def build_split(bench: Bench, runs: int) -> dict[str, float]:
    """Each object's builder on its own (what BUILD adds up), best of `runs`, as build_results runs them."""
    from workstation.results.context import check
    from workstation.results.gsps import build_gsps
    from workstation.results.pmap import build_pmap
    from workstation.results.sr_ai import build_ai_sr
    from workstation.results.sr_review import build_review_sr

    try:
        from workstation.results.speedups import faster_highdicom, paused_gc
    except ImportError:  # a checkout from before them (to measure "before")
        from contextlib import nullcontext as faster_highdicom, nullcontext as paused_gc

    review = bench.study.review
    best: dict[str, float] = {}
    for _ in range(runs):
        run = bench.study.run()
        steps = {"check": lambda: check(run), "ai-sr": lambda: build_ai_sr(run),
                 "review-sr": lambda: build_review_sr(run, review), "gsps": lambda: build_gsps(run, review),
                 "pmap": lambda: build_pmap(run, compressed=True)}
        with paused_gc(), faster_highdicom():
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    return best


def profile_build(bench: Bench, out_path: str | None) -> str:
    import cProfile
    import pstats

    run = bench.study.run()
    prof = cProfile.Profile()
    prof.enable()
    build_results(run, bench.study.review)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    for key in ("cumulative", "tottime"):
        buf.write(f"\n--- cProfile of one build, top 35 by {key} ---\n")
        stats.strip_dirs().sort_stats(key).print_stats(35)
    text = buf.getvalue()
    if out_path:
        Path(out_path).write_text(text)
    return text


# ----------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--findings", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data", help="folder for the demo series, reused next time (default: a temp dir)")
    parser.add_argument("--no-send", action="store_true", help="build only (no network namespace needed)")
    parser.add_argument("--split-runs", type=int, default=3, help="untimed runs of each builder for the BUILD split")
    parser.add_argument("--profile", action="store_true", help="also cProfile one build")
    parser.add_argument("--profile-out", help="write the profile to this file too")
    args = parser.parse_args()

    print(f"results: python {platform.python_version()}, highdicom {highdicom.__version__}, pydicom "
          f"{pydicom.__version__}, pynetdicom {pynetdicom.__version__}, numpy {np.__version__}; {os.cpu_count()} CPUs"
          + ("; private network namespace (loopback only)" if _SEND else "; build only"))
    data = C.DemoData(args.data, args.slices, args.size, args.seed)
    runs = data.root / "runs-results"
    shutil.rmtree(runs, ignore_errors=True)
    bench = None
    try:
        print(f"data: {data.describe()}")
        study = Study(data, args.findings, args.seed)
        print(f"run: {len(study.findings)} findings, heatmap non-zero on {study.frames_with_heat} of "
              f"{len(study.paths)} slices; review: {sum(s['state'] == 'rejected' for s in study.review.final_states)} "
              f"rejected, {len(study.review.final_states)} final states")
        bench = Bench(args, study, runs)
        cases = {"BUILD": bench.build, "ENCODE": bench.encode}
        if _SEND:
            bench.start_send()
            cases.update(bench.send_cases())
        timings, _ = C.interleaved(cases, args.repeats, args.warmup)

        sizes = {b.kind: len(blob) for b, blob in zip(bench.built, [part10(b.dataset) for b in bench.built])}
        total = sum(sizes.values())
        print()
        print(f"best and median of {args.repeats} runs after {args.warmup} warm-up, interleaved")
        rows = [[case, C.seconds(t.best), C.seconds(t.median)] for case, t in timings.items()]
        print(C.table(["case", "best", "median"], rows))
        build = timings["BUILD"]
        print(f"BUILD: {C.seconds(build.best)} best, {C.seconds(build.median)} median: "
              f"{'meets' if build.best <= BUILD_TARGET_S else 'MISSES'} the <= {BUILD_TARGET_S:g} s target "
              f"(judged on the best; median {'meets' if build.median <= BUILD_TARGET_S else 'misses'} it)")
        if _SEND:
            for suffix, what in (("", "as queued"), (" (map uncompressed)", "map uncompressed")):
                ours, base = timings[f"SEND ours{suffix}"], timings[f"SEND storescu{suffix}"]
                ratio, ratio_med = base.best / ours.best, base.median / ours.median
                size = sum(map(len, bench.blobs["default" if not suffix else "map uncompressed"])) / 1e6
                print(f"SEND {what} ({size:.1f} MB): storescu / ours = {ratio:.2f} of the bests, {ratio_med:.2f} of "
                      f"the medians ({'meets' if ratio >= SEND_TARGET else 'MISSES'} the >= {SEND_TARGET:g} target, "
                      "judged on the bests)")
        print("objects: " + ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sizes.items()) + f"; {total / 1e6:.2f} MB in all"
              + f"; Parametric Map: {int(bench.built[-1].dataset.NumberOfFrames)} frames, "
              f"{bench.built[-1].dataset.file_meta.TransferSyntaxUID.name}")
        split = build_split(bench, args.split_runs)
        print(f"BUILD split (best of {args.split_runs} separate runs of each builder, fresh headers): "
              + ", ".join(f"{k} {C.seconds(v)}" for k, v in split.items()))
        print()
        print("checks: " + ("every build gave the four objects with the same content keys"
                            + (", every send stored every object (statuses and files received)" if _SEND else "")
                            if not bench.problems else
                            f"{len(bench.problems)} PROBLEM(S):\n  " + "\n  ".join(bench.problems[:12])))
        if args.profile:
            text = profile_build(bench, args.profile_out)
            print(text if len(text) < 25000 else text[:25000] + "\n... (cut; see --profile-out)")
        if bench.problems:
            raise SystemExit(1)
    finally:
        if bench is not None:
            bench.stop()
        shutil.rmtree(runs, ignore_errors=True)
        data.cleanup()


if __name__ == "__main__":
    main()
