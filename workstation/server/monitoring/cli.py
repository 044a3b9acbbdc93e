"""`workstation-server monitor`: the monitoring figures for scripts (text, --json, --csv DIR).

Exit status: 0, or 1 when an alert is open (so a cron job can mail it), 2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from .. import db
from . import config as monitoring_config
from . import report
from .queries import Period

FORMAT = "workstation.monitoring/1"


def add_parser(commands, database: argparse.ArgumentParser) -> None:
    monitor = commands.add_parser("monitor", parents=[database],
                                  help="print acceptance, PPV proxy, alerts and sync health per model version")
    monitor.add_argument("--json", action="store_true", help=f"print {FORMAT} (every table) instead of text")
    monitor.add_argument("--csv", metavar="DIR", help="also write each table as DIR/<table>.csv")
    monitor.add_argument("--since", type=date.fromisoformat, help="first day (YYYY-MM-DD; whole weeks)")
    monitor.add_argument("--until", type=date.fromisoformat, help="last day (YYYY-MM-DD; whole weeks)")
    monitor.add_argument("--config", help="server configuration file ([monitoring] rules); "
                                          f"default ${monitoring_config.CONFIG_ENV}")


def run(args: argparse.Namespace) -> int:
    try:
        settings = monitoring_config.load(args.config)
    except ValueError as exc:
        print(f"workstation-server monitor: {exc}", file=sys.stderr)
        return 2
    engine = db.make_engine(args.database)
    try:
        db.create_schema(engine)
        data = report.overview(engine, settings, Period(args.since, args.until))
    finally:
        engine.dispose()
    if args.csv:
        folder = Path(args.csv)
        folder.mkdir(parents=True, exist_ok=True)
        for table in report.TABLES:
            (folder / f"{table}.csv").write_text(report.to_csv(data[table]), encoding="utf-8")
    if args.json:
        print(json.dumps({"format": FORMAT, **data}, indent=1))
    else:
        print(text(data))
    return 1 if data["alerts"] else 0


def _pct(value, ci=None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" + (f" ({ci[0]:.1%}-{ci[1]:.1%})" if ci else "")


def text(data: dict) -> str:
    lines = [f"Model versions (intervals: Wilson {data['confidence']:.0%}; acceptance is reader agreement, not ground truth)"]
    header = ("model", "version", "runs", "findings", "decided", "acceptance", "PPV proxy", "rejected", "added/run",
              "h to sign-off")
    rows = [header] + [(v["model"], v["version"], str(v["runs"]), str(v["findings"]), str(v["decided"]),
                        _pct(v["acceptance"], v["acceptance_ci"]), _pct(v["ppv_proxy"], v["ppv_proxy_ci"]),
                        _pct(v["rejection_rate"]), "-" if v["added_per_run"] is None else f"{v['added_per_run']:.2f}",
                        "-" if v["hours_to_decision"] is None else f"{v['hours_to_decision']:.1f}")
                       for v in data["versions"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append("")
    lines.append(f"Open alerts: {len(data['alerts'])}")
    lines += [f"  {a['model']} {a['version']} {a['rule']} since {a['started']}: {a['message']}" for a in data["alerts"]]
    lines.append("")
    lines.append("Sync health")
    lines += [f"  {s['workstation_id']}: {s['entries']} entries, last push {s['last_push_utc'] or 'never'}, "
              f"{s['incidents_7d']} incident(s) in 7 days ({s['incidents']} in all)" for s in data["sync"]]
    return "\n".join(lines)
