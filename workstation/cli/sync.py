"""`workstation enrol --code CODE` and `workstation sync [--once]`: this workstation and the central server.

enrol: trades the one-time code IT issued for a token kept in the OS keyring. Exit 0 when enrolled; 1 when
the server refused the code or could not be reached; 2 for a configuration problem (no [server] url...);
3 when no OS keyring can keep the token.

sync --once: pushes everything pending, then exit 0 when the outbox is empty, 1 when entries remain (the
reason is printed); sync without --once runs until Ctrl+C (or until the token is rejected: exit 1), printing
each change of state. Exit 2 for a configuration problem or when not enrolled, 3 when the store cannot be
opened. Syncing writes nothing to the audit trail itself (every entry it wrote would be one more to push).
"""

from __future__ import annotations

import argparse
import sys
import threading

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
CONFIG_HELP = "site configuration (default: $WORKSTATION_CONFIG or the platform's)"


def enrol_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation enrol",
                                     description="Enrol this workstation with the central server (once, with IT's code).")
    parser.add_argument("--code", required=True, help="the one-time enrolment code IT issued for this workstation")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    args = parser.parse_args(argv)

    from workstation.services.session import workstation_id
    from workstation.services.sync import CodeRejected, KeyringProblem, NotConfigured, SyncClient, SyncError, Unreachable

    config = _server_config(args.config)
    if isinstance(config, int):
        return config
    ws = workstation_id(config)
    try:
        with SyncClient(config.server, ws) as client:
            client.enrol(args.code)
    except NotConfigured as exc:
        return _fail(EXIT_USAGE, str(exc))
    except KeyringProblem as exc:
        return _fail(EXIT_LOCKED, f"not enrolled: {exc}")
    except (CodeRejected, Unreachable, SyncError) as exc:
        reason = f"{exc} ({config.server.url})" if isinstance(exc, Unreachable) else str(exc)
        _record_enrolment(config, ws, reason)
        return _fail(EXIT_FAILED, f"not enrolled: {reason}")
    _record_enrolment(config, ws, None)
    print(f"enrolled: workstation {ws} with {config.server.url}; its token is in the OS keyring")
    return EXIT_OK


def _record_enrolment(config, ws: str, failure: str | None) -> None:
    """Enrolment (and a refused one) goes into the audit trail, which syncs it like any entry."""
    from workstation.core.audit import Outcome
    from workstation.services.session import AuditTrail, open_store
    from workstation.store.database import StoreError

    try:
        store = open_store(config)
    except StoreError as exc:
        print(f"warning: enrolment not recorded in the audit trail: {exc}", file=sys.stderr)
        return
    try:
        AuditTrail(store).record("workstation.enrol", outcome=Outcome.SUCCESS if failure is None else Outcome.MINOR_FAILURE,
                                 outcome_text=failure or "", server=config.server.url, workstation_id=ws)
    finally:
        store.close()


def sync_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation sync",
                                     description="Push the audit trail and feedback entries to the central server.")
    parser.add_argument("--once", action="store_true",
                        help="push everything pending, then exit: 0 when nothing is left, 1 when entries remain")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    args = parser.parse_args(argv)

    from workstation.services.session import open_store
    from workstation.services.sync import NOT_ENROLLED, KeyringProblem, NotConfigured, describe, make_worker
    from workstation.store.database import StoreError

    config = _server_config(args.config)
    if isinstance(config, int):
        return config
    try:
        store = open_store(config)
    except StoreError as exc:
        return _fail(EXIT_LOCKED, f"the store cannot be opened: {exc}")
    try:
        try:
            worker = make_worker(config, store)
            enrolled = worker.enrolled()
        except NotConfigured as exc:
            return _fail(EXIT_USAGE, str(exc))
        except KeyringProblem as exc:
            return _fail(EXIT_LOCKED, str(exc))
        if not enrolled:
            return _fail(EXIT_USAGE, NOT_ENROLLED)
        try:
            return _once(worker) if args.once else _forever(worker, describe)
        finally:
            worker.client.close()
    finally:
        store.close()


def _once(worker) -> int:
    before = worker.state.pending
    result = worker.sync_once()
    if worker.recovered:  # the server had lost entries (restored from a backup): say what was sent again
        print(f"sync: {worker.recovered}")
    if result.complete:
        print(f"sync: {result.pushed} entr{'y' if result.pushed == 1 else 'ies'} sent; nothing pending")
        return EXIT_OK
    reason = str(result.error) if result.error else "interrupted"
    print(f"sync: {result.pushed} of {before} sent; {result.pending} still pending: {reason}", file=sys.stderr)
    return EXIT_FAILED


def _forever(worker, describe) -> int:
    """Run the worker until Ctrl+C, printing each change of the status line."""
    lines: list[str] = []
    halted = threading.Event()

    def show(state) -> None:
        line = describe(state)
        if not lines or lines[-1] != line:
            lines.append(line)
            print(line, flush=True)
        if state.halted:
            halted.set()

    worker.state_changed.connect(show)
    try:  # Ctrl+C at any point from here on stops the worker
        show(worker.state)
        worker.start()
        while not halted.wait(0.5):
            pass
    except KeyboardInterrupt:
        print("sync: stopped", file=sys.stderr)
        return EXIT_OK
    finally:
        worker.stop()
        worker.state_changed.disconnect(show)
    print(f"sync: stopped: {worker.state.last_error}", file=sys.stderr)
    return EXIT_FAILED


def _server_config(option: str | None):
    """The site configuration, when it is valid and names a central server; else the exit code (reason printed)."""
    from workstation.core.site import ConfigError
    from workstation.services.config import load_site_config
    from workstation.services.sync import NOT_CONFIGURED

    try:
        config = load_site_config(option)
    except ConfigError as exc:
        return _fail(EXIT_USAGE, f"the site configuration is invalid: {exc}")
    if not config.server.configured:
        return _fail(EXIT_USAGE, NOT_CONFIGURED)
    return config


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
