"""A real Orthanc PACS (Debian package ``orthanc``) on free loopback ports, for query/retrieve tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable

from .certs import TlsCerts
from .process import LOCALHOST, PeerError, PeerProcess, free_port, require_tool

# No proxy for loopback, whatever http_proxy says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def modality(aet: str, port: int, host: str = LOCALHOST, *, use_tls: bool = False, **allow: bool) -> dict:
    """One ``DicomModalities`` entry; every ``Allow*`` is true unless given (``AllowGet=False``...)."""
    entry = {"AET": aet, "Host": host, "Port": port, "AllowEcho": True, "AllowFind": True, "AllowMove": True,
             "AllowGet": True, "AllowStore": True}
    entry.update(allow)
    if use_tls:
        entry["UseDicomTls"] = True
    return entry


class OrthancPeer(PeerProcess):
    """Orthanc with a config of its own in ``workdir``.

    Only the workstation (``ws_aet`` at 127.0.0.1:``ws_port``, modality name ``"ws"``) and
    ``extra_modalities`` ({name: entry}, see ``modality()``) may query/retrieve; unknown calling AETs get
    only C-ECHO (and C-STORE, Orthanc's default). ``tls`` turns on DICOM TLS for Orthanc's SCP (server
    certificate, trusting the test CA; ``tls_require_client_cert`` maps to
    ``DicomTlsRemoteCertificateRequired``); ``ws_use_tls`` makes Orthanc's C-MOVE to the workstation
    use TLS. ``config`` overrides or adds any top-level Orthanc option.
    """

    name = "orthanc"
    graceful_stop = False  # a clean Orthanc shutdown takes ~3.4 s (HTTP 2 s, DICOM 1 s); its data is throw-away

    def __init__(self, workdir: Path, *, aet: str = "ORTHANC", ws_aet: str = "WSTEST", ws_port: int | None = None,
                 extra_modalities: dict[str, dict] | None = None, tls: TlsCerts | None = None,
                 tls_require_client_cert: bool = True, ws_use_tls: bool = False,
                 max_pdu: int | None = None, config: dict[str, Any] | None = None):
        super().__init__(workdir)
        self.aet = aet
        self.host = LOCALHOST
        self.port = free_port()
        self.http_port = free_port()
        self.ws_aet = ws_aet
        self.ws_port = ws_port if ws_port is not None else free_port()
        self.tls = tls
        self.storage_dir = self.workdir / "storage"
        self.log_dir = self.workdir / "logs"
        self.config_path = self.workdir / "orthanc.json"
        modalities = {"ws": modality(ws_aet, self.ws_port, use_tls=ws_use_tls)}
        modalities.update(extra_modalities or {})
        cfg: dict[str, Any] = {
            "Name": f"test-orthanc-{self.port}",
            "StorageDirectory": str(self.storage_dir),
            "IndexDirectory": str(self.storage_dir),
            "DicomAet": aet,
            "DicomPort": self.port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowFindWorklist": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "SynchronousCMove": True,
            "Plugins": [],
            "DicomModalities": modalities,
            "DicomModalitiesInDatabase": False,
            "SaveJobs": False,
        }
        if max_pdu is not None:
            cfg["MaximumPduLength"] = max_pdu
        if tls is not None:
            cfg.update({
                "DicomTlsEnabled": True,
                "DicomTlsCertificate": str(tls.server_cert),
                "DicomTlsPrivateKey": str(tls.server_key),
                "DicomTlsTrustedCertificates": str(tls.ca_cert),
                "DicomTlsRemoteCertificateRequired": tls_require_client_cert,
            })
        cfg.update(config or {})
        self.config = cfg
        self.aet, self.port, self.http_port = cfg["DicomAet"], cfg["DicomPort"], cfg["HttpPort"]

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.http_port}"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self, timeout: float = 20.0) -> "OrthancPeer":
        binary = require_tool("Orthanc")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self._spawn([binary, f"--logdir={self.log_dir}", str(self.config_path)])
        self._wait_ready(lambda: self.get("/system", timeout=1)["DicomPort"] == self.port, timeout,
                         f"GET {self.url}/system")
        return self

    def log_files(self) -> list[Path]:
        """stdout/stderr, then Orthanc's log (``logs/Orthanc.log`` is a symlink to the dated file)."""
        logs = sorted(p for p in self.log_dir.glob("Orthanc.log.*") if not p.is_symlink()) if self.log_dir.exists() else []
        return [self.output_path, *logs]

    # -- REST --------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | dict | list | str | None = None, *,
                timeout: float = 60, content_type: str | None = None) -> Any:
        """One REST call; returns the decoded JSON answer (or raw bytes when it is not JSON)."""
        if isinstance(body, (dict, list)):
            body, content_type = json.dumps(body).encode(), content_type or "application/json"
        elif isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with _opener.open(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise PeerError(f"Orthanc {method} {path}: HTTP {exc.code} {exc.read()[:2000]!r}") from exc
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw

    def get(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw) -> Any:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body=None, **kw) -> Any:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw) -> Any:
        return self.request("DELETE", path, **kw)

    def upload(self, paths: Iterable[Path | str]) -> list[dict]:
        """POST each DICOM file (directories: every file below) to /instances; returns Orthanc's answers."""
        answers = []
        for path in _expand(paths):
            answer = self.post("/instances", Path(path).read_bytes(), content_type="application/dicom")
            if not isinstance(answer, dict) or answer.get("Status") not in ("Success", "AlreadyStored"):
                raise PeerError(f"Orthanc refused {path}: {answer!r}")
            answers.append(answer)
        return answers

    def statistics(self) -> dict:
        return self.get("/statistics")

    def instance_count(self) -> int:
        return int(self.statistics()["CountInstances"])

    def studies(self) -> list[dict]:
        """Expanded study resources (``MainDicomTags``, ``PatientMainDicomTags``, ``Series``...)."""
        return self.get("/studies?expand")

    def study_uids(self) -> set[str]:
        return {s["MainDicomTags"]["StudyInstanceUID"] for s in self.studies()}

    def add_modality(self, name: str, aet: str, port: int, host: str = LOCALHOST, **allow: bool) -> None:
        """Register (or replace) a DICOM modality at run time (``PUT /modalities/<name>``)."""
        self.put(f"/modalities/{name}", modality(aet, port, host, **allow))

    def delete_all(self) -> None:
        for patient in self.get("/patients"):
            self.delete(f"/patients/{patient}")


def _expand(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    return out
