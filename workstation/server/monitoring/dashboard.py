"""/dashboard: the monitoring figures as server-rendered HTML with SVG charts (no JavaScript, nothing from a CDN).

Sign in with a qa or admin token in a form (POST body, never the URL); the server answers with a session cookie
(HttpOnly, SameSite=Strict, Secure under HTTPS) and the token is not kept in the browser. Every page is
no-store and carries a Content-Security-Policy that allows nothing but our own stylesheet.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import db
from . import charts, report, sessions
from .queries import Period

router = APIRouter(prefix="/dashboard", include_in_schema=False)
MAX_FORM = 4096
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:10px 20px;display:flex;justify-content:space-between;align-items:center}
header a{color:#fff}main{padding:12px 20px}h1{font-size:20px;margin:0}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin-bottom:6px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#eceff1}td.t,th.t{text-align:left}
.alert{background:#ffebee;border-left:4px solid #c62828;padding:6px 10px;margin:4px 0}.ok{color:#2e7d32}
.charts{display:flex;flex-wrap:wrap;gap:14px}.chart{background:#fff;border:1px solid #ddd}
.note{color:#555;font-size:12px;max-width:900px}form.inline{display:inline}button{cursor:pointer}
.signin{max-width:420px;margin:60px auto;background:#fff;padding:20px;border:1px solid #ddd}
.signin input{width:100%;box-sizing:border-box;padding:6px;margin:8px 0}.error{color:#c62828}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""
NOTE = ("Acceptance is the share of decided findings the reader accepted or edited; it is reader agreement, "
        "not ground truth (no pathology or follow-up is known here). Intervals are Wilson 95%.")


def _page(title: str, body: str, who=None, status: int = 200) -> HTMLResponse:
    top = (f'<form class="inline" method="post" action="/dashboard/sign-out">{escape(who.name)} ({escape(who.role)}) '
           '<button type="submit" id="sign-out">Sign out</button></form>') if who else ""
    html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            '<link rel="stylesheet" href="/dashboard/style.css"></head><body>'
            f'<header><h1><a href="/dashboard">Model monitoring</a></h1><div>{top}</div></header>'
            f'<main>{body}</main></body></html>')
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _who(request: Request):
    with db.read(request.app.state.engine) as conn:
        return sessions.current(conn, request.cookies.get(sessions.COOKIE))


def _sign_in_page(message: str = "", status: int = 200) -> HTMLResponse:
    error = f'<p class="error" id="error">{escape(message)}</p>' if message else ""
    return _page("Sign in", '<div class="signin"><h2>Sign in</h2>'
                 '<p class="note">With a qa or admin token of this server (workstation-server issue-token).</p>'
                 f'{error}<form method="post" action="/dashboard/sign-in">'
                 '<label for="token">Token</label><input type="password" id="token" name="token" autocomplete="off" required>'
                 '<button type="submit" id="sign-in">Sign in</button></form></div>', status=status)


@router.get("/style.css")
def style() -> Response:
    return Response(STYLE, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_FORM:
        return _sign_in_page("form too large", 413)
    failures = request.app.state.sign_in_failures
    source = request.client.host if request.client else "?"
    wait = failures.retry_after(source)
    if wait is not None:
        answer = _sign_in_page(f"too many refused sign-ins from this address: try again in {wait} s", 429)
        answer.headers["Retry-After"] = str(wait)
        return answer
    token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0].strip()
    engine = request.app.state.engine
    with db.write(engine) as conn:
        made = sessions.sign_in(conn, token, request.app.state.monitoring_config.session_hours) if token else None
    if made is None:
        failures.spend(source)
        return _sign_in_page("token refused: it must be a valid qa or admin token", 401)
    session_id, _who_ = made
    answer = RedirectResponse("/dashboard", status_code=303, headers={"Cache-Control": "no-store"})
    answer.set_cookie(sessions.COOKIE, session_id, httponly=True, samesite="strict", path="/dashboard",
                      secure=request.url.scheme == "https",
                      max_age=int(request.app.state.monitoring_config.session_hours * 3600))
    return answer


@router.post("/sign-out")
def sign_out(request: Request) -> Response:
    with db.write(request.app.state.engine) as conn:
        sessions.sign_out(conn, request.cookies.get(sessions.COOKIE))
    answer = RedirectResponse("/dashboard", status_code=303, headers={"Cache-Control": "no-store"})
    answer.delete_cookie(sessions.COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return answer


def _period(request: Request) -> Period:
    from datetime import date

    values = {}
    for name in ("since", "until"):
        text = request.query_params.get(name) or ""
        try:
            values[name] = date.fromisoformat(text) if text else None
        except ValueError:
            values[name] = None
    return Period(**values)


def _query(period: Period) -> str:
    parts = [f"{k}={v.isoformat()}" for k, v in (("since", period.since), ("until", period.until)) if v]
    return ("?" + "&".join(parts)) if parts else ""


def _pct(value, ci=None) -> str:
    if value is None:
        return "–"
    text = f"{value:.1%}"
    return text + (f" <small>({ci[0]:.1%}–{ci[1]:.1%})</small>" if ci else "")


def _num(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


FIGURES = [("runs", "runs"), ("findings", "findings"), ("decided", "decided"), ("acceptance", "acceptance (95% CI)"),
           ("ppv_proxy", "PPV proxy (95% CI)"), ("rejection_rate", "rejected"), ("added_per_run", "reader-added / run"),
           ("hours_to_decision", "hours to sign-off")]


def _figure_cells(row: dict[str, Any]) -> str:
    cells = []
    for key, _title in FIGURES:
        if key in ("acceptance", "ppv_proxy"):
            cells.append(f"<td>{_pct(row[key], row[key + '_ci'])}</td>")
        elif key == "rejection_rate":
            cells.append(f"<td>{_pct(row[key])}</td>")
        elif key in ("added_per_run", "hours_to_decision"):
            cells.append(f"<td>{_num(row[key])}</td>")
        else:
            cells.append(f"<td>{row[key]}</td>")
    return "".join(cells)


def _table(table_id: str, first: list[tuple[str, str]], rows: list[dict[str, Any]], link=None) -> str:
    head = "".join(f'<th class="t">{escape(title)}</th>' for _key, title in first)
    head += "".join(f"<th>{escape(title)}</th>" for _key, title in FIGURES)
    lines = []
    for row in rows:
        cells = "".join(f'<td class="t">{escape(str(row.get(key) or "–"))}</td>' for key, _title in first)
        if link:
            cells = f'<td class="t"><a href="{link(row)}">{escape(row["model"])} {escape(row["version"])}</a></td>' + \
                "".join(f'<td class="t">{escape(str(row.get(key) or "–"))}</td>' for key, _title in first[1:])
        lines.append(f"<tr>{cells}{_figure_cells(row)}</tr>")
    if not rows:
        lines.append(f'<tr><td class="t" colspan="{len(first) + len(FIGURES)}">nothing in this period</td></tr>')
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


def _version_link(row: dict[str, Any], period: Period | None = None) -> str:
    return f"/dashboard/versions/{quote(row['model'], safe='')}/{quote(row['version'], safe='')}" + \
        (_query(period) if period else "")


def _alerts(alerts: list[dict[str, Any]], period: Period) -> str:
    if not alerts:
        return '<p class="ok" id="no-alerts">No open alerts.</p>'
    items = []
    for a in alerts:
        link = _version_link(a, period) + f"#alert-{escape(a['rule'])}"
        items.append(f'<div class="alert"><a class="alert-link" href="{link}">{escape(a["model"])} {escape(a["version"])}'
                     f'</a> · <b>{escape(a["rule"])}</b> since {escape(a["started"])} ({a["weeks"]} week(s)): '
                     f'{escape(a["message"])}</div>')
    return f'<div id="alerts">{"".join(items)}</div>'


def _period_form(period: Period, action: str) -> str:
    since = period.since.isoformat() if period.since else ""
    until = period.until.isoformat() if period.until else ""
    return (f'<form method="get" action="{action}">Period: <input type="date" name="since" value="{since}"> to '
            f'<input type="date" name="until" value="{until}"> <button type="submit">Show</button> '
            f'<a href="{action}">all time</a></form>')


def _export(path: str, period: Period) -> str:
    return f' <a class="csv" href="{path}{_query(period)}">CSV</a>'


@router.get("")
def home(request: Request) -> Response:
    who = _who(request)
    if who is None:
        return _sign_in_page()
    period = _period(request)
    data = report.overview(request.app.state.engine, request.app.state.monitoring_config, period)
    sync_rows = "".join(
        f'<tr><td class="t">{escape(s["workstation_id"])}</td><td>{s["entries"]}</td>'
        f'<td class="t">{escape((s["last_push_utc"] or "never")[:19].replace("T", " "))}</td>'
        f'<td class="t">{"yes" if s["enrolled"] else ("revoked" if s["revoked_utc"] else "no")}</td>'
        f'<td>{s["incidents_7d"]}</td><td>{s["incidents"]}</td></tr>' for s in data["sync"])
    body = (
        f'{_period_form(period, "/dashboard")}'
        f'<h2>Open alerts</h2>{_alerts(data["alerts"], period)}'
        f'<h2>Model versions{_export("/dashboard/export/versions.csv", period)}</h2>'
        + _table("versions", [("model", "model version"), ("sha256", "sha256"), ("threshold", "threshold")],
                 [{**v, "sha256": (v["sha256"] or "")[:12], "threshold": _num(v["threshold"], 3)} for v in data["versions"]],
                 link=lambda r: _version_link(r, period))
        + f'<p class="note">{escape(NOTE)} PPV proxy: accepted or edited with the model\'s label kept. '
          'Findings count once their run\'s review is signed off.</p>'
        f'<h2>By workstation{_export("/dashboard/export/workstations.csv", period)}</h2>'
        + _table("by-workstation", [("model", "model"), ("version", "version"), ("workstation_id", "workstation")],
                 data["workstations"])
        + f'<h2>By scanner{_export("/dashboard/export/scanners.csv", period)}</h2>'
        + _table("by-scanner", [("model", "model"), ("version", "version"), ("manufacturer", "manufacturer"),
                                ("scanner_model", "scanner model"), ("kernel", "kernel")], data["scanners"])
        + f'<h2>Sync health{_export("/dashboard/export/sync.csv", period)}</h2>'
        '<table id="sync"><thead><tr><th class="t">workstation</th><th>entries</th><th class="t">last push (UTC)</th>'
        f'<th class="t">enrolled</th><th>incidents 7 d</th><th>incidents</th></tr></thead><tbody>{sync_rows}</tbody></table>'
    )
    return _page("Model monitoring", body, who)


@router.get("/versions/{model}/{version}")
def version_page(model: str, version: str, request: Request) -> Response:
    who = _who(request)
    if who is None:
        return _sign_in_page()
    period = _period(request)
    config = request.app.state.monitoring_config
    data = report.version_detail(request.app.state.engine, config, model, version, period)
    if data is None:
        return _page("Not found", f"<p>No runs of {escape(model)} {escape(version)} in this period.</p>", who, 404)
    v = data["version"]
    base = _version_link(v)
    alerts = "".join(f'<div class="alert" id="alert-{escape(a["rule"])}"><b>{escape(a["rule"])}</b> since '
                     f'{escape(a["started"])}, latest week {escape(a["latest"])}: {escape(a["message"])}</div>'
                     for a in data["alerts"]) or '<p class="ok" id="no-alerts">No open alerts.</p>'
    op_rows = "".join(
        f'<tr{" class=in-force" if p["in_force"] else ""}><td>{p["threshold"]:.2f}{" (in force)" if p["in_force"] else ""}</td>'
        f'<td>{p["shown"]}</td><td>{_pct(p["accepted_kept"])}</td><td>{_pct(p["rejected_kept"])}</td>'
        f'<td>{_pct(p["acceptance"], p["acceptance_ci"])}</td></tr>' for p in data["operating_points"])
    body = (
        f'<p><a href="/dashboard{_query(period)}">&larr; all versions</a></p>'
        f'<h2 id="title">{escape(model)} {escape(version)}</h2>'
        f'<p class="note">sha256 {escape(v["sha256"])} · threshold {_num(v["threshold"], 3)} '
        f'({escape(v["score_scale"] or "scale unknown")}) · first run week {escape(v["first_week"] or "")}</p>'
        f'{_period_form(period, base)}'
        + _table("summary", [("model", "model version")], [v], link=lambda r: base)
        + f'<h2>Alerts</h2>{alerts}'
        '<h2>Charts</h2><div class="charts">'
        f'{charts.acceptance_weekly(data["weekly"], _band(data["alerts"]))}{charts.score_histogram(data["scores"], v["threshold"])}'
        f'{charts.operating_curve(data["operating_points"])}</div>'
        f'<p class="note">{escape(NOTE)}</p>'
        f'<h2>Per week{_export(base + "/export/weekly.csv", period)}</h2>'
        + _table("weekly", [("week", "week (Monday)")], data["weekly"])
        + f'<h2>Operating points{_export(base + "/export/operating-points.csv", period)}</h2>'
        '<table id="operating-points"><thead><tr><th>threshold</th><th>shown</th><th>accepted kept</th>'
        f'<th>rejected kept</th><th>acceptance (95% CI)</th></tr></thead><tbody>{op_rows}</tbody></table>'
        f'<h2>By workstation{_export(base + "/export/workstations.csv", period)}</h2>'
        + _table("by-workstation", [("workstation_id", "workstation")], data["workstations"])
        + f'<h2>By scanner{_export(base + "/export/scanners.csv", period)}</h2>'
        + _table("by-scanner", [("manufacturer", "manufacturer"), ("scanner_model", "scanner model"),
                                ("kernel", "kernel")], data["scanners"])
    )
    return _page(f"{model} {version}", body, who)


def _band(alerts: list[dict[str, Any]]) -> tuple[float, float] | None:
    """The baseline interval of an open acceptance alert, drawn behind the weekly points."""
    for alert in alerts:
        if alert["rule"] == "acceptance" and alert["limit"]:
            low, high = (float(v) for v in alert["limit"].split("-"))
            return low, high
    return None


@router.get("/export/{name}.csv")
def export(name: str, request: Request) -> Response:
    if _who(request) is None:
        return _sign_in_page(status=401)
    if name not in report.TABLES:
        return Response("no such table", status_code=404, media_type="text/plain")
    data = report.overview(request.app.state.engine, request.app.state.monitoring_config, _period(request))
    return Response(report.to_csv(data[name]), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="monitoring-{name}.csv"', **HEADERS})


@router.get("/versions/{model}/{version}/export/{name}.csv")
def export_version(model: str, version: str, name: str, request: Request) -> Response:
    if _who(request) is None:
        return _sign_in_page(status=401)
    data = report.version_detail(request.app.state.engine, request.app.state.monitoring_config, model, version,
                                 _period(request))
    key = name.replace("-", "_")
    if data is None or key not in data or key == "version":
        return Response("no such table", status_code=404, media_type="text/plain")
    return Response(report.to_csv(data[key]), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="monitoring-{name}.csv"', **HEADERS})
