"""Routing rules from the site file, validated at start like every other key (key and reason).

    [routing]
    quiet_s = 10                      # a series is complete after this long without a new instance
    [[routing.rules]]
    name = "chest-ct"
    calling_ae = ["CT01", "ORTHANC"]  # any of; omitted: any sender
    modality = ["CT"]
    body_part = ["CHEST"]
    series_description = "*lung*|*chest*"   # case-insensitive, * and ? wildcards, | between alternatives
    slices = [10, 1000]               # [min, max] instances in the series
    thickness_mm = [0.5, 3.0]
    expected_instances = 300          # optional: complete as soon as this many have arrived
    models = ["nodule-detector"]      # NAME or NAME:VERSION, run in this order
    priority = 5                      # 0-9, higher runs first
    [[routing.prefetch]]              # optional: look for new studies on a node and retrieve them (then routed)
    node = "MAIN"                     # a [pacs.NAME] node
    every_minutes = 15
    modality = "CT"                   # C-FIND ModalitiesInStudy
    study_description = "*chest*"     # optional, case-insensitive pattern, checked here
    days = 0                          # study dates from today minus this many days to today
    [alerts]
    "nodule-detector" = 0.6           # a finding at or above this calibrated score is an alert (default: the model's threshold)
    [alerts.chest-triage]             # or a table: the threshold, and labels that make an alert critical
    threshold = 0.5
    critical_labels = ["pneumothorax"]
    [worklist]
    show_at_start = true
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from workstation.core.site import AE_TITLE, ConfigError, SiteConfig

DEFAULT_QUIET_S = 10.0
DEFAULT_PRIORITY = 5
MODEL_SPEC = re.compile(r"^[A-Za-z0-9_.-]{1,64}(:[A-Za-z0-9_.+-]{1,32})?$")
RULE_KEYS = {"name", "calling_ae", "modality", "body_part", "series_description", "study_description", "slices",
             "thickness_mm", "expected_instances", "models", "priority"}


@dataclass(frozen=True)
class Pattern:
    """A case-insensitive wildcard pattern (`*`, `?`), `|` separating alternatives; matched against the whole text."""

    text: str
    regex: re.Pattern = field(compare=False, repr=False)

    @classmethod
    def of(cls, text: str) -> Pattern:
        alternatives = [a.strip() for a in text.split("|")]
        parts = ["".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in alt) for alt in alternatives]
        return cls(text, re.compile("^(?:" + "|".join(parts) + ")$", re.IGNORECASE | re.DOTALL))

    def matches(self, value: str) -> bool:
        return bool(self.regex.match((value or "").strip()))


@dataclass(frozen=True)
class RoutingRule:
    name: str
    models: tuple[str, ...]
    priority: int = DEFAULT_PRIORITY
    calling_ae: tuple[str, ...] = ()
    modality: tuple[str, ...] = ()  # upper case
    body_part: tuple[str, ...] = ()  # upper case
    series_description: Pattern | None = None
    study_description: Pattern | None = None
    slices: tuple[int, int] | None = None
    thickness_mm: tuple[float, float] | None = None
    expected_instances: int | None = None


@dataclass(frozen=True)
class PrefetchRule:
    """C-FIND a node every few minutes for new studies (recent, of a modality) and retrieve them."""

    node: str
    every_minutes: float = 15.0
    modality: str = ""
    study_description: Pattern | None = None
    days: int = 0


@dataclass(frozen=True)
class RoutingSettings:
    rules: tuple[RoutingRule, ...] = ()
    quiet_s: float = DEFAULT_QUIET_S
    alert_thresholds: dict[str, float] = field(default_factory=dict)  # model name -> calibrated score
    worklist_at_start: bool = False
    prefetch: tuple[PrefetchRule, ...] = ()
    critical_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model name -> labels (lower case)


def routing_settings(config: SiteConfig) -> RoutingSettings:
    """The routing part of a parsed site configuration; ConfigError names the bad key."""
    return parse_routing(config.triage.get("routing", {}), config.triage.get("alerts", {}),
                         config.triage.get("worklist", {}), nodes=set(config.nodes))


def parse_routing(routing: dict[str, Any], alerts: dict[str, Any] | None = None,
                  worklist: dict[str, Any] | None = None, nodes: set[str] | None = None) -> RoutingSettings:
    _only(routing, "routing.", {"quiet_s", "rules", "prefetch"})
    quiet = routing.get("quiet_s", DEFAULT_QUIET_S)
    if isinstance(quiet, bool) or not isinstance(quiet, (int, float)) or not 0 < quiet <= 3600:
        raise ConfigError("routing.quiet_s", "must be a number of seconds above 0 and at most 3600")
    rules_data = routing.get("rules", [])
    if not isinstance(rules_data, list):
        raise ConfigError("routing.rules", "must be an array of tables ([[routing.rules]])")
    rules = tuple(_rule(item, f"routing.rules[{i}]") for i, item in enumerate(rules_data))
    names = [r.name for r in rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"routing.rules[{i}].name", f"duplicate rule name {name!r}")
    thresholds, critical = {}, {}
    for model, value in (alerts or {}).items():
        key = f"alerts.{model}"
        if not MODEL_SPEC.match(model) or ":" in model:
            raise ConfigError(key, "must be a model name (letters, digits, '.', '_', '-')")
        if isinstance(value, dict):  # [alerts.NAME] threshold = 0.6, critical_labels = ["mass"]
            _only(value, key + ".", {"threshold", "critical_labels"})
            labels = _strings(value, key, "critical_labels")
            if labels:
                critical[model] = tuple(label.lower() for label in labels)
            if "threshold" not in value:
                continue
            key, value = key + ".threshold", value["threshold"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(key, "must be a calibrated score from 0 to 1")
        thresholds[model] = float(value)
    worklist = worklist or {}
    _only(worklist, "worklist.", {"show_at_start"})
    at_start = worklist.get("show_at_start", False)
    if not isinstance(at_start, bool):
        raise ConfigError("worklist.show_at_start", "must be true or false")
    prefetch_data = routing.get("prefetch", [])
    if not isinstance(prefetch_data, list):
        raise ConfigError("routing.prefetch", "must be an array of tables ([[routing.prefetch]])")
    prefetch = tuple(_prefetch(item, f"routing.prefetch[{i}]", nodes or set()) for i, item in enumerate(prefetch_data))
    return RoutingSettings(rules, float(quiet), thresholds, at_start, prefetch, critical)


def _prefetch(item: Any, key: str, nodes: set[str]) -> PrefetchRule:
    if not isinstance(item, dict):
        raise ConfigError(key, "must be a table")
    _only(item, key + ".", {"node", "every_minutes", "modality", "study_description", "days"})
    node = item.get("node")
    if not isinstance(node, str) or node not in nodes:
        raise ConfigError(f"{key}.node", f"must name a configured PACS node (known: {', '.join(sorted(nodes)) or 'none configured'})")
    every = item.get("every_minutes", 15)
    if isinstance(every, bool) or not isinstance(every, (int, float)) or not 0.1 <= every <= 1440:
        raise ConfigError(f"{key}.every_minutes", "must be a number of minutes from 0.1 to 1440")
    modality = item.get("modality", "")
    if not isinstance(modality, str) or not re.match(r"^[A-Za-z]{0,16}$", modality):
        raise ConfigError(f"{key}.modality", "must be a modality code such as CT")
    days = item.get("days", 0)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 365:
        raise ConfigError(f"{key}.days", "must be an integer from 0 (today) to 365")
    return PrefetchRule(node, float(every), modality.upper(), _pattern(item, key, "study_description"), days)


def _rule(item: Any, key: str) -> RoutingRule:
    if not isinstance(item, dict):
        raise ConfigError(key, "must be a table")
    _only(item, key + ".", RULE_KEYS)
    name = item.get("name")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
        raise ConfigError(f"{key}.name", "required: letters, digits, '.', '_' and '-' (1-64 characters)")
    models = _strings(item, key, "models")
    if not models:
        raise ConfigError(f"{key}.models", "required: at least one model (NAME or NAME:VERSION)")
    for model in models:
        if not MODEL_SPEC.match(model):
            raise ConfigError(f"{key}.models", f"{model!r} is not NAME or NAME:VERSION")
    priority = item.get("priority", DEFAULT_PRIORITY)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise ConfigError(f"{key}.priority", "must be an integer from 0 (lowest) to 9 (highest)")
    calling = _strings(item, key, "calling_ae")
    for aet in calling:
        if not AE_TITLE.match(aet):
            raise ConfigError(f"{key}.calling_ae", f"{aet!r} is not an AE title (1-16 printable characters)")
    expected = item.get("expected_instances")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int) or not 1 <= expected <= 100_000):
        raise ConfigError(f"{key}.expected_instances", "must be an integer from 1 to 100000")
    return RoutingRule(
        name=name, models=tuple(models), priority=priority, calling_ae=tuple(calling),
        modality=tuple(m.upper() for m in _strings(item, key, "modality")),
        body_part=tuple(b.upper() for b in _strings(item, key, "body_part")),
        series_description=_pattern(item, key, "series_description"),
        study_description=_pattern(item, key, "study_description"),
        slices=_range(item, key, "slices", integer=True), thickness_mm=_range(item, key, "thickness_mm"),
        expected_instances=expected)


def _strings(item: dict, key: str, name: str) -> list[str]:
    value = item.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{key}.{name}", "must be a string or a list of non-empty strings")
    return [v.strip() for v in value]


def _pattern(item: dict, key: str, name: str) -> Pattern | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise ConfigError(f"{key}.{name}", "must be a non-empty pattern of at most 256 characters (* ? and |)")
    return Pattern.of(value)


def _range(item: dict, key: str, name: str, integer: bool = False):
    value = item.get(name)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if (not isinstance(value, list) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, kinds) or v < 0 for v in value) or value[0] > value[1]):
        what = "integers" if integer else "numbers"
        raise ConfigError(f"{key}.{name}", f"must be [min, max]: two {what} >= 0, min <= max")
    return (int(value[0]), int(value[1])) if integer else (float(value[0]), float(value[1]))


def _only(table: Any, prefix: str, allowed: set[str]) -> None:
    if not isinstance(table, dict):
        raise ConfigError(prefix.rstrip("."), "must be a table")
    for key in table:
        if key not in allowed:
            raise ConfigError(prefix + key, f"unknown setting (expected one of: {', '.join(sorted(allowed))})")
