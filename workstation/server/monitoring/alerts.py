"""Drift rules over weekly sums (limits in MonitoringConfig):

* **acceptance**: a week's acceptance rate outside the Wilson interval of the baseline's acceptance;
* **scores**: a week's score distribution against the baseline's: PSI above ``psi_max`` or the KS statistic above
  its critical value at ``ks_alpha``;
* **new input**: a scanner (manufacturer + model) or kernel the baseline never saw.

A version's baseline is its own first ``baseline_days`` (whole weeks) once it has enough decided findings there and
weeks after it; until then a new version is held to the baseline of the version it follows (the one of the same
model first seen before it) for acceptance and inputs (scores differ between versions, so not for those). An alert
is open while the version's latest judged week breaks the rule; it started at the first week of that streak.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, select

from . import queries
from .config import MonitoringConfig
from .projection import BINS, monitor_cells, monitor_versions, week_date
from .stats import ks, ks_critical, psi, wilson

C = monitor_cells.c


@dataclass(frozen=True)
class Alert:
    model: str
    version: str
    rule: str  # acceptance, scores, new-input
    started: str  # Monday of the first week of the streak (ISO date)
    latest: str  # Monday of the latest week that breaks the rule
    weeks: int  # weeks in the streak
    baseline: str  # "own" or the version whose baseline is used
    message: str
    value: float | None = None
    limit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Baseline:
    source: str  # "own" or a version
    weeks: set[int]
    after: int  # first week judged against it
    key: tuple[str, str]  # the version whose weeks they are


def evaluate(conn: Connection, config: MonitoringConfig) -> list[Alert]:
    weekly = defaultdict(dict)  # (model, version) -> week -> (decided, accepted)
    for r in queries.grouped_weekly(conn, "ws", []):
        decided = r["accepted"] + r["edited"] + r["rejected"] + r["deleted"]
        weekly[(r["model"], r["version"])][r["week"]] = (decided, r["accepted"] + r["edited"])
    bins = defaultdict(lambda: defaultdict(lambda: [0] * BINS))  # (model, version) -> week -> counts per bin
    for r in queries.grouped_weekly(conn, "bin", [C.score_bin]):
        bins[(r["model"], r["version"])][r["week"]][r["score_bin"]] += r["findings"]
    inputs = defaultdict(lambda: defaultdict(set))  # (model, version) -> week -> {(manufacturer, model, kernel)}
    for r in queries.grouped_weekly(conn, "scanner", [C.manufacturer, C.scanner_model, C.kernel]):
        if r["runs"]:
            inputs[(r["model"], r["version"])][r["week"]].add((r["manufacturer"], r["scanner_model"], r["kernel"]))
    order = defaultdict(list)
    for v in conn.execute(select(monitor_versions).order_by(monitor_versions.c.first_utc)):
        order[v.model].append(v)

    alerts: list[Alert] = []
    baselines: dict[tuple[str, str], Baseline] = {}
    for model, versions in order.items():
        previous: tuple[str, str] | None = None
        for v in versions:
            key = (model, v.version)
            weeks = weekly.get(key, {})
            end = v.first_week + config.baseline_days
            own = {w for w in weeks if w < end}
            decided_own = sum(weeks[w][0] for w in own)
            if decided_own >= config.min_decided_baseline and any(w >= end for w in weeks):
                baseline = baselines[key] = Baseline("own", own, end, key)
            elif previous is not None and previous in baselines:
                inherited = baselines[key] = baselines[previous]
                baseline = Baseline(inherited.key[1], inherited.weeks, v.first_week, inherited.key)
            else:
                baseline = None
            previous = key
            if baseline is None:
                continue
            source_key = baseline.key
            alerts += _acceptance(key, weeks, weekly.get(source_key, {}), baseline, config)
            if baseline.source == "own":
                alerts += _scores(key, bins.get(key, {}), baseline, config)
            if config.new_input:
                alerts += _inputs(key, inputs.get(key, {}), inputs.get(source_key, {}), baseline)
    return alerts


def _streak(judged: list[tuple[int, bool, float | None]]) -> tuple[int, int, int, float | None] | None:
    """(first week, latest week, length, latest value) of the trailing run of broken weeks, or None."""
    streak: list[tuple[int, float | None]] = []
    for week, broken, value in sorted(judged):
        streak = streak + [(week, value)] if broken else []
    if not streak:
        return None
    return streak[0][0], streak[-1][0], len(streak), streak[-1][1]


def _acceptance(key, weeks, source_weeks, baseline: Baseline, config: MonitoringConfig) -> list[Alert]:
    decided = sum(source_weeks.get(w, (0, 0))[0] for w in baseline.weeks)
    accepted = sum(source_weeks.get(w, (0, 0))[1] for w in baseline.weeks)
    interval = wilson(accepted, decided, config.confidence)
    if interval is None or decided < config.min_decided_baseline:
        return []
    low, high = interval
    judged = []
    for week, (n, k) in weeks.items():
        if week >= baseline.after and n >= config.min_decided_week:
            rate = k / n
            judged.append((week, not low <= rate <= high, rate))
    found = _streak(judged)
    if found is None:
        return []
    first, latest, length, rate = found
    side = "below" if rate < low else "above"
    source = "its own baseline" if baseline.source == "own" else f"the baseline of {key[0]} {baseline.source}"
    return [Alert(key[0], key[1], "acceptance", week_date(first).isoformat(), week_date(latest).isoformat(), length,
                  baseline.source,
                  f"weekly acceptance {rate:.0%} is {side} the {config.confidence:.0%} interval "
                  f"{low:.0%}-{high:.0%} of {source} ({accepted}/{decided})", rate, f"{low:.3f}-{high:.3f}")]


def _scores(key, weeks, baseline: Baseline, config: MonitoringConfig) -> list[Alert]:
    reference = [sum(weeks.get(w, [0] * BINS)[k] for w in baseline.weeks) for k in range(BINS)]
    n = sum(reference)
    if n < config.min_findings_week:
        return []
    judged = []
    for week, counts in weeks.items():
        m = sum(counts)
        if week < baseline.after or m < config.min_findings_week:
            continue
        index, statistic = psi(reference, counts), ks(reference, counts)
        broken = (index or 0) > config.psi_max or (statistic or 0) > ks_critical(n, m, config.ks_alpha)
        judged.append((week, broken, index))
    found = _streak(judged)
    if found is None:
        return []
    first, latest, length, index = found
    latest_counts = weeks[latest]
    statistic = ks(reference, latest_counts) or 0
    return [Alert(key[0], key[1], "scores", week_date(first).isoformat(), week_date(latest).isoformat(), length, "own",
                  f"score distribution shifted: PSI {index:.2f} (limit {config.psi_max:g}), KS D {statistic:.2f} "
                  f"(critical {ks_critical(n, sum(latest_counts), config.ks_alpha):.2f})", index,
                  f"PSI {config.psi_max:g}")]


def _inputs(key, weeks, source_weeks, baseline: Baseline) -> list[Alert]:
    known = set().union(*(source_weeks.get(w, set()) for w in baseline.weeks)) if baseline.weeks else set()
    seen: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for week, combos in weeks.items():
        if week >= baseline.after:
            for combo in combos - known:
                seen[combo].append(week)
    out = []
    for (manufacturer, scanner, kernel), found in sorted(seen.items()):
        what = f"{manufacturer or '(no manufacturer)'} {scanner or '(no model)'}, kernel {kernel or '(none)'}"
        out.append(Alert(key[0], key[1], "new-input", week_date(min(found)).isoformat(),
                         week_date(max(found)).isoformat(), len(found), baseline.source,
                         f"input not seen in the baseline: {what}"))
    return out
