"""Command line: the viewer (`workstation [PATH...] [--demo] [--screenshot F]`) and its subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from workstation import __version__

EXIT_OK, EXIT_NOTHING_READ, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # pydicom's complaints about odd files go to the log, not the user
    commands = {"scan": _scan, "demo-data": _demo_data, "pacs": _pacs, "infer": _infer, "audit": _audit,
                "enrol": _enrol, "sync": _sync, "doctor": _doctor, "review": _review, "results": _results,
                "receive": _receive, "report": _report, "queue": _queue, "worklist": _worklist,
                "export": _export, "install-support": _install_support}  # the last one: for installer/install.py only
    if argv and argv[0] in commands:
        return commands[argv[0]](argv[1:])
    return _viewer(argv)


def _export(argv: list[str]) -> int:
    from workstation.cli.export import export_main

    return export_main(argv)


def _receive(argv: list[str]) -> int:
    from workstation.cli.receive import receive_main

    return receive_main(argv)


def _queue(argv: list[str]) -> int:
    from workstation.cli.queue import queue_main

    return queue_main(argv)


def _worklist(argv: list[str]) -> int:
    from workstation.cli.worklist import worklist_main

    return worklist_main(argv)


def _infer(argv: list[str]) -> int:
    from workstation.cli.infer import infer_main

    return infer_main(argv)


def _review(argv: list[str]) -> int:
    from workstation.cli.review import review_main

    return review_main(argv)


def _report(argv: list[str]) -> int:
    from workstation.cli.report import report_main

    return report_main(argv)


def _results(argv: list[str]) -> int:
    from workstation.cli.results import results_main

    return results_main(argv)


def _audit(argv: list[str]) -> int:
    from workstation.cli.audit import audit_main

    return audit_main(argv)


def _enrol(argv: list[str]) -> int:
    from workstation.cli.sync import enrol_main

    return enrol_main(argv)


def _sync(argv: list[str]) -> int:
    from workstation.cli.sync import sync_main

    return sync_main(argv)


def _doctor(argv: list[str]) -> int:
    from workstation.cli.doctor import doctor_main

    return doctor_main(argv)


def _install_support(argv: list[str]) -> int:
    from workstation.cli.install_support import install_support_main

    return install_support_main(argv)


def _pacs(argv: list[str]) -> int:
    from workstation.cli.pacs import pacs_main

    return pacs_main(argv)


def _scan(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation scan", description="List the DICOM images found under PATHs.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, DICOMDIR or .zip")
    parser.add_argument("--json", action="store_true", help="print the workstation.scan/1 JSON document")
    args = parser.parse_args(argv)
    from workstation.dicom.scan import scan_paths
    from workstation.services.reports import format_report, scan_report

    catalog = scan_paths(args.paths)
    report = scan_report(catalog, [str(p) for p in args.paths])
    _print(json.dumps(report, indent=2) if args.json else format_report(report))
    return EXIT_OK if catalog.headers else EXIT_NOTHING_READ


def _print(text: str) -> None:
    """Print whatever the terminal's encoding cannot show as escapes rather than fail (file names, patient names)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))


def _demo_data(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation demo-data", description="Write the synthetic chest CT demo study.")
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--slices", type=int, default=120)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    from workstation.demo import write_demo_study

    study = write_demo_study(args.out, seed=args.seed, slices=args.slices, size=args.size)
    print(f"wrote {len(study.files)} slices and {study.ground_truth_path.name} to {study.directory}")
    return EXIT_OK


def _viewer(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="workstation",
        description="Radiology AI workstation. Subcommands: scan, pacs, infer, audit, enrol, sync, doctor, demo-data (see 'workstation scan -h').",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, DICOMDIR or .zip to open")
    parser.add_argument("--demo", action="store_true", help="open the bundled synthetic chest CT study")
    parser.add_argument("--ai", action="store_true", help="with --screenshot: run the AI model first and show its findings")
    parser.add_argument("--screenshot", type=Path, metavar="FILE.png",
                        help="render the window offscreen with the first series loaded, save it and exit")
    parser.add_argument("--config", metavar="FILE", help="site configuration (default: $WORKSTATION_CONFIG or the platform's)")
    parser.add_argument("--first-paint", action="store_true", help=argparse.SUPPRESS)  # bench/cold_start.py
    parser.add_argument("--version", action="version", version=f"workstation {__version__}")
    args = parser.parse_args(argv)
    paths = [str(p) for p in args.paths]
    config = args.config
    if args.demo:
        from workstation.services.demo import ensure_demo_study

        paths.insert(0, str(ensure_demo_study()))
        if config is None and demo_config() is not None:
            config = demo_config()
            _use_demo_store()
    from workstation.ui.app import run

    return run(paths, screenshot=args.screenshot, config_option=config, ai=args.ai, first_paint=args.first_paint)


def _use_demo_store() -> None:
    """The demo site (everyone a reviewer, its own workstation id) writes to a store of its own, so its
    entries never mix into this workstation's real audit trail (nor reach the central server)."""
    import os

    from platformdirs import user_data_dir

    if not os.environ.get("WORKSTATION_DATA_DIR"):
        os.environ["WORKSTATION_DATA_DIR"] = str(Path(user_data_dir("workstation", appauthor=False)) / "demo")


def demo_config() -> str | None:
    """With --demo and no site configuration chosen (--config or $WORKSTATION_CONFIG): the demo site (everyone reviews)."""
    import os

    if os.environ.get("WORKSTATION_CONFIG"):
        return None
    checkout = Path(__file__).resolve().parents[2]  # run from source; else the installer's copy
    path = checkout / "resources" / "demo-site.toml"
    if not (checkout / "pyproject.toml").is_file() or not path.is_file():
        path = Path(sys.prefix) / "share" / "workstation" / "resources" / "demo-site.toml"
    return str(path) if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
