"""/api/v1/monitoring/...: the monitoring tables as JSON (or CSV with ``format=csv``), for qa and admin tokens."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from .. import auth
from ..api import ERRORS, EngineDep, fail, staff
from . import report
from .queries import Period

router = APIRouter(prefix="/monitoring", tags=["monitoring"], responses=ERRORS)
Staff = Annotated[auth.Caller, Depends(staff)]
Since = Annotated[date | None, Query(description="first day of the period (its week counts whole); UTC")]
Until = Annotated[date | None, Query(description="last day of the period (its week counts whole); UTC")]
Format = Annotated[str, Query(pattern="^(json|csv)$", description="json (default) or csv")]


def period(since: Since = None, until: Until = None) -> Period:
    if since and until and until < since:
        raise fail(422, "invalid", "until is before since")
    return Period(since, until)


PeriodDep = Annotated[Period, Depends(period)]


def _config(request: Request):
    return request.app.state.monitoring_config


def _answer(rows: list[dict[str, Any]], fmt: str, name: str) -> Response:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100]
    if fmt == "csv":
        return Response(report.to_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="monitoring-{name}.csv"'})
    return JSONResponse({"items": rows})


@router.get("/overview")
def overview(request: Request, engine: EngineDep, who: Staff, span: PeriodDep) -> dict[str, Any]:
    """Every table at once: versions, weekly, workstations, scanners, alerts, sync (see the README for each figure)."""
    return report.overview(engine, _config(request), span)


@router.get("/{table}", responses={404: {}})
def table(table: str, request: Request, engine: EngineDep, who: Staff, span: PeriodDep,
          model: str | None = None, version: str | None = None, format: Format = "json") -> Response:
    """One table of the overview (versions, weekly, workstations, scanners, alerts, sync), optionally for one
    model (and version)."""
    if table not in report.TABLES:
        raise fail(404, "not-found", f"no table {table!r}; tables: {', '.join(report.TABLES)}")
    rows = report.overview(engine, _config(request), span)[table]
    if model is not None:
        rows = [r for r in rows if r.get("model", model) == model and (version is None or r.get("version") == version)]
    return _answer(rows, format, table)


@router.get("/versions/{model}/{version}", responses={404: {}})
def detail(model: str, version: str, request: Request, engine: EngineDep, who: Staff, span: PeriodDep) -> dict[str, Any]:
    """One model version: figures, weekly series, score histogram, operating points, breakdowns, its alerts."""
    found = report.version_detail(engine, _config(request), model, version, span)
    if found is None:
        raise fail(404, "not-found", f"no runs of {model} {version} in this period")
    return found


@router.get("/versions/{model}/{version}/{table}", responses={404: {}})
def detail_table(model: str, version: str, table: str, request: Request, engine: EngineDep, who: Staff,
                 span: PeriodDep, format: Format = "json") -> Response:
    """One table of a version: weekly, scores, operating-points, workstations, scanners, alerts."""
    found = report.version_detail(engine, _config(request), model, version, span)
    key = table.replace("-", "_")
    if found is None or key not in found or key == "version":
        raise fail(404, "not-found", f"no table {table!r} for {model} {version}")
    return _answer(found[key], format, f"{model}-{version}-{table}")
