"""`workstation doctor [--config FILE] [--json]`: check this workstation, one line per check.

Configuration, OS keyring, the encrypted store, C-ECHO to each PACS node, the central server and its token,
the models' weights, the inference device, free disk for the cache. Each line: a verdict ([ OK ], [WARN],
[FAIL], or [SKIP] when an earlier failure makes a check meaningless), what was found, and for a problem a hint
after "->". Exit 0 when no check failed (warnings allowed), 1 when any failed, 2 for a usage error.
IT runs it after installing; the installer runs it at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def doctor_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="workstation doctor",
        description="Check this workstation: configuration, keyring, store, PACS nodes, central server, models, "
                    "device, disk. Exit 0 when nothing failed (warnings allowed), 1 when a check failed.")
    parser.add_argument("--config", metavar="FILE", help="site configuration (default: $WORKSTATION_CONFIG or the platform's)")
    parser.add_argument("--json", action="store_true", help="print the workstation.doctor/1 JSON document instead of lines")
    args = parser.parse_args(argv)

    from workstation.services.doctor import format_report, run_checks

    # failed associations are reported on their line; pynetdicom's own log lines would only repeat them
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    report = run_checks(args.config)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report), flush=True)
    return EXIT_OK if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(doctor_main(sys.argv[1:]))
