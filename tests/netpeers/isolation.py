"""Move the test process into a private network namespace where only loopback exists.

Orthanc 1.10 and DCMTK 3.6.7 cannot bind to 127.0.0.1 only: they listen on all interfaces. The tests
therefore run them (and the whole pytest process, whose children inherit the namespace) in a fresh
network namespace (``unshare(CLONE_NEWNET)``) in which ``lo`` is the only interface. Nothing outside
the namespace can reach a server started in it, and nothing in it can reach the outside.

``enter_private_netns()`` must run before the process starts any thread: ``unshare`` changes the
namespace of the calling thread only, so a thread started earlier would stay on the host network.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys

CLONE_NEWNET = 0x40000000
OPT_OUT_ENV = "WS_TEST_NO_NETNS"  # set to 1 to keep the host network (peer tests then fail)

_problem: str | None = "network isolation was not attempted (tests/conftest.py did not run)"


def _interfaces() -> list[str]:
    return [name for _, name in socket.if_nameindex()]


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _loopback_up() -> None:
    """``ip link set lo up``; falls back to the SIOCSIFFLAGS ioctl when iproute2 is absent."""
    ip = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else None)
    if ip:
        done = subprocess.run([ip, "link", "set", "lo", "up"], capture_output=True, text=True)
        if done.returncode == 0:
            return
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, req))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def _loopback_works() -> bool:
    try:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            with socket.create_connection(srv.getsockname(), timeout=2):
                pass
        return True
    except OSError:
        return False


def network_isolated() -> bool:
    """True when this process sees only ``lo`` and loopback works (checked live, not remembered)."""
    return _interfaces() == ["lo"] and _loopback_works()


def isolation_problem() -> str | None:
    """Why the process is not isolated (None when it is)."""
    if network_isolated():
        return None
    return _problem or f"the process sees network interfaces {_interfaces()}"


def enter_private_netns() -> bool:
    """Enter a new network namespace (once, as root, on Linux) and bring ``lo`` up. Returns success.

    Already isolated (only ``lo`` visible, e.g. the session was started under ``unshare --net``):
    only makes sure ``lo`` is up.
    """
    global _problem
    if not sys.platform.startswith("linux"):
        _problem = f"DICOM peer tests need Linux network namespaces (this is {sys.platform})"
        return False
    if os.environ.get(OPT_OUT_ENV) == "1":
        _problem = f"network isolation disabled by {OPT_OUT_ENV}=1"
        return False
    if _interfaces() != ["lo"]:
        if os.geteuid() != 0:
            _problem = ("DICOM peer tests need root to unshare(CLONE_NEWNET) (CI runs as root); "
                        "or start pytest inside 'unshare --net' with lo up")
            return False
        threads = _thread_count()
        if threads != 1:
            _problem = (f"cannot isolate: the process already runs {threads} threads; unshare(CLONE_NEWNET) "
                        "would move only one of them")
            return False
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            _problem = (f"unshare(CLONE_NEWNET) failed: {errno.errorcode.get(err, err)} {os.strerror(err)}; "
                        "DICOM peer tests need root and unshare (CI has both)")
            return False
    try:
        _loopback_up()
    except OSError as exc:
        _problem = f"could not bring up lo in the private network namespace: {exc}"
        return False
    if not network_isolated():
        _problem = f"still not isolated after unshare: interfaces {_interfaces()}"
        return False
    _problem = None
    return True
