#!/usr/bin/env python
"""Benchmark: retrieve a CT study from a real Orthanc by C-MOVE and by C-GET, ours against DCMTK.

OURS C-MOVE   PacsService.retrieve("MAIN", study, method="move"): our C-MOVE SCU, Orthanc sends every
              instance to our C-STORE receiver (started on the warm-up run), which streams it into
              the StudyCache.
BASE C-MOVE   DCMTK movescu (-S, QueryRetrieveLevel=STUDY) to a running storescp (AET DCMTKSCP, -od):
              the clock runs from starting movescu to its exit.
OURS C-GET    PacsService.retrieve(..., method="get"): instances come back on our association and are
              streamed into the StudyCache.
BASE C-GET    DCMTK getscu -S -od DIR.

One Orthanc (same config for every side, MaximumPduLength left at its default unless
--orthanc-max-pdu) holds the demo study (--slices, default 500 x 512x512 16-bit, ~260 MB, uploaded
by REST once; with --data DIR the study and Orthanc's storage are kept and reused). Every run
writes every file: our study folder in the cache and DCMTK's output folder are deleted before each
run, and dirty pages flushed (os.sync), outside the clock. Figures are the best and median of --repeats runs after --warmup, the four
cases interleaved; each run is checked (count, status) and the last files of every side are checked
against the source (SOP Instance UIDs, transfer syntax, pixel data of one instance).
After the timing, one untimed probe run per side reports the max PDU sizes negotiated and the sizes
of the P-DATA PDUs we actually received.

The script moves itself into a private network namespace (only loopback) before anything starts a
thread: Orthanc and DCMTK listen on all interfaces (root and Linux needed; see tests/netpeers).

    .venv/bin/python bench/retrieve.py [--slices 500] [--repeats 3] [--data DIR] [--profile cprofile|pyinstrument]
"""

from __future__ import annotations

import sys
from pathlib import Path

# -- isolation first: unshare(CLONE_NEWNET) moves only the calling thread, and numpy (imported by
#    _common) may start BLAS threads at import. Nothing above this line may start a thread.
_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from netpeers.isolation import enter_private_netns, isolation_problem  # noqa: E402  (stdlib only)

if not {"-h", "--help"} & set(sys.argv[1:]) and not enter_private_netns():
    raise SystemExit("retrieve.py needs a private network namespace (Orthanc and DCMTK listen on all interfaces), "
                     f"and could not enter one: {isolation_problem()}.\nRun it as root on Linux, or inside "
                     "'unshare --net' with lo up.")

import argparse  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import _common as C  # noqa: E402
import pydicom  # noqa: E402
import pynetdicom  # noqa: E402

from netpeers import dcmtk  # noqa: E402
from netpeers.orthanc import OrthancPeer, modality  # noqa: E402
from netpeers.process import LOCALHOST, PeerError, free_port, require_tool  # noqa: E402
from workstation.core.site import parse_site_config  # noqa: E402
from workstation.dicom.cache import StudyCache  # noqa: E402
from workstation.net import ul  # noqa: E402
from workstation.services.pacs import PacsService  # noqa: E402

WS_AET, ORTHANC_AET, DCMTK_AET, NODE = "WSTEST", "ORTHANC", "DCMTKSCP", "MAIN"
CASES = ("ours C-MOVE", "DCMTK C-MOVE", "ours C-GET", "DCMTK C-GET")


# ----------------------------------------------------------------- set-up

class Source:
    """The demo study: files, UIDs, bytes."""

    def __init__(self, data: C.DemoData) -> None:
        self.files = data.files
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in self.files]
        studies = {str(h.StudyInstanceUID) for h in headers}
        if len(studies) != 1:
            raise SystemExit(f"the demo data holds {len(studies)} studies, expected one")
        self.study_uid = studies.pop()
        self.sop_uids = {str(h.SOPInstanceUID) for h in headers}
        self.by_sop = {str(h.SOPInstanceUID): f for h, f in zip(headers, self.files)}
        self.transfer_syntax = str(headers[0].file_meta.TransferSyntaxUID)
        self.bytes = sum(f.stat().st_size for f in self.files)
        self.n = len(self.files)


def start_orthanc(workdir: Path, ws_port: int, dcmtk_port: int, max_pdu: int | None) -> OrthancPeer:
    """Orthanc knowing our receiver (WSTEST) and DCMTK (DCMTKSCP: storescp's AET, also the SCUs' calling AET)."""
    orthanc = OrthancPeer(workdir, aet=ORTHANC_AET, ws_aet=WS_AET, ws_port=ws_port, max_pdu=max_pdu,
                          extra_modalities={"dcmtk": modality(DCMTK_AET, dcmtk_port)})
    return orthanc.start()


def load_orthanc(orthanc: OrthancPeer, source: Source) -> str:
    """Make Orthanc hold exactly the source study (kept from an earlier run with --data, else uploaded)."""
    stats = orthanc.statistics()
    held = {s["MainDicomTags"]["StudyInstanceUID"]: s for s in orthanc.studies()}
    if set(held) == {source.study_uid} and int(stats["CountInstances"]) == source.n:
        return f"reused Orthanc's storage ({source.n} instances)"
    if held:
        orthanc.delete_all()
    t0 = time.perf_counter()
    orthanc.upload(source.files)
    seconds = time.perf_counter() - t0
    count = orthanc.instance_count()
    if count != source.n:
        raise SystemExit(f"Orthanc holds {count} instances after the upload, expected {source.n}")
    return f"uploaded {source.n} instances by REST in {seconds:.1f} s"


def make_config(ws_port: int, orthanc: OrthancPeer):
    return parse_site_config({
        "workstation": {"ae_title": WS_AET, "store_port": ws_port, "bind_address": LOCALHOST},
        "pacs": {NODE: {"ae_title": ORTHANC_AET, "host": LOCALHOST, "port": orthanc.port, "timeout_s": 30, "retries": 0}},
    })


def fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def quiet_disk() -> None:
    """Flush dirty pages (the previous run's ~260 MB) so that no run pays for another's writeback."""
    os.sync()


def files_in(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []


# ----------------------------------------------------------------- the four cases

class Bench:
    def __init__(self, args, source: Source, orthanc: OrthancPeer, storescp: dcmtk.StorescpPeer,
                 service_move: PacsService, service_get: PacsService, runs: Path) -> None:
        self.args, self.source, self.orthanc, self.storescp = args, source, orthanc, storescp
        self.service = {"move": service_move, "get": service_get}
        self.getscu_dir = runs / "getscu"
        self.problems: list[str] = []
        self.last: dict[str, list[Path]] = {}
        self.dcmtk_pdu = ["-pdu", str(args.dcmtk_max_pdu)] if args.dcmtk_max_pdu else []

    def _check(self, case: str, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(f"{case}: {what}")

    def ours(self, method: str) -> C.Timed:
        case = f"ours C-{method.upper()}"
        service = self.service[method]
        folder = service.study_dir(self.source.study_uid)
        fresh(folder)  # a first retrieval: every instance is written
        quiet_disk()
        t0 = time.perf_counter()
        result = service.retrieve(NODE, self.source.study_uid, method=method)
        seconds = time.perf_counter() - t0
        n = self.source.n
        written = files_in(folder, "*.dcm")
        self._check(case, (result.received, result.new, result.failed, result.status, result.failures)
                    == (n, n, 0, "complete", []),
                    f"received {result.received}, new {result.new}, failed {result.failed}, status {result.status}, "
                    f"failures {result.failures[:2]}")
        self._check(case, len(written) == n, f"{len(written)} files in the cache, expected {n}")
        self.last[case] = written
        return C.Timed(result, seconds)

    def dcmtk_move(self) -> C.Timed:
        case = "DCMTK C-MOVE"
        out = self.storescp.out_dir
        fresh(out)
        out.mkdir(parents=True)
        quiet_disk()
        t0 = time.perf_counter()
        done = dcmtk.movescu(self.orthanc.port, ORTHANC_AET, DCMTK_AET, DCMTK_AET,
                             {"StudyInstanceUID": self.source.study_uid})
        seconds = time.perf_counter() - t0
        written = files_in(out)
        self._check(case, done.returncode == 0, f"movescu exit {done.returncode}: {(done.stdout + done.stderr)[-500:]}")
        self._check(case, len(written) == self.source.n, f"{len(written)} files from storescp, expected {self.source.n}")
        self.last[case] = written
        return C.Timed(done, seconds)

    def dcmtk_get(self) -> C.Timed:
        case = "DCMTK C-GET"
        fresh(self.getscu_dir)
        self.getscu_dir.mkdir(parents=True)
        quiet_disk()
        args = [*dcmtk.NET_TIMEOUTS, *self.dcmtk_pdu, "-S", "-od", self.getscu_dir, "-aet", DCMTK_AET, "-aec",
                ORTHANC_AET, "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={self.source.study_uid}",
                LOCALHOST, self.orthanc.port]
        t0 = time.perf_counter()
        done = dcmtk.run_tool("getscu", args)
        seconds = time.perf_counter() - t0
        written = files_in(self.getscu_dir)
        self._check(case, done.returncode == 0, f"getscu exit {done.returncode}: {(done.stdout + done.stderr)[-500:]}")
        self._check(case, len(written) == self.source.n, f"{len(written)} files from getscu, expected {self.source.n}")
        self.last[case] = written
        return C.Timed(done, seconds)

    def cases(self) -> dict:
        return {
            "ours C-MOVE": lambda: self.ours("move"),
            "DCMTK C-MOVE": self.dcmtk_move,
            "ours C-GET": lambda: self.ours("get"),
            "DCMTK C-GET": self.dcmtk_get,
        }


def verify(case: str, files: list[Path], source: Source) -> str:
    """The received files are the source instances: same SOP UIDs, transfer syntax, and pixels (one checked)."""
    if not files:
        return f"{case}: no files"
    headers = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        headers[str(ds.SOPInstanceUID)] = (f, str(ds.file_meta.TransferSyntaxUID))
    if set(headers) != source.sop_uids:
        return (f"{case}: DIFFERENT instances ({len(set(headers) - source.sop_uids)} unexpected, "
                f"{len(source.sop_uids - set(headers))} missing)")
    syntaxes = Counter(ts for _, ts in headers.values())
    sop = sorted(source.sop_uids)[len(source.sop_uids) // 2]
    got = pydicom.dcmread(headers[sop][0]).PixelData
    want = pydicom.dcmread(source.by_sop[sop]).PixelData
    size = sum(f.stat().st_size for f in files)
    names = ", ".join(f"{pydicom.uid.UID(ts).name} x{k}" for ts, k in syntaxes.items())
    return (f"{case}: {len(files)} files, {size / 1e6:.1f} MB, all {len(source.sop_uids)} SOP Instance UIDs; "
            f"{names}; pixel data of one instance {'equal' if got == want else 'DIFFERENT'}")


# ----------------------------------------------------------------- max PDU probe

class PduRecorder:
    """Records, while active, the P-DATA-TF PDU lengths our upper layer reads and the peers' Maximum Length."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.peer_max: list[int] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "PduRecorder":
        self._read, self._max = ul.PduSocket.read_pdu_header, ul.maximum_length
        read, maximum, sizes, peer_max, lock = self._read, self._max, self.sizes, self.peer_max, self._lock

        def read_pdu_header(pdus):  # noqa: ANN001
            pdu_type, length = read(pdus)
            if pdu_type == ul.P_DATA_TF_PDU:
                with lock:
                    sizes.append(length)
            return pdu_type, length

        def maximum_length(primitive):  # noqa: ANN001
            value = maximum(primitive)
            peer_max.append(value)
            return value

        ul.PduSocket.read_pdu_header, ul.maximum_length = read_pdu_header, maximum_length
        return self

    def __exit__(self, *exc) -> None:
        ul.PduSocket.read_pdu_header, ul.maximum_length = self._read, self._max

    def summary(self, instances: int) -> str:
        if not self.sizes:
            return "no P-DATA PDU seen"
        big = [s for s in self.sizes if s > 1024]
        return (f"{len(self.sizes)} P-DATA PDUs ({len(self.sizes) / instances:.1f} per instance), "
                f"largest {max(self.sizes):,} bytes, median of those > 1 KiB {int(statistics.median(big or [0])):,}")


def _max_pdu_values(lines: list[str], block: str) -> dict[str, str]:
    """'Our/Their Max PDU Receive Size' values from a DCMTK -d log, inside `block` (e.g. A-ASSOCIATE-AC)."""
    inside, found = False, {}
    for line in lines:
        if f"BEGIN {block}" in line:
            inside = True
        elif f"END {block}" in line:
            break
        elif inside:
            m = re.search(r"(Our|Their) Max PDU Receive Size:\s*(\d+)", line)
            if m:
                found.setdefault(m.group(1).lower(), m.group(2))
    return found


def probe_pdus(bench: Bench, runs: Path) -> list[str]:
    """One untimed run per side: the max PDU each side announces, and what we receive."""
    n = bench.source.n
    out: list[str] = []
    for method in ("move", "get"):
        with PduRecorder() as rec:
            bench.ours(method)
        who = "our C-STORE receiver" if method == "move" else "our C-GET SCU"
        out.append(f"ours C-{method.upper()}: {who} announces {ul.MAX_PDU} (MAX_PDU in "
                   f"workstation/net/ul.py, 0 = no limit), Orthanc {max(rec.peer_max, default='?')}; "
                   f"Orthanc sent {rec.summary(n)}")
    scratch = runs / "probe-getscu"
    fresh(scratch)
    scratch.mkdir(parents=True)
    done = dcmtk.run_tool("getscu", [*dcmtk.NET_TIMEOUTS, *bench.dcmtk_pdu, "-d", "-S", "-od", scratch, "-aet", DCMTK_AET,
                                     "-aec", ORTHANC_AET, "-k", "QueryRetrieveLevel=STUDY",
                                     "-k", f"StudyInstanceUID={bench.source.study_uid}", LOCALHOST,
                                     bench.orthanc.port])
    lines = (done.stdout + done.stderr).splitlines()
    values = _max_pdu_values(lines, "A-ASSOCIATE-AC")
    pdv = next((m.group(1) for m in map(re.compile(r"Max Send PDV: (\d+)").search, lines) if m), "?")
    out.append(f"DCMTK C-GET: getscu announces {values.get('our', '?')}, Orthanc {values.get('their', '?')} "
               f"(getscu's max send PDV {pdv}); Orthanc sends PDUs of at most {values.get('our', '?')} bytes to it")
    fresh(scratch)
    port = bench.storescp.port
    bench.storescp.stop()
    debug_scp = dcmtk.StorescpPeer(runs / "probe-storescp", aet=DCMTK_AET, extra_args=[*bench.dcmtk_pdu, "-d"])
    debug_scp.port = port
    try:
        debug_scp.start()
        dcmtk.movescu(bench.orthanc.port, ORTHANC_AET, DCMTK_AET, DCMTK_AET, {"StudyInstanceUID": bench.source.study_uid})
        debug_scp.stop()
        lines = debug_scp.output_path.read_text(errors="replace").splitlines()
        # the last A-ASSOCIATE-AC in the log: the association from Orthanc (the first ones are the start-up C-ECHO probe)
        starts = [i for i, line in enumerate(lines) if "BEGIN A-ASSOCIATE-AC" in line]
        values = _max_pdu_values(lines[starts[-1]:] if starts else [], "A-ASSOCIATE-AC")
        out.append(f"DCMTK C-MOVE: storescp announces {values.get('our', '?')}, Orthanc {values.get('their', '?')}; "
                   f"Orthanc sends PDUs of at most {values.get('our', '?')} bytes to it")
    finally:
        debug_scp.stop()
        fresh(runs / "probe-storescp")
    return out


# ----------------------------------------------------------------- profile

def profile(bench: Bench, how: str, method: str, out_path: str | None) -> str:
    """Profile one ours run (`method`), in every thread (in C-MOVE our receiver stores on its own threads)."""
    buf = io.StringIO()
    if how == "pyinstrument":
        try:
            from pyinstrument import Profiler
        except ImportError:
            buf.write("(pyinstrument not installed: using cProfile)\n")
            how = "cprofile"
    if how == "py-spy":
        buf.write(py_spy_profile(bench, method))
    elif how == "pyinstrument":
        # pyinstrument samples the thread that starts it only: for C-GET that is the thread that receives and
        # stores every instance; in C-MOVE the receiver's threads do that and show up as waiting.
        profiler = Profiler(interval=0.0005)
        profiler.start()
        timed = bench.ours(method)
        profiler.stop()
        buf.write(f"ours C-{method.upper()} under pyinstrument (calling thread only): {timed.seconds:.2f} s\n")
        buf.write(profiler.output_text(unicode=False, color=False, show_all=False))
    else:
        import cProfile
        import pstats

        profiles: dict[str, cProfile.Profile] = {}
        lock = threading.Lock()

        def hook(*_a):  # first profile event in a new thread: give the thread its own profiler
            prof = cProfile.Profile()
            with lock:
                profiles[f"{threading.current_thread().name}#{len(profiles)}"] = prof
            prof.enable()  # replaces this hook for the thread

        main = cProfile.Profile()
        threading.setprofile(hook)
        main.enable()
        try:
            timed = bench.ours(method)
        finally:
            main.disable()
            threading.setprofile(None)
        time.sleep(0.2)  # let the receiver's association threads finish; their profilers keep the data
        buf.write(f"ours C-{method.upper()} under cProfile (all threads): {timed.seconds:.2f} s; "
                  f"threads profiled: calling thread + {', '.join(profiles) or 'none'}\n")
        stats = pstats.Stats(main, stream=buf)
        for prof in profiles.values():
            try:
                stats.add(prof)
            except (TypeError, ValueError):
                pass
        for key in ("tottime", "cumulative"):
            buf.write(f"\n--- cProfile, all threads merged, top 35 by {key} ---\n")
            stats.strip_dirs().sort_stats(key).print_stats(35)
    text = buf.getvalue()
    if out_path:
        Path(out_path).write_text(text)
    return text


def thread_kind(frames: list[str]) -> str | None:
    """What a py-spy stack's thread does; None for samples outside the run (the calling thread elsewhere, idle listener)."""
    text = ";".join(frames)
    if "StoreReceiver._serve" in text:
        return "our C-STORE receiver: one thread per association (C-MOVE)"
    if "Bench.ours" in text:
        return "calling thread: retrieve() (receives and stores every instance in C-GET)"
    if "StoreReceiver._accept" in text or "MainThread" in frames[0]:
        return None
    return frames[0].split(": ", 1)[-1] or "other"


def py_spy_profile(bench: Bench, method: str, rate: int = 1000) -> str:
    """Sample every thread of this process with py-spy (wall clock, idle included) during one ours run."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        return "py-spy not found: .venv/bin/pip install py-spy\n"
    raw = bench.getscu_dir.parent / "py-spy.txt"
    proc = subprocess.Popen([spy, "record", "--pid", str(os.getpid()), "--rate", str(rate), "--idle", "--threads",
                             "--nonblocking", "--format", "raw", "-o", str(raw)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # py-spy attaches
    if proc.poll() is not None:
        return f"py-spy failed: {proc.stderr.read().decode(errors='replace')[-500:]}\n"
    timed = bench.ours(method)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    threads: Counter = Counter()
    inclusive: Counter = Counter()
    leaf: Counter = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        name = thread_kind(frames)
        if name is None:
            continue
        n = int(count)
        threads[name] += n
        funcs = [re.sub(r" \((?:.*/)?([^/]+):(\d+)\)$", r" (\1)", f) for f in frames[1:]]
        for f in set(funcs):
            inclusive[(name, f)] += n
        if len(frames) > 1:
            leaf[(name, re.sub(r" \((?:.*/)?([^/]+):(\d+)\)$", r" (\1:\2)", frames[-1]))] += n
    raw.unlink(missing_ok=True)
    ms = 1000 / rate
    out = [f"ours C-{method.upper()} sampled by py-spy every {ms:g} ms, all threads, idle time included: "
           f"{timed.seconds:.2f} s (the calling thread counted inside the run only; the idle listener left out)",
           "", "milliseconds per thread kind (threads of the same kind added up):"]
    out += [f"  {n * ms:8.0f}  {name}" for name, n in threads.most_common(8)]
    out += ["", "where each thread kind spends its time (inclusive ms, top 25 functions per kind):"]
    for name, _ in threads.most_common(3):
        out.append(f"  [{name}]")
        rows = [(f, n) for (t, f), n in inclusive.most_common() if t == name][:25]
        out += [f"    {n * ms:8.0f}  {f}" for f, n in rows]
    out += ["", "top 30 leaves (self ms: where the samples land, sleeping and waiting included):"]
    out += [f"  {n * ms:8.0f}  [{t}] {f}" for (t, f), n in leaf.most_common(30)]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------- main

def tool_version(tool: str) -> str:
    try:
        done = subprocess.run([require_tool(tool), "--version"], capture_output=True, text=True, timeout=10)
    except (PeerError, OSError, subprocess.TimeoutExpired):
        return "?"
    found = re.search(r"\d+\.\d+\.\d+", done.stdout)
    return found.group(0) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data", help="folder for the demo study and Orthanc's storage, reused next time "
                                       "(default: a temp dir)")
    parser.add_argument("--orthanc-max-pdu", type=int, help="Orthanc's MaximumPduLength (default: Orthanc's own, 16384)")
    parser.add_argument("--dcmtk-max-pdu", type=int, help="storescp/getscu --max-pdu (default: DCMTK's own, 16384)")
    parser.add_argument("--no-probe", action="store_true", help="skip the max PDU probe runs")
    parser.add_argument("--profile", choices=["cprofile", "pyinstrument", "py-spy"],
                        help="also profile one retrieval of ours (py-spy: every thread, wall clock; needs py-spy installed)")
    parser.add_argument("--profile-method", choices=["move", "get"], default="get")
    parser.add_argument("--profile-out", help="write the profile to this file instead of only printing it")
    args = parser.parse_args()

    print(f"retrieve: python {platform.python_version()}, pydicom {pydicom.__version__}, "
          f"pynetdicom {pynetdicom.__version__}, Orthanc {tool_version('Orthanc')}, DCMTK {tool_version('movescu')}; "
          f"{os.cpu_count()} CPUs; private network namespace (loopback only)")
    data = C.DemoData(args.data, args.slices, args.size, args.seed)
    runs = data.root / "runs"
    orthanc = storescp = None
    services: list[PacsService] = []
    try:
        print(f"data: {data.describe()}")
        source = Source(data)
        fresh(runs)
        ws_port = free_port()
        storescp = dcmtk.StorescpPeer(runs / "storescp", aet=DCMTK_AET,
                                      extra_args=["-pdu", str(args.dcmtk_max_pdu)] if args.dcmtk_max_pdu else [])
        orthanc = start_orthanc(data.root / "orthanc", ws_port, storescp.port, args.orthanc_max_pdu)
        print(f"Orthanc: {load_orthanc(orthanc, source)}; MaximumPduLength "
              f"{args.orthanc_max_pdu or 'default (16384)'}")
        storescp.start()
        config = make_config(ws_port, orthanc)
        services = [PacsService(config, StudyCache(runs / f"cache-{m}", 100 * 1024**3)) for m in ("move", "get")]
        bench = Bench(args, source, orthanc, storescp, services[0], services[1], runs)

        timings, results = C.interleaved(bench.cases(), args.repeats, args.warmup)

        n, mb = source.n, source.bytes / 1e6
        rows = []
        for case in CASES:
            t = timings[case]
            rows.append([case, C.seconds(t.best), C.seconds(t.median), f"{n / t.best:.0f}", f"{n / t.median:.0f}",
                         f"{mb / t.best:.0f}"])
        print()
        print(f"{n} instances ({mb:.0f} MB) per run; best and median of {args.repeats} runs after {args.warmup} "
              f"warm-up, interleaved; ratio = ours / DCMTK in instances/s (target >= 0.9)")
        print(C.table(["retrieve", "best", "median", "inst/s best", "inst/s median", "MB/s best"], rows))
        for method in ("MOVE", "GET"):
            ours, base = timings[f"ours C-{method}"], timings[f"DCMTK C-{method}"]
            ratio, ratio_med = base.best / ours.best, base.median / ours.median
            print(f"C-{method}: ours/DCMTK {ratio:.2f} of the bests, {ratio_med:.2f} of the medians "
                  f"({'meets' if ratio >= 0.9 else 'MISSES'} the >= 0.9 target, judged on the bests)")
        print()
        print("checks: " + ("every run received and wrote all instances" if not bench.problems else
                            f"{len(bench.problems)} PROBLEM(S):\n  " + "\n  ".join(bench.problems[:12])))
        for case in CASES:
            print("  " + verify(case, bench.last.get(case, []), source))
        del results

        if not args.no_probe:
            print()
            print("max PDU (one untimed run per side):")
            for line in probe_pdus(bench, runs):
                print("  " + line)
        if args.profile:
            print()
            text = profile(bench, args.profile, args.profile_method, args.profile_out)
            print(text if len(text) < 25000 else text[:25000] + "\n... (cut; see --profile-out)")
        if bench.problems:
            raise SystemExit(1)
    finally:
        for service in services:
            service.close()
        for peer in (storescp, orthanc):
            if peer is not None:
                peer.stop()
        fresh(runs)
        data.cleanup()


if __name__ == "__main__":
    main()
