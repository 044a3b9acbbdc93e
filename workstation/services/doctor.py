"""`workstation doctor`: is this workstation ready? One verdict per check, each with a hint for IT.

Every check is a plain function returning a `Check` (or a list of them): configuration, OS keyring, the
encrypted store, C-ECHO to each configured PACS node, the central server and its token, the installed models
and their weights, the inference device, free disk where the cache lives. A check never raises: whatever goes
wrong becomes its verdict. Read-only, apart from creating the store (and its key) on a fresh install, which is
what first use does anyway; nothing is written to the audit trail by the doctor itself.

No Qt here, and no torch at module level: the device check imports it lazily through workstation.inference.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keyring.backend

from workstation.core.site import ConfigError, SiteConfig

FORMAT = "workstation.doctor/1"
OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
VERDICTS = (OK, WARN, FAIL, SKIP)
GB = 1024**3
MIN_FREE_BYTES = 1 * GB  # below this the cache cannot take a single large study: FAIL
SERVER_TIMEOUT_S = 10.0
PACS_PARALLEL = 4  # nodes echoed at once (a silent node costs its timeout; the others need not wait)
CONFIG_SKIPPED = "skipped: configuration invalid"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report. `verdict`: ok, warn, fail (or skip: could not be checked because an
    earlier check failed; the earlier one carries the failure)."""

    name: str
    verdict: str
    detail: str
    hint: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    config_path: str | None
    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == FAIL]

    @property
    def ok(self) -> bool:
        """No check failed (warnings allowed)."""
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for c in self.checks if c.verdict == v) for v in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "config": self.config_path, "ok": self.ok, "counts": self.counts(),
                "checks": [c.to_dict() for c in self.checks]}


# ----- all of them
def run_checks(config_option: str | os.PathLike | None = None, *,
               backend: keyring.backend.KeyringBackend | None = None, models_root: Path | None = None,
               on_check: Callable[[Check], None] | None = None) -> Report:
    """Every check in order; `on_check` sees each as soon as it is done (to print progressively)."""
    from workstation.services.config import config_path

    try:
        path = config_path(config_option)
    except Exception:  # noqa: BLE001 - the configuration check reports it
        path = None
    checks: list[Check] = []

    def add(found: Check | list[Check] | Iterator[Check]) -> None:
        for check in [found] if isinstance(found, Check) else found:
            checks.append(check)
            if on_check is not None:
                on_check(check)

    first, config = check_configuration(config_option)
    add(first)
    add(_guarded("keyring", lambda: check_keyring(backend)))
    if config is None:
        add([Check(name, SKIP, CONFIG_SKIPPED, "fix the configuration first") for name in ("store", "pacs", "server")])
    else:
        add(_guarded("store", lambda: check_store(config, backend)))
        add(_guarded_list("permissions", lambda: check_permissions(config, path)))
        add(check_pacs(config))
        add(_guarded("server", lambda: check_server(config, backend)))
        if config.server.configured:  # without a server the server line already says "sync off"
            add(_guarded("sync", lambda: check_sync(config, backend)))
    add(_guarded_list("models", lambda: check_models(models_root)))
    add(_guarded("device", check_device))
    add(_guarded("disk", lambda: check_disk(config)) if config is not None
        else Check("disk", SKIP, CONFIG_SKIPPED, "fix the configuration first"))
    return Report(str(path.absolute()) if path else None, tuple(checks))


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that raised something unforeseen is a failure of that check, not of the doctor."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001
        return Check(name, FAIL, f"unexpected error: {type(exc).__name__}: {exc}", "report this to the vendor with the output")


def _guarded_list(name: str, check: Callable[[], list[Check]]) -> list[Check]:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001
        return [Check(name, FAIL, f"unexpected error: {type(exc).__name__}: {exc}", "report this to the vendor with the output")]


# ----- configuration
def check_configuration(option: str | os.PathLike | None = None) -> tuple[Check, SiteConfig | None]:
    """The file in force and whether it is valid; the parsed configuration (None when invalid)."""
    from workstation.services.config import ENV_VAR, config_path, load_site_config

    path = config_path(option)
    if path is not None:
        path = path.absolute()
    try:
        config = load_site_config(path)
    except ConfigError as exc:
        file, _, key = exc.key.rpartition(": ")
        hint = (f"correct {key} in {file} (see README, Site configuration)" if file
                else f"check {exc.key} (--config, ${ENV_VAR})" if exc.reason == "configuration file not found"
                else f"repair {exc.key}")
        return Check("configuration", FAIL, f"invalid: {exc}", hint), None
    if path is None:
        from platformdirs import site_config_dir

        system = Path(site_config_dir("workstation", appauthor=False)) / "site.toml"
        return Check("configuration", WARN, "no configuration file: defaults, no PACS nodes, no server",
                     f"IT writes {system} (or sets ${ENV_VAR} / --config)"), config
    nodes = len(config.nodes)
    server = f"server {config.server.url}" if config.server.configured else "no server"
    return Check("configuration", OK, f"{path} valid: {nodes} PACS node{'' if nodes == 1 else 's'}, {server}, "
                                      f"workstation {_workstation_id(config)} (AE {config.local.ae_title})"), config


def _workstation_id(config: SiteConfig) -> str:
    from workstation.services.session import workstation_id

    return workstation_id(config)


# ----- keyring
def _backend_name(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _keyring_failure(name: str, exc: Exception) -> Check:
    from workstation.store.keys import INSTALL_HINT

    message = str(exc)
    head, _, install = INSTALL_HINT.partition(": ")
    if message.startswith(INSTALL_HINT):
        return Check(name, FAIL, head + message[len(INSTALL_HINT):], install)
    return Check(name, FAIL, message, install)


def check_keyring(backend: keyring.backend.KeyringBackend | None = None) -> Check:
    """A usable OS keyring (never a plaintext fallback), and that it answers a read."""
    from workstation.store import keys

    try:
        chosen = keys.usable_backend(backend)
        key = keys.read_key(chosen)
    except keys.KeyringUnavailable as exc:
        return _keyring_failure("keyring", exc)
    except keys.KeyMissing as exc:
        return Check("keyring", FAIL, f"{_backend_name(chosen)} usable, but {exc}",
                     "restore the keyring entry from its backup (the store cannot be opened without it)")
    held = "holds the store key" if key is not None else "holds no store key (a new store creates one)"
    return Check("keyring", OK, f"{_backend_name(chosen)} usable; {held}")


# ----- store
def check_store(config: SiteConfig, backend: keyring.backend.KeyringBackend | None = None) -> Check:
    """The store opens (created on a fresh install) and verifies: audit chain, record links, page integrity."""
    from workstation.services.session import open_store, store_path
    from workstation.store import keys
    from workstation.store.database import StoreError, StoreLocked

    path = store_path(config)
    try:
        keys.usable_backend(backend)
    except keys.KeyringUnavailable:
        # not even tried: a failed open is noted beside the store and would join the audit trail later
        return Check("store", FAIL, f"{path} not opened: no usable OS keyring for its key", "fix the keyring first (see above)")
    existed = path.exists()
    try:
        store = open_store(config, backend)
    except StoreLocked as exc:
        return Check("store", FAIL, f"locked: {exc}",
                     "restore the OS keyring entry that holds this store's key (or its backup); never delete the store")
    except StoreError as exc:
        return Check("store", FAIL, f"cannot be opened: {exc}", "see the reason; install the matching software version if it names one")
    except Exception as exc:  # noqa: BLE001 - sqlcipher/OS errors: a folder we may not write, a damaged file
        return Check("store", FAIL, f"{path} cannot be opened: {type(exc).__name__}: {exc}",
                     "check the folder's permissions and free space ([store] path in the configuration)")
    try:
        report = store.verify()
        if report.damage:  # pages fail their HMAC: nothing more can be counted reliably
            return Check("store", FAIL, f"{path}: {report.damage[:500]}",
                         "the file is damaged: keep it for analysis and restore the store from its backup")
        entries, pending = store.count(), store.pending_count()
    finally:
        store.close()
    how = "opened" if existed else "created"
    if report.integrity != "ok":
        return Check("store", FAIL, f"{path} {how}, integrity check failed: {report.integrity[:300]}",
                     "the file is damaged: keep it for analysis and restore the store from its backup")
    if not report.ok:
        problem = report.first_problem
        return Check("store", FAIL, f"{path} {how}, audit trail broken: {problem.message if problem else 'unknown problem'}",
                     "keep the file untouched for analysis and tell the security officer (workstation audit verify)")
    return Check("store", OK, f"{path} {how}: {entries} audit entr{'y' if entries == 1 else 'ies'}, chain and "
                              f"integrity ok, {pending} waiting to sync")


# ----- file modes
def check_permissions(config: SiteConfig, site_file: Path | None = None) -> list[Check]:
    """A warning for each file of ours that others may read or write: the store (patient data, the audit trail)
    and its WAL, shared memory and high-water mark (0600 expected), their folder (not writable by others; a new
    one is made 0700), and the site file
    (others must not write it; a user's own site file 0600). Nothing when all is as it should be."""
    from workstation.services.session import store_path

    if os.name == "nt":  # Windows: access lists, not POSIX modes (the user profile is private by default)
        return []
    store = store_path(config)
    found: list[str] = []
    for path in (store, *(store.with_name(store.name + suffix) for suffix in ("-wal", "-shm", ".hwm"))):
        mode = _mode(path)
        if mode is not None and mode & 0o077:
            found.append(f"{path} is {mode:04o} (others can read it; expected 0600)")
    folder = _mode(store.parent)
    if folder is not None and folder & 0o022:  # others could replace the store (a new one is made 0700)
        found.append(f"{store.parent} is {folder:04o}: others can add or replace files in it (expected 0700)")
    checks = [Check("permissions", WARN, "; ".join(found), f"chmod 600 the files and 700 the folder "
                                                             f"(chmod -R go-rwx {store.parent})")] if found else []
    if site_file is not None:
        mode = _mode(site_file)
        if mode is not None and mode & 0o022:
            checks.append(Check("permissions", WARN, f"{site_file} is {mode:04o}: others can change the site "
                                                     f"configuration (e.g. where the audit trail is sent)",
                                f"chmod go-w {site_file}"))
        elif mode is not None and mode & 0o077 and _owned(site_file):
            checks.append(Check("permissions", WARN, f"{site_file} is {mode:04o}: a user's own site file is for "
                                                     f"that user only (expected 0600)", f"chmod 600 {site_file}"))
    return checks


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


def _owned(path: Path) -> bool:
    """Owned by the user running the doctor, and not root's (a system-wide file must stay readable)."""
    try:
        owner = path.stat().st_uid
    except OSError:
        return False
    return hasattr(os, "getuid") and owner == os.getuid() and owner != 0


# ----- PACS
def check_pacs(config: SiteConfig) -> list[Check]:
    """One C-ECHO per configured node (no retries: a dead node fails fast); nodes are tried in parallel."""
    if not config.nodes:
        return [Check("pacs", WARN, "no PACS nodes configured: query/retrieve unavailable",
                      "IT adds [pacs.NAME] sections to the site configuration")]
    names = sorted(config.nodes)
    with ThreadPoolExecutor(max_workers=min(PACS_PARALLEL, len(names)), thread_name_prefix="doctor-echo") as pool:
        return list(pool.map(lambda name: _guarded(f"pacs {name}", lambda: check_pacs_node(config, name)), names))


def check_pacs_node(config: SiteConfig, name: str) -> Check:
    from workstation.net import echo as net_echo
    from workstation.net.errors import AssociationAborted, AssociationRejected, OperationFailed, PacsError, PacsUnreachable

    node = replace(config.node(name), retries=0)
    local = config.local
    where = f"{node.ae_title}@{node.host}:{node.port}" + (" (TLS)" if node.tls else "")
    label = f"pacs {name}"
    try:
        seconds = net_echo.echo(node, local)
    except PacsUnreachable as exc:
        hint = (f"check host and port in [pacs.{name}], that the PACS runs and that no firewall blocks it"
                + (f"; check [pacs.{name}.tls] (CA, client certificate)" if node.tls else ""))
        return Check(label, FAIL, f"C-ECHO to {where} failed: {_reason(exc, node)}", hint)
    except (AssociationRejected, AssociationAborted) as exc:
        return Check(label, FAIL, f"C-ECHO to {where} failed: {_reason(exc, node)}",
                     f"check ae_title in [pacs.{name}] and that the PACS knows our AE {local.ae_title} "
                     f"(this host, port {local.store_port})")
    except OperationFailed as exc:
        return Check(label, FAIL, f"C-ECHO to {where} refused: {_reason(exc, node)}",
                     f"the PACS refused verification: check its settings for our AE {local.ae_title}")
    except PacsError as exc:
        return Check(label, FAIL, f"C-ECHO to {where} failed: {_reason(exc, node)}",
                     f"check [pacs.{name}] and the PACS's settings for our AE {local.ae_title}")
    return Check(label, OK, f"C-ECHO to {where}: success in {seconds * 1000:.0f} ms")


def _reason(exc: Exception, node) -> str:
    """The error without the node's name and address, which the line already shows."""
    text = str(exc).removesuffix(" (tried 1 time)")
    for prefix in (f"cannot connect to {node.name} ({node.ae_title}@{node.host}:{node.port}): ",
                   f"{node.name} ({node.ae_title}@{node.host}:{node.port}) ", f"{node.name}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


# ----- the central server
def check_server(config: SiteConfig, backend: keyring.backend.KeyringBackend | None = None) -> Check:
    """Reachable (GET /health) and our token accepted (GET our own status)."""
    from workstation.services.sync import (
        KeyringProblem, NotConfigured, NotEnrolled, Refused, Replaced, SyncClient, SyncError, TokenRejected,
        Unreachable,
    )

    server = config.server
    if not server.configured:
        return Check("server", WARN, "no central server configured: sync off (the audit trail stays on this machine)",
                     "IT sets [server] url in the site configuration")
    ws = _workstation_id(config)
    enrol = f"run 'workstation enrol --code CODE' with a code IT issued for {ws} (workstation-server issue-code {ws})"
    try:
        client = SyncClient(server, ws, backend, timeout=SERVER_TIMEOUT_S)
    except NotConfigured as exc:
        return Check("server", FAIL, str(exc), "correct [server] in the site configuration")
    with client:
        try:
            if not client.health():
                return Check("server", FAIL, f"{server.url} answered the health check without success",
                             "check that server.url names the central server")
        except Unreachable as exc:
            tls = "; server.ca_file for its certificate" if server.url.lower().startswith("https://") else ""
            return Check("server", FAIL, f"{server.url}: {exc}",
                         f"check server.url, that the server runs and that the network allows it{tls}")
        except SyncError as exc:
            return Check("server", FAIL, f"{server.url}: {exc}", "check that server.url names the central server")
        try:
            status = client.status()
        except KeyringProblem as exc:
            return _keyring_failure("server", exc)
        except NotEnrolled:
            return Check("server", FAIL, f"{server.url} reachable, but workstation {ws} is not enrolled", enrol)
        except Replaced as exc:
            return Check("server", FAIL, f"{server.url} reachable, but {exc}",
                         f"another machine now syncs as {ws}: IT gives this machine its own id ([workstation] id) and "
                         f"enrols it, or moves {ws} back here with 'workstation-server issue-code {ws} --replace'")
        except TokenRejected:
            return Check("server", FAIL, f"{server.url} reachable, but it rejected our token (revoked, or issued by "
                                         "another server)", enrol)
        except Unreachable as exc:
            return Check("server", FAIL, f"{server.url} reachable, but the status request failed: {exc}",
                         "try again; if it persists see the server's log")
        except Refused as exc:
            return Check("server", FAIL, f"{server.url} refused our status request: {exc}",
                         f"check that the token is {ws}'s (workstation.id in the configuration); else enrol again")
        except SyncError as exc:
            return Check("server", FAIL, f"{server.url}: {exc}", "check that server.url names the central server")
    entries = status.get("entries", "?")
    head = (status.get("head") or {}).get("seq", "?")
    last = status.get("last_push_utc") or "never"
    held = f"{entries} entr{'y' if entries == 1 else 'ies'}"
    return Check("server", OK, f"{server.url} reachable, token accepted: it holds {held} of {ws}, "
                               f"head {head}, last push {last}")


# ----- sync health
PENDING_AGE_WARN_H = 24.0  # an entry waiting longer than this to reach the server is worth a warning


def check_sync(config: SiteConfig, backend: keyring.backend.KeyringBackend | None = None,
               now: datetime | None = None) -> Check:
    """How sync stands, from what the worker kept in the store and the server's chain head: the last push and
    its outcome, refusals (fail: someone must act), the pending count and the age of the oldest pending entry,
    and whether the server went back behind what it acknowledged (restored from a backup)."""
    from workstation.services.session import open_store
    from workstation.services.sync import REFUSALS, SyncClient, SyncError
    from workstation.store.database import StoreError

    if not config.server.configured:
        return Check("sync", SKIP, "no central server configured (see server)", "IT sets [server] url")
    try:
        store = open_store(config, backend)
    except (StoreError, Exception) as exc:  # noqa: BLE001 - the store check says why
        return Check("sync", SKIP, f"the store cannot be opened ({type(exc).__name__}; see store)", "fix the store first")
    try:
        status = store.sync_status()
        pending, oldest, acknowledged = store.pending_count(), store.oldest_pending(), store.synced_through()
        ws = store.identity.workstation_id
        server_head, local_hash = None, None
        try:
            with SyncClient(config.server, ws, backend, timeout=SERVER_TIMEOUT_S) as client:
                server_head = client.head()
            local_hash = store.entry_hash(server_head[0])
        except SyncError:
            pass  # unreachable, not enrolled...: the server check reports it
    finally:
        store.close()
    now = now or datetime.now(timezone.utc)
    outcome, message = status.get("last_outcome"), status.get("last_message", "")
    last = status.get("last_push_utc")
    parts = [f"last push {_ago(last, now)}: {outcome or 'none yet'}" if last else "no push recorded yet",
             f"{pending} pending"]
    if oldest is not None:
        parts.append(f"oldest from {_ago(oldest[1], now)} (entry {oldest[0]})")
    if status.get("last_recovery"):
        parts.append(f"last recovery: {status['last_recovery']}")
    detail = "; ".join(parts)
    hints = {
        "replaced": "this machine's workstation id was enrolled on another machine: IT gives this machine its own id "
                    "([workstation] id) and enrols it, or moves the id back with a --replace code",
        "mismatch": "the server's chain for this id is not this store's: IT compares 'workstation audit verify' here "
                    "with the server's incidents for this workstation before anything else",
        "refused": "the server refused entries (its incidents for this workstation say why); they stay in the outbox",
        "token-rejected": "enrol again with a new code from IT (workstation enrol --code CODE)",
    }
    if outcome in REFUSALS:
        return Check("sync", FAIL, f"{detail}; refused: {message[:300]}", hints[outcome])
    if server_head is not None:
        seq, server_hash = server_head
        if local_hash is None or local_hash != server_hash:
            return Check("sync", FAIL, f"{detail}; the server's chain head (entry {seq}) is not this store's",
                         hints["mismatch"])
        if seq < acknowledged:
            return Check("sync", WARN, f"{detail}; the server holds entries up to {seq} only, though it acknowledged "
                                       f"{acknowledged} (its database restored from a backup?)",
                         "run 'workstation sync --once' (or keep the window open): the missing entries are sent again")
    if oldest is not None:
        age_h = _hours(oldest[1], now)
        if age_h is not None and age_h > PENDING_AGE_WARN_H:
            return Check("sync", WARN, detail + (f"; last error: {message[:200]}" if message else ""),
                         "entries have waited more than a day: check the server check above and the network")
    if outcome not in (None, "ok") and message:
        return Check("sync", WARN, f"{detail}; last error: {message[:300]}", "it retries by itself; see the server check")
    return Check("sync", OK, detail)


def _hours(utc: str, now: datetime) -> float | None:
    try:
        moment = datetime.fromisoformat(utc)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (now - moment).total_seconds() / 3600


def _ago(utc: str, now: datetime) -> str:
    hours = _hours(utc, now)
    if hours is None:
        return str(utc)
    if hours < 1 / 60:
        return f"{utc[:19]}Z (just now)"
    if hours < 1:
        return f"{utc[:19]}Z ({hours * 60:.0f} min ago)"
    if hours < 48:
        return f"{utc[:19]}Z ({hours:.1f} h ago)"
    return f"{utc[:19]}Z ({hours / 24:.0f} days ago)"


# ----- models and device
def check_models(root: Path | None = None) -> list[Check]:
    """Every installed model with weights matching its manifest's sha256; a bad manifest or none at all fails."""
    from workstation.inference.registry import ModelError, default_root, load_manifests, verify_weights

    folder = root or default_root()
    manifests, problems = load_manifests(folder)
    checks = []
    for manifest in manifests:
        name = f"model {manifest.name}"
        try:
            path = verify_weights(manifest)
        except ModelError as exc:
            checks.append(Check(name, FAIL, str(exc), f"reinstall the model into {manifest.directory}"))
            continue
        except OSError as exc:
            checks.append(Check(name, FAIL, f"weights cannot be read: {exc}", f"check {manifest.directory}"))
            continue
        checks.append(Check(name, OK, f"{manifest.version}: {path.name} sha256 {manifest.weights_sha256[:12]}… matches "
                                      f"({manifest.task}, {'/'.join(manifest.modalities)})"))
    for problem in problems:
        checks.append(Check("model", FAIL, f"unusable manifest: {problem}", "reinstall the model or remove the folder"))
    if not manifests and not problems:
        checks.append(Check("models", FAIL, f"no AI models installed in {folder}: AI unavailable",
                            "install the models folder (or set $WORKSTATION_MODELS)"))
    return checks


def check_device() -> Check:
    """Where inference runs: CUDA when present, else the CPU; either is fine (informational)."""
    try:
        from workstation.inference.engine import choose_device

        device = choose_device()
    except ImportError as exc:
        return Check("device", FAIL, f"the inference engine cannot be loaded: {exc}", "reinstall the workstation (torch is missing)")
    if device == "cpu":
        return Check("device", OK, "cpu (no CUDA device)")
    return Check("device", OK, device)


# ----- disk
def check_disk(config: SiteConfig, disk_usage: Callable[[str], Any] = shutil.disk_usage) -> Check:
    """Free space where the cache lives, against its size limit (what the cache already holds counts as room)."""
    from workstation.services.pacs import cache_root

    root = cache_root(config)
    existing = root
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return Check("disk", FAIL, f"cache {root}: {existing} is not writable",
                     "give the workstation's users write access or set cache.directory")
    free = disk_usage(str(existing)).free
    used = _folder_bytes(root)
    limit = config.cache.max_bytes
    text = f"cache {root}: {_gb(free)} free, {_gb(used)} used of {_gb(limit)} allowed"
    if free < MIN_FREE_BYTES:
        return Check("disk", FAIL, text, f"free space on that disk (at least {_gb(MIN_FREE_BYTES)}) or move cache.directory")
    if free + used < limit:
        return Check("disk", WARN, text + ": the cache cannot grow to its limit",
                     "free space on that disk, lower cache.max_size_gb or move cache.directory")
    return Check("disk", OK, text)


def _folder_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _gb(size: int) -> str:
    return f"{size / GB:.1f} GB"


# ----- text
def format_check(check: Check, width: int = 14) -> str:
    """`[FAIL] pacs MAIN      C-ECHO to ... failed: ...  -> hint`; names padded to `width`."""
    tag = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]", SKIP: "[SKIP]"}[check.verdict]
    line = f"{tag} {check.name:<{width}}  {check.detail}"
    return line + (f"  -> {check.hint}" if check.hint and check.verdict != OK else "")


def format_report(report: Report) -> str:
    """Every check, names aligned, then the summary."""
    width = max([14] + [len(c.name) for c in report.checks])
    return "\n".join([*(format_check(c, width) for c in report.checks), format_summary(report)])


def format_summary(report: Report) -> str:
    counts = report.counts()
    parts = [f"{counts[FAIL]} failed", f"{counts[WARN]} warning{'' if counts[WARN] == 1 else 's'}", f"{counts[OK]} ok"]
    if counts[SKIP]:
        parts.append(f"{counts[SKIP]} skipped")
    verdict = "ready" if report.ok else "NOT ready: fix the failed checks"
    return f"doctor: {', '.join(parts)} - {verdict}"


__all__ = [
    "Check", "FAIL", "FORMAT", "OK", "Report", "SKIP", "WARN", "check_configuration", "check_device",
    "check_disk", "check_keyring", "check_models", "check_pacs", "check_pacs_node", "check_permissions", "check_server",
    "check_store", "check_sync",
    "format_check", "format_report", "format_summary", "run_checks",
]
