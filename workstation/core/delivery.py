"""Where signed-off reports go: the RIS over HL7 v2 / MLLP (`[ris]`) and a FHIR R4 endpoint (`[fhir]`).

Validated like the rest of the site file (core.site calls `parse_delivery`), so a
bad value names its key before anything is sent. A FHIR bearer token is never in
the file: the file names the OS keyring entry that holds it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DELIVERY_TABLES = ("ris", "fhir")
HL7_NAME = re.compile(r"^[A-Za-z0-9_. -]{1,60}$")  # HD components: no HL7 delimiters
FHIR_URL = re.compile(r"^https?://[^\s/?#@]+(/[^\s?#]*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class RisSettings:
    """An HL7 v2 receiver (RIS/EHR interface engine) reached by MLLP."""

    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None  # default: the system CAs (TLS only)
    cert_file: str | None = None  # client certificate (TLS only)
    key_file: str | None = None
    timeout_s: float = 30.0  # connect, and waiting for the ACK
    sending_application: str = "RADAI_WS"
    sending_facility: str = "RADIOLOGY"
    receiving_application: str = "RIS"
    receiving_facility: str = "HOSPITAL"
    max_backoff_s: float = 3600.0


@dataclass(frozen=True)
class FhirSettings:
    """A FHIR R4 server (POST of a transaction Bundle), and/or a folder the resources are written to."""

    url: str | None = None
    token_key: str | None = None  # OS keyring entry (service "workstation-fhir") holding the bearer token
    ca_file: str | None = None
    folder: str | None = None
    timeout_s: float = 30.0
    max_backoff_s: float = 3600.0


@dataclass(frozen=True)
class DeliverySettings:
    ris: RisSettings | None = None
    fhir: FhirSettings | None = None


def parse_delivery(data: dict[str, Any]) -> DeliverySettings:
    """`[ris]` and `[fhir]` of a site document; raises core.site.ConfigError naming the key."""
    from workstation.core import site  # site imports this module; its value checks are the same for every table

    return DeliverySettings(ris=_ris(site, site._table(data, "ris")) if "ris" in data else None,  # noqa: SLF001
                            fhir=_fhir(site, site._table(data, "fhir")) if "fhir" in data else None)  # noqa: SLF001


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ris(site, table: dict[str, Any]) -> RisSettings:
    allowed = {"host", "port", "tls", "ca_file", "cert_file", "key_file", "timeout_s", "sending_application",
               "sending_facility", "receiving_application", "receiving_facility", "max_backoff_s"}
    site._only(table, "ris.", allowed)
    host = site._string(table, "ris.host", None)
    port = table.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise site.ConfigError("ris.port", "must be an integer port number from 1 to 65535")
    tls = table.get("tls", False)
    if not isinstance(tls, bool):
        raise site.ConfigError("ris.tls", "must be true or false")
    files = {k: site._string(table, f"ris.{k}", None, required=False) for k in ("ca_file", "cert_file", "key_file")}
    if not tls and any(files.values()):
        raise site.ConfigError("ris.tls", "ca_file/cert_file/key_file need tls = true")
    if (files["cert_file"] is None) != (files["key_file"] is None):
        raise site.ConfigError("ris.cert_file", "cert_file and key_file go together (client certificate)")
    names = {}
    for key in ("sending_application", "sending_facility", "receiving_application", "receiving_facility"):
        value = site._string(table, f"ris.{key}", getattr(RisSettings, key))
        if not HL7_NAME.match(value):
            raise site.ConfigError(f"ris.{key}", "letters, digits, space, '.', '_' and '-' only (1-60 characters)")
        names[key] = value
    return RisSettings(host=host, port=port, tls=tls, **files, **names,
                       timeout_s=site._seconds(table, "ris.timeout_s", RisSettings.timeout_s, 600),
                       max_backoff_s=site._seconds(table, "ris.max_backoff_s", RisSettings.max_backoff_s, 86_400))


def _fhir(site, table: dict[str, Any]) -> FhirSettings:
    site._only(table, "fhir.", {"url", "token_key", "ca_file", "folder", "timeout_s", "max_backoff_s"})
    url = site._string(table, "fhir.url", None, required=False)
    folder = site._string(table, "fhir.folder", None, required=False)
    if url is None and folder is None:
        raise site.ConfigError("fhir", "needs url (a FHIR R4 server) or folder (resources written as files)")
    if url is not None:
        if not FHIR_URL.match(url):
            raise site.ConfigError("fhir.url", "must be an https:// URL (http:// only to this machine)")
        parts = urlsplit(url)
        if parts.scheme.lower() == "http" and not is_loopback(parts.hostname or ""):
            raise site.ConfigError("fhir.url", "http:// would send the bearer token and the report in clear; "
                                                  "use https:// (http:// is allowed to this machine only)")
    return FhirSettings(url=url.rstrip("/") if url else None,
                        token_key=site._string(table, "fhir.token_key", None, required=False),
                        ca_file=site._string(table, "fhir.ca_file", None, required=False), folder=folder,
                        timeout_s=site._seconds(table, "fhir.timeout_s", FhirSettings.timeout_s, 600),
                        max_backoff_s=site._seconds(table, "fhir.max_backoff_s", FhirSettings.max_backoff_s, 86_400))
