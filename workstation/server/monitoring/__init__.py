"""Model monitoring on the central server: acceptance and PPV proxy per model version from reader sign-offs,
breakdowns by workstation and scanner, operating points, drift alerts, a dashboard (issue 16)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workstation.core.sync import API_PREFIX

from . import config

if TYPE_CHECKING:
    from fastapi import FastAPI


SIGN_IN_FAILURES_BURST = 20  # refused dashboard sign-ins a source address may make at once, then per minute:
SIGN_IN_FAILURES_PER_MINUTE = 10


def register(app: FastAPI) -> None:
    """Add the monitoring API and the dashboard to the server's app (configuration from the environment)."""
    from .api import router
    from .dashboard import router as dashboard_router
    from .projection import create_tables
    from .sessions import create_tables as create_session_tables

    from .. import limits

    app.state.monitoring_config = config.load()
    app.state.sign_in_failures = limits.Bucket(SIGN_IN_FAILURES_BURST, SIGN_IN_FAILURES_PER_MINUTE)
    create_tables(app.state.engine)
    create_session_tables(app.state.engine)
    app.include_router(router, prefix=API_PREFIX)
    app.include_router(dashboard_router)
