"""What the API, the dashboard and the command line show: the same tables, read in one transaction after the
monitoring tables have caught up with the stored entries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from .. import db
from . import alerts, queries
from .config import MonitoringConfig
from .projection import refresh
from .queries import ALL, Period

TABLES = ("versions", "weekly", "workstations", "scanners", "alerts", "sync")


def overview(engine: Engine, config: MonitoringConfig, period: Period = ALL) -> dict[str, Any]:
    """Every table of the front page: versions, weekly figures, by workstation, by scanner, open alerts, sync health."""
    refresh(engine)
    c = config.confidence
    with db.read(engine) as conn:
        return {
            "period": {"since": period.since.isoformat() if period.since else None,
                       "until": period.until.isoformat() if period.until else None},
            "confidence": c,
            "versions": queries.versions(conn, period, c),
            "weekly": queries.weekly(conn, period, confidence=c),
            "workstations": queries.by_workstation(conn, period, confidence=c),
            "scanners": queries.by_scanner(conn, period, confidence=c),
            "alerts": [a.to_dict() for a in alerts.evaluate(conn, config)],
            "sync": queries.sync_health(conn),
        }


def version_detail(engine: Engine, config: MonitoringConfig, model: str, version: str,
                   period: Period = ALL) -> dict[str, Any] | None:
    """One model version: its figures, weekly series, score histogram, operating points, breakdowns, alerts."""
    refresh(engine)
    c = config.confidence
    with db.read(engine) as conn:
        summary = next((v for v in queries.versions(conn, period, c)
                        if (v["model"], v["version"]) == (model, version)), None)
        if summary is None:
            return None
        bins = queries.score_bins(conn, model, version, period)
        return {
            "version": summary,
            "weekly": queries.weekly(conn, period, model, version, c),
            "scores": bins,
            "operating_points": queries.operating_points(bins, summary["threshold"], c),
            "workstations": queries.by_workstation(conn, period, model, version, c),
            "scanners": queries.by_scanner(conn, period, model, version, c),
            "alerts": [a.to_dict() for a in alerts.evaluate(conn, config)
                       if (a.model, a.version) == (model, version)],
        }


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row for CSV: intervals as two columns."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_ci"):
            out[key[:-3] + "_low"], out[key[:-3] + "_high"] = value if value else (None, None)
        else:
            out[key] = value
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    if not rows:
        return ""
    buffer = io.StringIO()
    flattened = [flat(r) for r in rows]
    columns = list(flattened[0]) if flattened else []
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in flattened:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):  # never a formula in a spreadsheet
        return "'" + value
    return value
