"""The monitoring rules and their limits, from the server's configuration file (TOML, section [monitoring]).

The file is named by ``--config FILE`` (``workstation-server monitor``) or ``$WORKSTATION_SERVER_CONFIG``
(``serve`` and ``monitor``); without one the defaults below apply. Unknown keys and bad values are errors
naming the key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

CONFIG_ENV = "WORKSTATION_SERVER_CONFIG"


@dataclass(frozen=True)
class MonitoringConfig:
    baseline_days: int = 28  # a version's baseline: the weeks starting within this many days of its first run
    confidence: float = 0.95  # of every interval, and of the baseline interval a week must stay inside
    min_decided_baseline: int = 30  # fewer decided findings in the baseline: the rule waits (or uses the predecessor)
    min_decided_week: int = 20  # a week with fewer decided findings is not judged
    psi_max: float = 0.25  # score drift: PSI above this ...
    ks_alpha: float = 0.05  # ... or KS statistic above its critical value at this level
    min_findings_week: int = 50  # a week with fewer scored findings is not judged for score drift
    new_input: bool = True  # a scanner/kernel not seen in the baseline is an alert
    session_hours: float = 8.0  # dashboard sign-in lifetime

    def __post_init__(self) -> None:
        checks = {
            "baseline_days": 7 <= self.baseline_days <= 3650,
            "confidence": 0.5 <= self.confidence < 1,
            "min_decided_baseline": self.min_decided_baseline >= 1,
            "min_decided_week": self.min_decided_week >= 1,
            "psi_max": self.psi_max > 0,
            "ks_alpha": 0 < self.ks_alpha < 1,
            "min_findings_week": self.min_findings_week >= 1,
            "session_hours": 0 < self.session_hours <= 24 * 30,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"monitoring.{key}: out of range ({getattr(self, key)!r})")


def parse(data: dict) -> MonitoringConfig:
    section = data.get("monitoring", {})
    if not isinstance(section, dict):
        raise ValueError("monitoring: must be a table")
    known = {f.name: f.type for f in fields(MonitoringConfig)}
    values = {}
    for key, value in section.items():
        if key not in known:
            raise ValueError(f"monitoring.{key}: unknown key (known: {', '.join(known)})")
        kind = {"int": int, "float": (int, float), "bool": bool}[known[key]]
        if isinstance(value, bool) is not (known[key] == "bool") or not isinstance(value, kind):
            raise ValueError(f"monitoring.{key}: must be {'a number' if known[key] == 'float' else 'an ' + known[key] if known[key] == 'int' else 'true or false'}")
        values[key] = float(value) if known[key] == "float" else value
    return MonitoringConfig(**values)


def load(path: str | Path | None = None) -> MonitoringConfig:
    """The [monitoring] section of `path`, else of $WORKSTATION_SERVER_CONFIG, else the defaults."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return MonitoringConfig()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    return parse(data)
