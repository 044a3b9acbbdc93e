"""Who is working where, and the encrypted store they write to.

The login is the OS user unless the site names an environment variable set by
its sign-on wrapper; the role comes only from the site configuration.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from pathlib import Path

import keyring.backend
from platformdirs import user_data_dir

from workstation.core.audit import AuditEvent, Outcome, digest
from workstation.core.roles import Role, User
from workstation.core.site import SiteConfig
from workstation.store.database import Identity, Store, StoreLocked, now_utc

DATA_DIR_ENV = "WORKSTATION_DATA_DIR"
STORE_FILE = "store.sqlite"


def current_user(config: SiteConfig, environ: Mapping[str, str] = os.environ) -> User:
    users = config.users
    login = environ.get(users.login_variable, "") if users.login_variable else ""
    login = login.strip() or getpass.getuser()
    role = users.roles.get(login, users.default_role)
    return User(login, Role(role) if role else None)


def workstation_id(config: SiteConfig) -> str:
    return config.workstation_id or socket.gethostname().split(".")[0] or "workstation"


def store_path(config: SiteConfig, environ: Mapping[str, str] = os.environ) -> Path:
    if config.store.path:
        return Path(config.store.path).expanduser()
    if environ.get(DATA_DIR_ENV):
        return Path(environ[DATA_DIR_ENV]) / STORE_FILE
    return Path(user_data_dir("workstation", appauthor=False)) / STORE_FILE


def identity(config: SiteConfig) -> Identity:
    return Identity(current_user(config), workstation_id(config))


def open_store(config: SiteConfig, backend: keyring.backend.KeyringBackend | None = None) -> Store:
    """The store for this user and workstation; StoreLocked says why it cannot be opened."""
    return Store.open(store_path(config), identity(config), backend)


class AuditTrail:
    """What services report, written to the store as chained audit entries (with who and where)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, kind: str, study_instance_uid: str = "", outcome: Outcome = Outcome.SUCCESS,
               outcome_text: str = "", **details) -> None:
        self.store.append(AuditEvent(kind, now_utc(), details, study_instance_uid, outcome, outcome_text))

    def event(self, event: AuditEvent) -> None:
        self.store.append(event)


class WorkSession:
    """The signed-in user's working session: the store, its audit trail and the review service.

    `start` records application start and login, a configuration change when the
    site configuration differs from the one in force at the last start, and an
    upgrade when the software version differs.
    """

    def __init__(self, config: SiteConfig, store: Store) -> None:
        from workstation.services.review import ReviewService

        self.config, self.store = config, store
        self.audit = AuditTrail(store)
        self.review = ReviewService(store)

    @classmethod
    def open(cls, config: SiteConfig, backend: keyring.backend.KeyringBackend | None = None) -> WorkSession:
        return cls(config, open_store(config, backend))

    @property
    def user(self) -> User:
        return self.store.identity.user

    def start(self, application: str = "viewer") -> None:
        from workstation import __version__

        last = last_start(self.store)
        summary = config_summary(self.config)
        self.audit.record("application.start", application=application, config_sha256=digest(summary),
                          version=__version__)
        if last.get("version") not in (None, __version__):  # installed over by IT (any install method)
            self.audit.record("software.upgrade", previous_version=last["version"], version=__version__,
                              detected="at start")
        changed = config_change(last, summary)
        if changed:
            self.audit.record("config.change", **changed)
        self.audit.record("session.start", role=self.user.role.value if self.user.role else "none")

    def end(self, application: str = "viewer") -> None:
        try:
            self.audit.record("session.end")
            self.audit.record("application.stop", application=application)
        finally:
            self.store.close()


def last_start(store: Store) -> dict:
    """The details of the last application start (version, configuration hash); {} before the first."""
    entry = store.last_entry("application.start")
    return entry.details if entry else {}


def config_change(last: dict, summary: dict) -> dict:
    """The details of a config.change entry when the configuration differs from the last start's; else {}."""
    config_sha256 = digest(summary)
    if last.get("config_sha256") in (None, config_sha256):
        return {}
    return {"previous_sha256": last["config_sha256"], "config_sha256": config_sha256, "summary": summary}


def config_summary(config: SiteConfig) -> dict:
    """What a configuration change entry shows: nodes, roles, server; no secrets live in the config anyway."""
    return {
        "workstation": {"id": config.workstation_id, "ae_title": config.local.ae_title, "store_port": config.local.store_port,
                        **_receiver_summary(config.local)},
        "pacs": {name: [n.ae_title, n.host, n.port, n.retrieve, n.tls is not None] for name, n in sorted(config.nodes.items())},
        "roles": dict(sorted(config.users.roles.items())),
        "default_role": config.users.default_role,
        "server": {"url": config.server.url, "verify": config.server.verify, "ca_file": config.server.ca_file},
        **_optional_summary(config),
    }


def _optional_summary(config: SiteConfig) -> dict:
    """Routing rules, alert thresholds and report destinations, only where the site sets them (so a site without
    them keeps its earlier digest): raising a model's alert threshold is a configuration change like any other."""
    summary = {}
    if config.triage:
        summary["triage"] = config.triage
    if config.delivery.ris is not None or config.delivery.fhir is not None:
        summary["delivery"] = {"ris": None if config.delivery.ris is None else [config.delivery.ris.host, config.delivery.ris.port,
                                                                                  config.delivery.ris.tls],
                               "fhir": None if config.delivery.fhir is None else [config.delivery.fhir.url,
                                                                                  config.delivery.fhir.folder]}
    return summary


def _receiver_summary(local) -> dict:
    """The receiver's TLS and limits, where they differ from the defaults (so older summaries keep their digest)."""
    defaults = type(local)()
    changed = {name: getattr(local, name) for name in ("artim_timeout_s", "idle_timeout_s",
                                                       "association_timeout_s", "max_associations", "max_associations_per_host")
               if getattr(local, name) != getattr(defaults, name)}
    if local.tls is not None:
        changed["tls"] = [local.tls.cert_file, local.tls.ca_file, local.tls.require_client_cert]
    return changed


__all__ = ["AuditTrail", "StoreLocked", "WorkSession", "config_change", "config_summary", "current_user", "identity",
           "last_start", "open_store", "store_path", "workstation_id"]
