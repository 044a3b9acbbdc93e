"""Site configuration that IT manages: the workstation's own AE, PACS nodes, cache limits, users, the central server.

Parsed from plain data (a TOML document) and validated here, so an error
names the key and the reason before anything is changed or connected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from workstation.core.delivery import DELIVERY_TABLES, DeliverySettings, is_loopback, parse_delivery
from workstation.core.hanging import HangingProtocol, parse_hanging
from workstation.core.sync import MAX_BATCH

AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # default repertoire without backslash, 1-16 chars
NODE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
RETRIEVE_METHODS = ("move", "get")


class ConfigError(ValueError):
    """An invalid configuration value: `key` is its dotted path in the file."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


@dataclass(frozen=True)
class TlsSettings:
    """DICOM TLS for one node. Server certificates are verified unless `verify` is explicitly false."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    server_name: str | None = None  # name to check in the server certificate; defaults to the host


@dataclass(frozen=True)
class PacsNode:
    name: str
    ae_title: str
    host: str
    port: int
    tls: TlsSettings | None = None
    timeout: float = 10.0  # seconds for connect, association and each response
    retrieve: str = "move"  # preferred method: "move" (to our C-STORE receiver) or "get"
    retries: int = 2  # extra attempts after a connection failure


@dataclass(frozen=True)
class InboundTls:
    """DICOM TLS on our C-STORE receiver ([workstation.tls]): it then speaks TLS only."""

    cert_file: str
    key_file: str
    ca_file: str | None = None  # CAs whose client certificates are trusted (a certificate presented is verified)
    require_client_cert: bool = False  # true: a sender without a certificate signed by ca_file is refused


@dataclass(frozen=True)
class LocalAE:
    """The workstation itself on the DICOM network."""

    ae_title: str = "WORKSTATION"
    store_port: int = 11112
    bind_address: str = "0.0.0.0"  # the PACS must reach our C-STORE receiver for C-MOVE
    tls: InboundTls | None = None
    artim_timeout_s: float = 10.0  # a connection that sends no A-ASSOCIATE-RQ within this is dropped (PS3.8 9.1.5)
    idle_timeout_s: float = 60.0  # an association silent this long is dropped
    association_timeout_s: float = 3600.0  # no association lasts longer than this, however busy
    max_associations: int = 16  # at once, all senders together
    max_associations_per_host: int = 4  # at once, from one address


@dataclass(frozen=True)
class CacheSettings:
    directory: str | None = None  # default: the platform's cache directory
    max_bytes: int = 20 * 1024**3


ROLE_NAMES = ("radiologist", "reviewer", "admin")
LOGIN = re.compile(r"^[A-Za-z0-9_.@\\-]{1,128}$")


@dataclass(frozen=True)
class UserSettings:
    """Who gets which role (IT decides; unlisted logins get `default_role`, or none: view only)."""

    roles: dict[str, str] = field(default_factory=dict)  # login -> role name
    default_role: str | None = None
    login_variable: str | None = None  # read the login from this environment variable (site SSO wrapper)


@dataclass(frozen=True)
class StoreSettings:
    path: str | None = None  # default: store.sqlite in the platform's user data directory


@dataclass(frozen=True)
class ServerSettings:
    """The central server the audit trail and feedback are synced to (none: no sync)."""

    url: str | None = None  # http(s)://host[:port][/prefix]; the API lives under <url>/api/v1
    ca_file: str | None = None  # default: the system CAs
    verify: bool = True  # the server certificate is verified unless switched off explicitly
    batch_size: int = 500  # entries per push (1-500): fewer, larger pushes cost the server less per entry
    interval_s: float = 30.0  # idle poll: how often an empty outbox is looked at again
    max_backoff_s: float = 300.0  # longest wait between retries while the server cannot be reached

    @property
    def configured(self) -> bool:
        return self.url is not None


@dataclass(frozen=True)
class ReviewSettings:
    """How the review behaves for every reader of this site."""

    auto_advance: bool = True  # after accept / reject, select the next pending finding


RESULT_SEND_MODES = ("manual", "on-signoff")
TRIAGE_TABLES = ("routing", "alerts", "worklist")  # validated by workstation.routing.rules (services.config calls it)


@dataclass(frozen=True)
class ResultsSettings:
    """Where the AI results and reader verdicts go as DICOM objects (none: nowhere)."""

    node: str | None = None  # a [pacs.NAME] node
    send: str = "manual"  # or "on-signoff": queued as soon as a review is signed off
    max_backoff_s: float = 3600.0  # longest wait between retries while the node cannot be reached


@dataclass(frozen=True)
class SiteConfig:
    local: LocalAE = LocalAE()
    nodes: dict[str, PacsNode] = field(default_factory=dict)
    cache: CacheSettings = CacheSettings()
    users: UserSettings = UserSettings()
    store: StoreSettings = StoreSettings()
    workstation_id: str | None = None  # default: the host name
    server: ServerSettings = ServerSettings()
    review: ReviewSettings = ReviewSettings()
    results: ResultsSettings = ResultsSettings()
    triage: dict[str, Any] = field(default_factory=dict)  # [routing], [alerts], [worklist]: workstation.routing checks them
    delivery: DeliverySettings = DeliverySettings()  # [ris], [fhir]: where signed-off reports go
    deid: dict[str, Any] = field(default_factory=dict)  # [deid]: de-identified export (workstation.deid checks it)
    hanging: tuple[HangingProtocol, ...] = ()  # [[hanging]]: default layout, series and windows per modality/body part

    def node(self, name: str) -> PacsNode:
        if name not in self.nodes:
            known = ", ".join(sorted(self.nodes)) or "none configured"
            raise ConfigError(f"pacs.{name}", f"no such PACS node (known: {known})")
        return self.nodes[name]


def parse_site_config(data: dict[str, Any]) -> SiteConfig:
    """Validate a parsed TOML document; raises ConfigError naming the first bad key."""
    _only(data, "", {"workstation", "pacs", "cache", "users", "store", "server", "review", "results", "deid", *TRIAGE_TABLES,
                 *DELIVERY_TABLES, "hanging"})
    workstation = _table(data, "workstation")
    store = _table(data, "store")
    _only(store, "store.", {"path"})
    workstation_id = _string(workstation, "workstation.id", None, required=False)
    if workstation_id is not None and not NODE_NAME.match(workstation_id):
        raise ConfigError("workstation.id", "may use letters, digits, '.', '_' and '-' only (1-64 characters)")
    nodes = {name: _node(name, _table(data["pacs"], name, "pacs.")) for name in _table(data, "pacs")}
    return SiteConfig(
        local=_local(workstation),
        nodes=nodes,
        cache=_cache(_table(data, "cache")),
        users=_users(_table(data, "users")),
        store=StoreSettings(path=_string(store, "store.path", None, required=False)),
        workstation_id=workstation_id,
        server=_server(_table(data, "server")),
        review=_review(_table(data, "review")),
        results=_results(_table(data, "results"), nodes),
        triage={name: _table(data, name) for name in TRIAGE_TABLES if name in data},
        delivery=parse_delivery(data),
        deid=_table(data, "deid"),
        hanging=parse_hanging(data.get("hanging", []), _raise),
    )


def _raise(key: str, reason: str) -> None:
    raise ConfigError(key, reason)


def _results(table: dict[str, Any], nodes: dict[str, PacsNode]) -> ResultsSettings:
    _only(table, "results.", {"node", "send", "max_backoff_s"})
    node = _string(table, "results.node", None, required=False)
    if node is not None and node not in nodes:
        raise ConfigError("results.node", f"no such PACS node (known: {', '.join(sorted(nodes)) or 'none configured'})")
    send = _string(table, "results.send", ResultsSettings.send)
    if send not in RESULT_SEND_MODES:
        raise ConfigError("results.send", f"must be one of {', '.join(RESULT_SEND_MODES)}")
    if send == "on-signoff" and node is None:
        raise ConfigError("results.send", "on-signoff needs results.node")
    backoff = _seconds(table, "results.max_backoff_s", ResultsSettings.max_backoff_s, 86_400)
    return ResultsSettings(node=node, send=send, max_backoff_s=backoff)


def _review(table: dict[str, Any]) -> ReviewSettings:
    _only(table, "review.", {"auto_advance"})
    advance = table.get("auto_advance", ReviewSettings.auto_advance)
    if not isinstance(advance, bool):
        raise ConfigError("review.auto_advance", "must be true or false")
    return ReviewSettings(auto_advance=advance)


SERVER_URL = re.compile(r"^https?://[^\s/?#@]+(/[^\s?#]*)?$", re.IGNORECASE)


def _server(table: dict[str, Any]) -> ServerSettings:
    _only(table, "server.", {"url", "ca_file", "verify", "batch_size", "interval_s", "max_backoff_s"})
    url = _string(table, "server.url", None, required=False)
    if url is not None and not SERVER_URL.match(url):
        raise ConfigError("server.url", "must be an http:// or https:// URL (e.g. https://audit.hospital.example)")
    if url is not None and url.lower().startswith("http://") and not is_loopback(urlsplit(url).hostname or ""):
        raise ConfigError("server.url", "http:// to another machine would send the workstation's bearer token and "
                                        "its audit trail in clear: use https:// (http:// only to this machine)")
    verify = table.get("verify", True)
    if not isinstance(verify, bool):
        raise ConfigError("server.verify", "must be true or false")
    batch = table.get("batch_size", ServerSettings.batch_size)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ConfigError("server.batch_size", f"must be an integer from 1 to {MAX_BATCH}")
    interval = _seconds(table, "server.interval_s", ServerSettings.interval_s, 86_400)
    backoff = _seconds(table, "server.max_backoff_s", ServerSettings.max_backoff_s, 86_400)
    if backoff < 1:
        raise ConfigError("server.max_backoff_s", "must be at least 1 second")
    return ServerSettings(url=url.rstrip("/") if url else None, ca_file=_string(table, "server.ca_file", None, required=False),
                          verify=verify, batch_size=batch, interval_s=interval, max_backoff_s=backoff)


def _seconds(table: dict[str, Any], key: str, default: float, maximum: float) -> float:
    value = table.get(key.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= maximum:
        raise ConfigError(key, f"must be a number of seconds above 0 and at most {maximum:g}")
    return float(value)


def _users(table: dict[str, Any]) -> UserSettings:
    _only(table, "users.", {"roles", "default_role", "login_variable"})
    roles = _table(table, "roles", "users.")
    for login, role in roles.items():
        if not LOGIN.match(login):
            raise ConfigError(f"users.roles.{login}", "not a valid login name")
        if role not in ROLE_NAMES:
            raise ConfigError(f"users.roles.{login}", f"role must be one of {', '.join(ROLE_NAMES)}")
    default = _string(table, "users.default_role", None, required=False)
    if default is not None and default not in ROLE_NAMES:
        raise ConfigError("users.default_role", f"must be one of {', '.join(ROLE_NAMES)}")
    return UserSettings(roles=dict(roles), default_role=default,
                        login_variable=_string(table, "users.login_variable", None, required=False))


def _local(table: dict[str, Any]) -> LocalAE:
    _only(table, "workstation.", {"id", "ae_title", "store_port", "bind_address", "tls", "artim_timeout_s", "idle_timeout_s",
                                  "association_timeout_s", "max_associations", "max_associations_per_host"})
    limits = {}
    for name in ("max_associations", "max_associations_per_host"):
        value = table.get(name, getattr(LocalAE, name))
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
            raise ConfigError(f"workstation.{name}", "must be an integer from 1 to 256")
        limits[name] = value
    return LocalAE(
        ae_title=_ae_title(table, "workstation.ae_title", LocalAE.ae_title),
        store_port=_port(table, "workstation.store_port", LocalAE.store_port),
        bind_address=_string(table, "workstation.bind_address", LocalAE.bind_address),
        tls=_inbound_tls(table["tls"]) if "tls" in table else None,
        artim_timeout_s=_seconds(table, "workstation.artim_timeout_s", LocalAE.artim_timeout_s, 600),
        idle_timeout_s=_seconds(table, "workstation.idle_timeout_s", LocalAE.idle_timeout_s, 3600),
        association_timeout_s=_seconds(table, "workstation.association_timeout_s", LocalAE.association_timeout_s, 86_400),
        **limits,
    )


def _inbound_tls(table: Any) -> InboundTls:
    key = "workstation.tls"
    if not isinstance(table, dict):
        raise ConfigError(key, "must be a table")
    _only(table, key + ".", {"cert_file", "key_file", "ca_file", "require_client_cert"})
    for required in ("cert_file", "key_file"):
        if required not in table:
            raise ConfigError(f"{key}.{required}", "missing (required: the receiver's certificate and its key)")
    require = table.get("require_client_cert", False)
    if not isinstance(require, bool):
        raise ConfigError(f"{key}.require_client_cert", "must be true or false")
    ca_file = _string(table, f"{key}.ca_file", None, required=False)
    if require and ca_file is None:
        raise ConfigError(f"{key}.require_client_cert", "needs ca_file (the CAs that sign the senders' certificates)")
    return InboundTls(cert_file=_string(table, f"{key}.cert_file", None), key_file=_string(table, f"{key}.key_file", None),
                      ca_file=ca_file, require_client_cert=require)


def _node(name: str, table: dict[str, Any]) -> PacsNode:
    key = f"pacs.{name}"
    if not NODE_NAME.match(name):
        raise ConfigError(key, "node names may use letters, digits, '.', '_' and '-' only")
    _only(table, key + ".", {"ae_title", "host", "port", "tls", "timeout_s", "retrieve", "retries"})
    for required in ("ae_title", "host", "port"):
        if required not in table:
            raise ConfigError(f"{key}.{required}", "missing (required)")
    retrieve = _string(table, f"{key}.retrieve", "move")
    if retrieve not in RETRIEVE_METHODS:
        raise ConfigError(f"{key}.retrieve", f"must be one of {', '.join(RETRIEVE_METHODS)}")
    timeout = table.get("timeout_s", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise ConfigError(f"{key}.timeout_s", "must be a number of seconds between 0 and 600")
    retries = table.get("retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise ConfigError(f"{key}.retries", "must be an integer from 0 to 10")
    return PacsNode(
        name=name,
        ae_title=_ae_title(table, f"{key}.ae_title", None),
        host=_string(table, f"{key}.host", None),
        port=_port(table, f"{key}.port", None),
        tls=_tls(table["tls"], f"{key}.tls") if "tls" in table else None,
        timeout=float(timeout),
        retrieve=retrieve,
        retries=retries,
    )


def _tls(table: Any, key: str) -> TlsSettings:
    if not isinstance(table, dict):
        raise ConfigError(key, "must be a table")
    _only(table, key + ".", {"ca_file", "cert_file", "key_file", "verify", "server_name"})
    verify = table.get("verify", True)
    if not isinstance(verify, bool):
        raise ConfigError(f"{key}.verify", "must be true or false")
    settings = TlsSettings(
        ca_file=_string(table, f"{key}.ca_file", None, required=False),
        cert_file=_string(table, f"{key}.cert_file", None, required=False),
        key_file=_string(table, f"{key}.key_file", None, required=False),
        verify=verify,
        server_name=_string(table, f"{key}.server_name", None, required=False),
    )
    if (settings.cert_file is None) != (settings.key_file is None):
        raise ConfigError(f"{key}.cert_file", "cert_file and key_file go together (client certificate)")
    return settings


def _cache(table: dict[str, Any]) -> CacheSettings:
    _only(table, "cache.", {"directory", "max_size_gb"})
    size = table.get("max_size_gb", 20)
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 < size <= 100_000:
        raise ConfigError("cache.max_size_gb", "must be a positive number of gigabytes")
    return CacheSettings(directory=_string(table, "cache.directory", None, required=False), max_bytes=int(size * 1024**3))


def _table(data: dict[str, Any], name: str, prefix: str = "") -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(prefix + name, "must be a table")
    return value


def _only(table: dict[str, Any], prefix: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(prefix + key, f"unknown setting (expected one of: {', '.join(sorted(allowed))})")


def _string(table: dict[str, Any], key: str, default: str | None, required: bool = True) -> Any:
    value = table.get(key.rsplit(".", 1)[-1], default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "must be a non-empty string")
    return value.strip()


def _ae_title(table: dict[str, Any], key: str, default: str | None) -> str:
    value = _string(table, key, default)
    if not AE_TITLE.match(value):
        raise ConfigError(key, "must be 1-16 printable ASCII characters without backslash")
    return value


def _port(table: dict[str, Any], key: str, default: int | None) -> int:
    value = table.get(key.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(key, "must be an integer port number from 1 to 65535")
    return value
