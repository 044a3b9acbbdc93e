#!/usr/bin/env python
"""Benchmark: our hardened C-STORE receiver against DCMTK storescp, and against hostile peers.

RATE     DCMTK storescu pushes a demo CT (--slices, default 200 x 512x512) in one association, to our
         receiver (PacsService.start_receiver: every data set walked to its end before it is kept)
         and to storescp (-od, +xa), interleaved; best and median of --repeats runs; ratio = storescp
         time / our time (above 1: ours faster).
IDLE     400 TCP connections that never send an A-ASSOCIATE-RQ: threads and RSS of our process, and
         whether storescu still stores meanwhile (before the hardening: 402 threads, +409 MB, refused).
DEFLATE  one deflated data set of 256 MB (257 kB on the wire): peak RSS of our process while it is
         received (inflated 1 MB at a time into a file; before: +512 MB).
RELEASE  an A-RELEASE-RQ announcing 2 GB followed by 64 MB of zeros: how many bytes the peer could send
         before the A-ABORT closed the connection, and the RSS (before: buffered whole).

The script moves itself into a private network namespace (only loopback) before anything starts a
thread: DCMTK listens on all interfaces (root and Linux needed; see tests/netpeers).

    .venv/bin/python bench/receiver.py [--slices 200] [--repeats 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from netpeers.isolation import enter_private_netns, isolation_problem  # noqa: E402  (stdlib only)

if not {"-h", "--help"} & set(sys.argv[1:]) and not enter_private_netns():
    raise SystemExit(f"receiver.py needs a private network namespace: {isolation_problem()}")

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

import _common as C  # noqa: E402,F401  (puts the checkout on sys.path)
import pydicom  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402
from pynetdicom import build_context  # noqa: E402

from netpeers.dcmtk import StorescpPeer  # noqa: E402
from netpeers.process import LOCALHOST, free_port, peer_env  # noqa: E402
from workstation.core.site import parse_site_config  # noqa: E402
from workstation.demo import write_demo_study  # noqa: E402
from workstation.dicom.cache import StudyCache  # noqa: E402
from workstation.dicom.encoded import meta_transfer_syntax  # noqa: E402
from workstation.net import ul  # noqa: E402
from workstation.net.dimse import (  # noqa: E402
    AFFECTED_SOP_CLASS_UID, AFFECTED_SOP_INSTANCE_UID, C_STORE_RQ, COMMAND_DATA_SET_TYPE, COMMAND_FIELD, MESSAGE_ID,
    PRIORITY, STATUS, MessageChannel, encode_command_set, ui, us)
from workstation.services.pacs import PacsService  # noqa: E402


def rss_mb() -> float:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024


def push(port: int, called: str, files: list) -> float:
    started = time.perf_counter()
    done = subprocess.run(["storescu", "-to", "30", "-ta", "30", "-R", "-xe", "-aet", "STORESCU", "-aec", called,
                           LOCALHOST, str(port), *map(str, files)], capture_output=True, text=True, env=peer_env())
    if done.returncode or "E: " in done.stdout + done.stderr:
        raise SystemExit(f"storescu to {called} failed: {done.stdout}{done.stderr}")
    return time.perf_counter() - started


def associate(port: int, syntax: str) -> socket.socket:
    context = build_context("1.2.840.10008.5.1.4.1.1.2", [syntax])
    context.context_id = 1
    sock = socket.create_connection((LOCALHOST, port), timeout=60)
    sock.sendall(ul.a_associate_rq("STORESCU", "WSBENCH", [context], []))
    assert ul.PduSocket(sock).read_pdu()[0] == ul.A_ASSOCIATE_AC_PDU
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ws-bench-receiver-"))
    port = free_port()
    config = parse_site_config({"workstation": {"ae_title": "WSBENCH", "store_port": port, "bind_address": LOCALHOST},
                                "pacs": {"SENDER": {"ae_title": "STORESCU", "host": LOCALHOST, "port": 104}}})
    service = PacsService(config, StudyCache(tmp / "cache", 10**12))
    service.start_receiver()
    ct = get_testdata_file("CT_small.dcm", download=False)
    try:
        # IDLE
        threads, rss = threading.active_count(), rss_mb()
        idle = [socket.create_connection((LOCALHOST, port)) for _ in range(400)]
        time.sleep(1)
        idle_threads, idle_rss = threading.active_count(), rss_mb()
        push(port, "WSBENCH", [ct])
        print(f"IDLE     400 idle connections: threads {threads} -> {idle_threads}, RSS {rss:.0f} -> {idle_rss:.0f} MB; "
              "storescu stored meanwhile")
        for sock in idle:
            sock.close()

        # DEFLATE
        raw = Path(ct).read_bytes()
        plain = raw[meta_transfer_syntax(raw)[1]:]
        ds = pydicom.dcmread(ct)
        pixels = plain.index(b"\xe0\x7f\x10\x00OW")
        deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        deflated = (deflate.compress(plain[:pixels] + b"\xe0\x7f\x10\x00OW\x00\x00" + (256 << 20).to_bytes(4, "little"))
                    + b"".join(deflate.compress(bytes(1 << 20)) for _ in range(256)) + deflate.flush())
        sock = associate(port, "1.2.840.10008.1.2.1.99")
        command = encode_command_set([
            (AFFECTED_SOP_CLASS_UID, ui(ds.SOPClassUID)), (COMMAND_FIELD, us(C_STORE_RQ)), (MESSAGE_ID, us(1)),
            (PRIORITY, us(0)), (COMMAND_DATA_SET_TYPE, us(0)), (AFFECTED_SOP_INSTANCE_UID, ui(ds.SOPInstanceUID))])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        sock.sendall(ul.p_data_tf(1, ul.COMMAND | ul.LAST_FRAGMENT, command) + ul.p_data_tf(1, ul.LAST_FRAGMENT, deflated))
        status = MessageChannel(ul.PduSocket(sock), {1: "1.2.840.10008.1.2.1"}, None, 0).receive().command.us(STATUS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"DEFLATE  {len(deflated) / 1024:.0f} kB deflated, 256 MB inflated: status 0x{status:04X} in "
              f"{time.perf_counter() - started:.1f} s, peak RSS {before:.0f} -> {peak:.0f} MB")
        sock.sendall(ul.A_RELEASE_RQ)
        sock.close()

        # RELEASE
        sock = associate(port, "1.2.840.10008.1.2.1")
        rss = rss_mb()
        sent = 0
        try:
            sock.sendall(ul.PDU_HEADER.pack(ul.A_RELEASE_RQ_PDU, 0x7FFFFFFF))
            chunk = bytes(1 << 20)
            for _ in range(64):
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        print(f"RELEASE  A-RELEASE-RQ announcing 2 GB: aborted after {sent >> 20} MB of its body could be sent "
              f"(socket buffers), RSS {rss:.0f} -> {rss_mb():.0f} MB")
        sock.close()

        # RATE
        series = write_demo_study(tmp / "ct", seed=3, slices=args.slices, size=512)
        files = list(series.files)
        dcmtk = StorescpPeer(tmp / "storescp").start()
        ours, theirs = [], []
        try:
            for _ in range(args.repeats + 1):  # the first round warms both up
                shutil.rmtree(service.cache.root / "studies", ignore_errors=True)
                (service.cache.root / "studies").mkdir()
                ours.append(push(port, "WSBENCH", files))
                shutil.rmtree(dcmtk.out_dir, ignore_errors=True)
                dcmtk.out_dir.mkdir()
                theirs.append(push(dcmtk.port, dcmtk.aet, files))
        finally:
            dcmtk.stop()
        ours, theirs = ours[1:], theirs[1:]
        print(f"RATE     storescu {args.slices} x 512x512 slices: ours best {min(ours):.2f} s, median "
              f"{statistics.median(ours):.2f} s ({args.slices / min(ours):.0f} instances/s); storescp best "
              f"{min(theirs):.2f} s, median {statistics.median(theirs):.2f} s; ratio {min(theirs) / min(ours):.2f}")
    finally:
        service.close()
        shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)


if __name__ == "__main__":
    main()
