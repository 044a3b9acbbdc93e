"""DCMTK peers (``dcmqrscp``, ``storescp``) and thin wrappers of DCMTK's SCU command-line tools.

Every tool runs with ``TCP_NODELAY=1`` and explicit network timeouts, so a broken peer fails a test
instead of hanging it. The SCU wrappers return the ``CompletedProcess`` (``returncode``, ``stdout``,
``stderr``, text); they do not raise on a DICOM failure, tests assert on the return code.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pydicom

from .certs import TlsCerts
from .process import LOCALHOST, PeerError, PeerProcess, free_port, peer_env, require_tool

NET_TIMEOUTS = ["-to", "10", "-ta", "10", "-td", "60"]  # connect, ACSE, DIMSE seconds


# -- SCU tools --------------------------------------------------------------------------------------

def run_tool(tool: str, args: Sequence[str | Path], timeout: float = 120, cwd: Path | None = None
             ) -> subprocess.CompletedProcess:
    """Run one DCMTK tool; ``timeout`` seconds is a hard limit (the test fails, nothing hangs).

    DCMTK 3.6.7's findscu exits 0 even when the peer aborts the association; so a run that logged an
    error (a line starting ``E: `` or ``F: ``) is reported with ``returncode`` 1 whatever the tool said.
    """
    argv = [require_tool(tool), *map(str, args)]
    try:
        done = subprocess.run(argv, env=peer_env(), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise PeerError(f"{tool} did not finish in {timeout} s: {argv}\n{exc.stdout}\n{exc.stderr}") from exc
    if done.returncode == 0 and any(line.startswith(("E: ", "F: ")) for line in (done.stdout + done.stderr).splitlines()):
        done.returncode = 1
    return done


def tls_client_args(certs: TlsCerts, *, trust: Path | None = None, cert: Path | None = None,
                    key: Path | None = None) -> list[str]:
    """``+tls key cert +cf ca`` for a DCMTK SCU: the test client certificate, trusting the test CA.

    ``trust=certs.wrong_ca_cert`` makes the client distrust the server; ``cert``/``key`` present another
    certificate (e.g. ``certs.wrong_client_cert``/``wrong_client_key``).
    """
    return ["+tls", str(key or certs.client_key), str(cert or certs.client_cert), "+cf", str(trust or certs.ca_cert)]


def _keys(keys: Mapping[str, str] | Iterable[str]) -> list[str]:
    """``{"StudyInstanceUID": "", "PatientID": "X"}`` -> ``-k StudyInstanceUID= -k PatientID=X``."""
    items = keys.items() if isinstance(keys, Mapping) else ((k, None) for k in keys)
    out: list[str] = []
    for name, value in items:
        out += ["-k", name if value is None else f"{name}={value}"]
    return out


def echoscu(port: int, called_aet: str, calling_aet: str = "WSTEST", *, host: str = LOCALHOST,
            tls: Sequence[str] = (), timeout: float = 30) -> subprocess.CompletedProcess:
    return run_tool("echoscu", [*NET_TIMEOUTS, *tls, "-aet", calling_aet, "-aec", called_aet, host, port],
                    timeout=timeout)


def findscu(port: int, called_aet: str, calling_aet: str, keys: Mapping[str, str] | Iterable[str], out_dir: Path, *,
            level: str = "STUDY", host: str = LOCALHOST, tls: Sequence[str] = (), timeout: float = 60
            ) -> tuple[subprocess.CompletedProcess, list[pydicom.Dataset]]:
    """Study-root C-FIND; returns the process and the responses (written by ``-X`` into ``out_dir``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("rsp*.dcm"):
        old.unlink()
    done = run_tool("findscu", [*NET_TIMEOUTS, *tls, "-S", "-X", "-od", out_dir, "-aet", calling_aet,
                                "-aec", called_aet, "-k", f"QueryRetrieveLevel={level}", *_keys(keys), host, port],
                    timeout=timeout)
    return done, [pydicom.dcmread(p) for p in sorted(out_dir.glob("rsp*.dcm"))]


def movescu(port: int, called_aet: str, calling_aet: str, destination_aet: str,
            keys: Mapping[str, str] | Iterable[str], *, level: str = "STUDY", host: str = LOCALHOST,
            tls: Sequence[str] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """Study-root C-MOVE to ``destination_aet`` (which the peer must know)."""
    return run_tool("movescu", [*NET_TIMEOUTS, *tls, "-S", "-aet", calling_aet, "-aec", called_aet,
                                "-aem", destination_aet, "-k", f"QueryRetrieveLevel={level}", *_keys(keys),
                                host, port], timeout=timeout)


def getscu(port: int, called_aet: str, calling_aet: str, keys: Mapping[str, str] | Iterable[str], out_dir: Path, *,
           level: str = "STUDY", host: str = LOCALHOST, tls: Sequence[str] = (), timeout: float = 120
           ) -> subprocess.CompletedProcess:
    """Study-root C-GET; received files are written into ``out_dir``."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return run_tool("getscu", [*NET_TIMEOUTS, *tls, "-S", "-od", out_dir, "-aet", calling_aet, "-aec", called_aet,
                               "-k", f"QueryRetrieveLevel={level}", *_keys(keys), host, port], timeout=timeout)


def storescu(port: int, called_aet: str, paths: Iterable[Path | str], calling_aet: str = "STORESCU", *,
             host: str = LOCALHOST, tls: Sequence[str] = (), timeout: float = 300) -> subprocess.CompletedProcess:
    """C-STORE files (directories are scanned recursively) in one association."""
    return run_tool("storescu", [*NET_TIMEOUTS, *tls, "+sd", "+r", "-aet", calling_aet, "-aec", called_aet,
                                 host, port, *map(str, paths)], timeout=timeout)


# -- servers ----------------------------------------------------------------------------------------

class DcmqrscpPeer(PeerProcess):
    """DCMTK's Q/R SCP in its default forking mode (``--single-process`` segfaults after one association).

    The HostTable knows the workstation as ``ws = (<ws_aet>, 127.0.0.1, <ws_port>)`` plus
    ``extra_hosts`` ({symbolic name: (aet, port)}), so those are valid C-MOVE destinations. ``peers``
    is the AETable's peer list: "ANY" or symbolic names from the HostTable (e.g. "ws").
    Note: dcmqrscp answers no SeriesDescription, ModalitiesInStudy or instance counts.
    """

    name = "dcmqrscp"

    def __init__(self, workdir: Path, *, aet: str = "DCMQRSCP", ws_aet: str = "WSTEST", ws_port: int | None = None,
                 extra_hosts: Mapping[str, tuple[str, int]] | None = None, peers: str = "ANY",
                 max_pdu: int = 16384, max_associations: int = 16, extra_args: Sequence[str] = ()):
        super().__init__(workdir)
        self.aet = aet
        self.host = LOCALHOST
        self.port = free_port()
        self.ws_aet = ws_aet
        self.ws_port = ws_port if ws_port is not None else free_port()
        self.db_dir = self.workdir / "db"
        self.config_path = self.workdir / "dcmqrscp.cfg"
        self.extra_args = list(extra_args)
        hosts = {"ws": (ws_aet, self.ws_port), **(extra_hosts or {})}
        host_lines = "\n".join(f"{name} = ({h_aet}, {LOCALHOST}, {h_port})" for name, (h_aet, h_port) in hosts.items())
        self.config_text = (
            f"NetworkTCPPort  = {self.port}\n"
            f"MaxPDUSize      = {max_pdu}\n"
            f"MaxAssociations = {max_associations}\n\n"
            f"HostTable BEGIN\n{host_lines}\nHostTable END\n\n"
            "VendorTable BEGIN\nVendorTable END\n\n"
            f"AETable BEGIN\n{aet} {self.db_dir} RW (400, 1024mb) {peers}\nAETable END\n"
        )

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self, timeout: float = 15.0) -> "DcmqrscpPeer":
        binary = require_tool("dcmqrscp")
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text)
        self._spawn([binary, "-c", str(self.config_path), *self.extra_args])
        self._wait_ready(lambda: echoscu(self.port, self.aet, "PROBE", timeout=10).returncode == 0, timeout, "C-ECHO")
        return self

    def store(self, paths: Iterable[Path | str], calling_aet: str = "STORESCU") -> subprocess.CompletedProcess:
        """C-STORE the files (or directories) into the archive; raises when storescu reports a failure."""
        done = storescu(self.port, self.aet, paths, calling_aet)
        if done.returncode != 0 or "E: " in done.stdout + done.stderr:
            raise PeerError(f"storescu into dcmqrscp failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                            f"{self.log_tail()}")
        return done

    def stored_files(self) -> list[Path]:
        return sorted(p for p in self.db_dir.iterdir() if p.is_file() and p.name != "index.dat")


class StorescpPeer(PeerProcess):
    """DCMTK's storescp (one association at a time), writing received objects into ``out_dir``.

    With ``tls`` it speaks DICOM TLS only, with the test server certificate (or ``server_cert`` /
    ``server_key``) and trusting ``trust`` (default: the test CA). ``require_client_cert=True`` is
    DCMTK's ``--require-peer-cert`` (``-rc``: verify, fail if absent); False is ``--ignore-peer-cert``
    (``-ic``: no client certificate needed, none verified). All transfer syntaxes are accepted (``+xa``)
    unless ``profile`` = (config file, profile name) says which presentation contexts it takes (``-xf``).
    """

    name = "storescp"

    def __init__(self, workdir: Path, *, aet: str = "STORESCP", tls: TlsCerts | None = None,
                 require_client_cert: bool = True, trust: Path | None = None, server_cert: Path | None = None,
                 server_key: Path | None = None, extra_args: Sequence[str] = (),
                 profile: tuple[Path, str] | None = None):
        super().__init__(workdir)
        self.aet = aet
        self.host = LOCALHOST
        self.port = free_port()
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.out_dir = self.workdir / "received"
        accept = ["-xf", str(profile[0]), profile[1]] if profile else ["+xa"]
        args = ["-aet", aet, "-od", str(self.out_dir), *accept, "-dhl", *extra_args]
        if tls is not None:
            args += ["+tls", str(server_key or tls.server_key), str(server_cert or tls.server_cert),
                     "+cf", str(trust or tls.ca_cert), "-rc" if require_client_cert else "-ic"]
        self.args = args

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def client_tls_args(self) -> list[str]:
        """What a DCMTK SCU needs to talk to this peer (empty without TLS)."""
        return tls_client_args(self.tls) if self.tls is not None else []

    def start(self, timeout: float = 15.0) -> "StorescpPeer":
        binary = require_tool("storescp")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._spawn([binary, *self.args, str(self.port)])
        self._wait_ready(lambda: echoscu(self.port, self.aet, "PROBE", tls=self.client_tls_args(),
                                         timeout=10).returncode == 0, timeout, "C-ECHO")
        return self

    def received_files(self) -> list[Path]:
        return sorted(p for p in self.out_dir.rglob("*") if p.is_file())
