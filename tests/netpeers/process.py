"""Free ports and a server process that cannot outlive the test session."""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path

from .isolation import isolation_problem

LOCALHOST = "127.0.0.1"

_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1, never handed out twice in one session.

    Taken below the kernel's ephemeral range (so an outgoing connection cannot grab a port reserved
    for a server that binds it later, e.g. the workstation's store port), checked by binding it;
    falls back to ``bind(0)``.
    """
    low = _ephemeral_low()
    if low > 20000:
        for _ in range(200):
            port = random.randrange(20000, low)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOCALHOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


class PeerError(RuntimeError):
    """A DICOM peer could not be started or used."""


def require_isolation() -> None:
    """Raise unless the process is in a private, loopback-only network namespace.

    Orthanc and DCMTK listen on all interfaces: outside such a namespace they would be reachable from
    the network. The peer fixtures call this first and fail (not skip) with the reason.
    """
    problem = isolation_problem()
    if problem is not None:
        raise PeerError(
            "DICOM peer tests need a private network namespace (root + unshare(CLONE_NEWNET); CI has "
            f"both); refusing to start servers that listen on all interfaces. Reason: {problem}")


def require_tool(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if path is None:
        raise PeerError(f"{name} not found: install the Debian packages 'orthanc' and 'dcmtk' (CI does)")
    return path


def peer_env(**extra: str) -> dict[str, str]:
    """Environment for Orthanc/DCMTK: TCP_NODELAY=1 (else each C-STORE waits ~48 ms for Nagle)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["TCP_NODELAY"] = "1"
    env.update(extra)
    return env


_running: "weakref.WeakSet[PeerProcess]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for peer in list(_running):
        peer.stop()


class PeerProcess:
    """A server started in its own process group; ``stop()`` ends the group.

    The process also gets SIGKILL when the pytest process dies (``setpriv --pdeathsig KILL``), so a
    crashed or killed test session leaves no server behind.
    """

    name = "peer"
    graceful_stop = True  # False: stop() sends SIGKILL at once (Orthanc needs ~3.4 s to stop cleanly)

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.output_path = self.workdir / f"{self.name}.out"
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def _spawn(self, argv: list[str], cwd: Path | None = None) -> None:
        require_isolation()
        setpriv = shutil.which("setpriv")
        if setpriv:
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        self._out = open(self.output_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=cwd or self.workdir, env=peer_env(), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        _running.add(self)

    def _wait_ready(self, probe, timeout: float, what: str) -> None:
        """Poll ``probe()`` (True when ready) until ``timeout``; raise with the peer's log on failure."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last_error = ""
        while True:
            if self.proc is not None and self._exited_unreaped():
                self.stop()
                raise PeerError(f"{self.name} exited with code {self.proc.returncode} while starting\n{self.log_tail()}")
            try:
                if probe():
                    self.start_seconds = time.monotonic() - t0
                    return
            except Exception as exc:  # noqa: BLE001 - report the last one
                last_error = repr(exc)
            if time.monotonic() > deadline:
                self.stop()
                raise PeerError(f"{self.name} not ready after {timeout:.0f} s ({what}; last error {last_error})\n"
                                f"{self.log_tail()}")
            time.sleep(0.05)

    def start(self):
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self._exited_unreaped()

    def stop(self, timeout: float = 5.0, graceful: bool | None = None) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout`` seconds. Idempotent.

        ``graceful=False`` (default: the class's ``graceful_stop``) skips the SIGTERM and waits for nothing.

        The group is signalled only while the leader is not yet reaped (its pid cannot be reused then);
        the final SIGKILL also ends children forked per association (dcmqrscp) that ignored SIGTERM.
        """
        proc = self.proc
        if proc is None:
            return
        if graceful is None:
            graceful = self.graceful_stop
        if proc.returncode is None:
            if graceful:
                self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + (timeout if graceful else 0)
            while time.monotonic() < deadline and not self._exited_unreaped():
                time.sleep(0.02)
            self._signal_group(signal.SIGKILL)
            proc.wait(10)
        _running.discard(self)
        out = getattr(self, "_out", None)
        if out is not None and not out.closed:
            out.close()

    def _exited_unreaped(self) -> bool:
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):  # last resort; fixtures stop peers explicitly
        try:
            self.stop()
        except Exception:  # noqa: BLE001
            pass

    # -- diagnostics -----------------------------------------------------------------------------
    def log_files(self) -> list[Path]:
        return [self.output_path]

    def log_tail(self, chars: int = 6000) -> str:
        parts = []
        for path in self.log_files():
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            parts.append(f"--- {path.name} ---\n{text[-chars:]}")
        return "\n".join(parts) or f"(no log from {self.name})"
