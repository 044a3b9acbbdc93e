"""Every check of the site file in one function, shared by the app at start (`services.config`) and by the offline
installer before it changes anything (installer/install.py runs it from the bundle's wheel with the standard
library only: so nothing here, nor in what it imports, may need a third-party package)."""

from __future__ import annotations

from typing import Any

from workstation.core.site import SiteConfig, parse_site_config
from workstation.deid.options import deid_settings
from workstation.routing.rules import routing_settings


def check_site_data(data: dict[str, Any]) -> SiteConfig:
    """The parsed site configuration; ConfigError names the first bad key (core keys, delivery, routing rules,
    alert thresholds, worklist, de-identification)."""
    config = parse_site_config(data)
    routing_settings(config)
    deid_settings(config)
    return config
