"""`workstation install-support ...`: what the offline installer (installer/install.py) asks the installed app.

Not for people (not listed in the help). The installer is stdlib-only and must not guess how the app finds
its configuration, store, cache and keyring, so it asks the app it just installed:

    install-support record KIND --version V [--previous-version P] [--bundle NAME] [--prefix DIR]
                           [--mode user|system] [--config F] [--only-if-store-exists]
        KIND is software.install, software.upgrade or software.uninstall. Writes that audit entry, then, when
        the site configuration in force differs from the one of the last start, a config.change entry, then an
        application.start/stop pair of the "installer" with the version and configuration hash, so the app's
        own detection at its next start (WorkSession.start) does not record the same upgrade or change twice.
        Exit 0 recorded; 1 nothing recorded because the store does not exist (--only-if-store-exists);
        2 usage or invalid configuration; 3 the store cannot be opened (reason on stderr).
    install-support paths [--config F]
        One JSON object: the configuration file in force, the store file, the PACS cache and the user cache.
    install-support purge-data --yes [--config F]
        Deletes the encrypted store (with its WAL, shared-memory and failed-open notes), the PACS cache and the
        user cache, and the store key and server token in the OS keyring; prints one line per item. Only with
        --yes: the store cannot be recovered afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

EXIT_OK, EXIT_NOTHING, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
KINDS = ("software.install", "software.upgrade", "software.uninstall")


def install_support_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation install-support",
                                     description="Used by the offline installer; not for interactive use.")
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record", help="record an installation, upgrade or removal in the audit trail")
    record.add_argument("kind", choices=KINDS)
    record.add_argument("--version", required=True)
    record.add_argument("--previous-version")
    record.add_argument("--bundle", default="")
    record.add_argument("--prefix", default="")
    record.add_argument("--mode", choices=("user", "system"), default="user")
    record.add_argument("--only-if-store-exists", action="store_true",
                        help="record nothing (exit 1) when there is no store yet, rather than create one")
    for each in (record, sub.add_parser("paths", help="where the app keeps its files (JSON)"),
                 purge := sub.add_parser("purge-data", help="delete the store, caches and keyring secrets")):
        each.add_argument("--config", metavar="FILE", help="site configuration (default: the platform's)")
    purge.add_argument("--yes", action="store_true", help="required: the encrypted store cannot be recovered")
    args = parser.parse_args(argv)

    from workstation.core.site import ConfigError
    from workstation.services.config import config_path, load_site_config

    try:
        config = load_site_config(args.config)
    except ConfigError as exc:
        print(f"error: the site configuration is invalid: {exc}", file=sys.stderr)
        return EXIT_USAGE
    source = config_path(args.config)
    if args.command == "paths":
        print(json.dumps({key: str(value) if value else None for key, value in _paths(config, source).items()}))
        return EXIT_OK
    if args.command == "purge-data":
        if not args.yes:
            print("error: purge-data deletes the encrypted store for good; add --yes", file=sys.stderr)
            return EXIT_USAGE
        return _purge(config, source)
    return _record(config, source, args)


def _paths(config, source) -> dict[str, Path | None]:
    from platformdirs import user_cache_dir

    from workstation.services.pacs import cache_root
    from workstation.services.session import store_path

    user_cache = Path(user_cache_dir("workstation", appauthor=False))
    return {"config": source, "store": store_path(config), "pacs_cache": cache_root(config), "user_cache": user_cache}


def _record(config, source, args) -> int:
    from workstation import __version__
    from workstation.core.audit import digest
    from workstation.services.session import AuditTrail, config_change, config_summary, last_start, open_store, store_path
    from workstation.store.database import StoreError

    if args.only_if_store_exists and not store_path(config).exists():
        print(f"not recorded: no store at {store_path(config)}")
        return EXIT_NOTHING
    try:
        store = open_store(config)
    except StoreError as exc:
        print(f"warning: {args.kind} not recorded in the audit trail: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    try:
        audit = AuditTrail(store)
        last = last_start(store)
        details = {"version": args.version, "bundle": args.bundle, "prefix": args.prefix, "mode": args.mode,
                   "by": "installer"}
        if args.previous_version:
            details["previous_version"] = args.previous_version
        audit.record(args.kind, **details)
        recorded = [args.kind]
        summary = config_summary(config)
        changed = config_change(last, summary)
        if changed:
            audit.record("config.change", **changed, file=str(source) if source else None, by="installer")
            recorded.append("config.change")
        if args.kind != "software.uninstall":
            # the baseline the app compares with at its next start: this version, this configuration
            audit.record("application.start", application="installer", config_sha256=digest(summary),
                         version=__version__)
            audit.record("application.stop", application="installer")
        print(f"recorded in the audit trail ({store.path}): {', '.join(recorded)}")
    finally:
        store.close()
    return EXIT_OK


def _purge(config, source) -> int:
    from workstation.store import keys

    paths = _paths(config, source)
    failed = False
    store = paths["store"]
    # .hwm: the store's high-water mark (tail truncation detection) goes with it
    names = {store.name + suffix for suffix in ("", "-wal", "-shm", "-journal", ".failed-opens.jsonl", ".hwm")}
    for path in sorted(store.parent.iterdir()) if store.parent.is_dir() else []:
        # the store, its WAL and shared memory, its notes of failed opens (and their claimed copies)
        if path.name not in names and not (path.name.startswith(store.name + ".failed-opens.jsonl.")
                                           and path.name.endswith(".importing")):
            continue
        _remove(path)
        print(f"deleted: {path}")
    if store.parent.is_dir() and not any(store.parent.iterdir()):
        store.parent.rmdir()
    pacs = paths["pacs_cache"]
    if config.cache.directory:  # a folder IT chose: remove what the cache writes there, not the folder's other files
        from workstation.dicom.cache import INCOMING, STUDIES

        for name in (STUDIES, INCOMING):
            if (pacs / name).exists():
                _remove(pacs / name)
                print(f"deleted: {pacs / name}")
    if paths["user_cache"].exists():
        _remove(paths["user_cache"])
        print(f"deleted: {paths['user_cache']}")
    try:
        backend = keys.usable_backend()
        for name in (keys.STORE_KEY, keys.SERVER_TOKEN):
            if backend.get_password(keys.SERVICE, name) is not None:
                backend.delete_password(keys.SERVICE, name)
                print(f"deleted from the OS keyring: {keys.SERVICE}/{name}")
    except Exception as exc:  # noqa: BLE001 - the files are gone; say what is left
        failed = True
        print(f"warning: the OS keyring entries {keys.SERVICE}/{keys.STORE_KEY} and /{keys.SERVER_TOKEN} were not "
              f"deleted: {exc}", file=sys.stderr)
    return EXIT_NOTHING if failed else EXIT_OK


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(install_support_main(sys.argv[1:]))
