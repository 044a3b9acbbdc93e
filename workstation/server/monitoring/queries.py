"""Every monitoring figure as an SQL aggregate over ``monitor_cells`` (GROUP BY in the database, never a Python
loop over entries), and the figures derived from those sums: rates with Wilson intervals, per run means."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, func, select

from .. import db
from .projection import BINS, EPOCH, MEASURES, monitor_cells, monitor_versions, week_date
from .stats import wilson

C = monitor_cells.c


@dataclass(frozen=True)
class Period:
    """Whole weeks (Monday to Sunday, UTC) from the week holding `since` to the week before the one holding `until`."""

    since: date | None = None
    until: date | None = None

    @property
    def first_week(self) -> int | None:
        return None if self.since is None else (self.since - EPOCH).days - self.since.weekday()

    @property
    def end_week(self) -> int | None:
        return None if self.until is None else (self.until - EPOCH).days - self.until.weekday() + 7

    def where(self, query):
        if self.first_week is not None:
            query = query.where(C.week >= self.first_week)
        if self.end_week is not None:
            query = query.where(C.week < self.end_week)
        return query


ALL = Period()


def _sums():
    return [func.coalesce(func.sum(C[name]), 0).label(name) for name in MEASURES]


def _grouped(conn: Connection, grain: str, keys: list, period: Period, **equal: Any) -> list[dict[str, Any]]:
    query = select(*keys, *_sums()).where(C.grain == grain)
    for name, value in equal.items():
        if value is not None:
            query = query.where(C[name] == value)
    query = period.where(query).group_by(*keys).order_by(*keys)
    out = []
    for row in conn.execute(query).mappings():  # PostgreSQL sums bigint as numeric (Decimal)
        values = dict(row)
        for name in MEASURES:
            values[name] = float(values[name]) if name == "decision_s" else int(values[name])
        out.append(values)
    return out


def figures(row: dict[str, Any], confidence: float = 0.95) -> dict[str, Any]:
    """The monitoring figures of one group's sums."""
    decided = sum(row[s] for s in ("accepted", "edited", "rejected", "deleted"))
    accepted = row["accepted"] + row["edited"]
    signed = row["signed_runs"]
    out = {name: (float(row[name]) if name == "decision_s" else int(row[name])) for name in MEASURES}
    out.update(
        decided=int(decided),
        acceptance=accepted / decided if decided else None,
        acceptance_ci=wilson(accepted, decided, confidence),
        ppv_proxy=row["kept"] / decided if decided else None,
        ppv_proxy_ci=wilson(row["kept"], decided, confidence),
        rejection_rate=(row["rejected"] + row["deleted"]) / decided if decided else None,
        added_per_run=row["added"] / signed if signed else None,
        hours_to_decision=row["decision_s"] / signed / 3600 if signed else None,
    )
    del out["decision_s"]
    return out


def versions(conn: Connection, period: Period = ALL, confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per model name + version: the figures, with its sha256, threshold and first/last week."""
    meta = {(r.model, r.version): r for r in conn.execute(select(monitor_versions))}
    rows = _grouped(conn, "ws", [C.model, C.version], period)
    out = []
    for row in rows:
        info = meta.get((row["model"], row["version"]))
        out.append({"model": row["model"], "version": row["version"],
                    "sha256": info.sha256 if info else "", "threshold": info.threshold if info else None,
                    "score_scale": info.score_scale if info else "",
                    "first_week": week_date(info.first_week).isoformat() if info else None,
                    "last_week": week_date(info.last_week).isoformat() if info else None,
                    **figures(row, confidence)})
    return sorted(out, key=lambda r: (r["model"], r["first_week"] or "", r["version"]))


def by_workstation(conn: Connection, period: Period = ALL, model: str | None = None, version: str | None = None,
                   confidence: float = 0.95) -> list[dict[str, Any]]:
    rows = _grouped(conn, "ws", [C.model, C.version, C.workstation_id], period, model=model, version=version)
    return [{"model": r["model"], "version": r["version"], "workstation_id": r["workstation_id"],
             **figures(r, confidence)} for r in rows]


def by_scanner(conn: Connection, period: Period = ALL, model: str | None = None, version: str | None = None,
               confidence: float = 0.95) -> list[dict[str, Any]]:
    rows = _grouped(conn, "scanner", [C.model, C.version, C.manufacturer, C.scanner_model, C.kernel], period,
                    model=model, version=version)
    return [{"model": r["model"], "version": r["version"], "manufacturer": r["manufacturer"],
             "scanner_model": r["scanner_model"], "kernel": r["kernel"], **figures(r, confidence)} for r in rows]


def weekly(conn: Connection, period: Period = ALL, model: str | None = None, version: str | None = None,
           confidence: float = 0.95) -> list[dict[str, Any]]:
    rows = _grouped(conn, "ws", [C.model, C.version, C.week], period, model=model, version=version)
    return [{"model": r["model"], "version": r["version"], "week": week_date(r["week"]).isoformat(),
             "week_number": r["week"], **figures(r, confidence)} for r in rows]


def score_bins(conn: Connection, model: str, version: str, period: Period = ALL) -> list[dict[str, Any]]:
    """The score histogram (bins of 1/BINS) with each bin's decisions; every bin listed, empty ones too."""
    rows = {r["score_bin"]: r for r in _grouped(conn, "bin", [C.score_bin], period, model=model, version=version)}
    out = []
    for k in range(BINS):
        r = rows.get(k) or {name: 0 for name in MEASURES}
        out.append({"bin": k, "low": k / BINS, "high": (k + 1) / BINS, "findings": int(r["findings"]),
                    "accepted": int(r["accepted"] + r["edited"]), "rejected": int(r["rejected"] + r["deleted"]),
                    "pending": int(r["pending"])})
    return out


def operating_points(bins: list[dict[str, Any]], threshold: float | None = None,
                     confidence: float = 0.95) -> list[dict[str, Any]]:
    """For each threshold on the bin edges: findings that would be shown, and what fraction of the accepted and of
    the rejected ones would remain (reader decisions as the reference, not ground truth)."""
    total_accepted = sum(b["accepted"] for b in bins)
    total_rejected = sum(b["rejected"] for b in bins)
    out = []
    for k in range(BINS):
        kept = bins[k:]
        shown = sum(b["findings"] for b in kept)
        accepted = sum(b["accepted"] for b in kept)
        rejected = sum(b["rejected"] for b in kept)
        edge = k / BINS
        out.append({"threshold": edge, "shown": shown,
                    "accepted_kept": accepted / total_accepted if total_accepted else None,
                    "rejected_kept": rejected / total_rejected if total_rejected else None,
                    "acceptance": accepted / (accepted + rejected) if accepted + rejected else None,
                    "acceptance_ci": wilson(accepted, accepted + rejected, confidence),
                    "in_force": threshold is not None and edge <= threshold < edge + 1 / BINS})
    return out


def grouped_weekly(conn: Connection, grain: str, extra: list) -> list[dict[str, Any]]:
    """Sums per model, version, week (and `extra` columns) over all time: what the drift rules read."""
    return _grouped(conn, grain, [C.model, C.version, C.week, *extra], ALL)


def sync_health(conn: Connection) -> list[dict[str, Any]]:
    """Per workstation: entries, last push, enrolment, incidents (all, and in the last 7 days)."""
    w, i = db.workstations.c, db.incidents.c
    week_ago = db.normalise_time((_now() - _days(7)).isoformat())
    counts = {r.workstation_id: (r.total, r.recent, r.last) for r in conn.execute(
        select(i.workstation_id, func.count().label("total"),
               func.sum(func.cast(i.at_utc >= week_ago, db.Integer)).label("recent"),
               func.max(i.at_utc).label("last")).group_by(i.workstation_id))}
    out = []
    for row in conn.execute(select(w.id, w.entries, w.last_push_utc, w.token_hash, w.revoked_utc).order_by(w.id)):
        total, recent, last = counts.get(row.id, (0, 0, None))
        out.append({"workstation_id": row.id, "entries": int(row.entries), "last_push_utc": row.last_push_utc,
                    "enrolled": row.token_hash is not None, "revoked_utc": row.revoked_utc,
                    "incidents": int(total), "incidents_7d": int(recent or 0), "last_incident_utc": last})
    return out


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def _days(n: int):
    from datetime import timedelta

    return timedelta(days=n)
