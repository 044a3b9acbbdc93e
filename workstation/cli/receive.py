"""`workstation receive [--config F]`: the C-STORE receiver with AI triage, headless, until stopped.

For a reading-room machine that pre-processes overnight: every arrival, route and result is printed (UIDs, AE
titles and model verdicts; never patient names). Exit 0 when stopped (Ctrl+C, SIGTERM), 1 when the receiver
cannot listen, 2 for a configuration error (a bad rule, a model a rule names that is not installed), 3 when the
encrypted store cannot be opened (the queue lives there).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3


def receive_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation receive",
                                     description="Receive studies pushed by configured nodes and run the routed AI models.")
    parser.add_argument("--config", metavar="FILE", help="site configuration (default: $WORKSTATION_CONFIG or the platform's)")
    args = parser.parse_args(argv)
    from workstation.core.site import ConfigError
    from workstation.services.config import load_site_config
    from workstation.services.session import StoreLocked, WorkSession

    try:
        config = load_site_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        session = WorkSession.open(config)
    except StoreLocked as exc:
        print(f"error: the inference queue lives in the encrypted store, which cannot be opened: {exc}", file=sys.stderr)
        return EXIT_STORE
    session.start("receive")
    try:
        return _serve(config, session)
    finally:
        session.end("receive")


def _serve(config, session) -> int:
    from workstation.core.site import ConfigError
    from workstation.net.errors import PacsError
    from workstation.services import triage_intake
    from workstation.services.pacs import PacsService
    from workstation.services.triage import TriageService

    triage = TriageService(config, session.store)
    try:
        triage.check_models()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    pacs = PacsService(config, audit=session.audit)
    printing = threading.Lock()

    def show(text: str, job) -> None:
        if text:
            with printing:
                print(text, flush=True)

    triage.changed.connect(show)
    triage_intake.connect(pacs, triage)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        pacs.start_receiver()
    except PacsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        pacs.close()
        return EXIT_FAILED
    if not config.nodes:
        print("warning: no PACS nodes are configured: no sender may store to this workstation", flush=True)
    rules = ", ".join(r.name for r in triage.settings.rules) or "none (every series is listed as not routed)"
    print(f"receiving as {config.local.ae_title} on port {config.local.store_port}; rules: {rules}; "
          f"a series is complete after {triage.settings.quiet_s:g} s without a new instance", flush=True)
    triage.start()
    from workstation.services.prefetch import Prefetcher

    prefetch = Prefetcher(pacs, triage.settings.prefetch, lambda: {s.study_instance_uid for s in triage.queue.studies()})
    prefetch.changed.connect(lambda text: show(text, None))
    prefetch.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        print("stopping: a running job is queued again at the next start", flush=True)
        prefetch.stop()
        pacs.close()
        triage.stop()
    return EXIT_OK
