"""Which rule a complete series falls under, and, when none, why not (the worklist row says it)."""

from __future__ import annotations

from dataclasses import dataclass

from workstation.routing.rules import RoutingRule


@dataclass(frozen=True)
class SeriesFacts:
    """What routing looks at: the sender and the series' own header values (read from its first instance)."""

    calling_ae: str = ""
    modality: str = ""
    body_part: str = ""
    series_description: str = ""
    study_description: str = ""
    slices: int = 0
    thickness_mm: float | None = None


@dataclass(frozen=True)
class Route:
    """The outcome of matching: the rule (None when no rule matched) and, when none, each rule's reason."""

    rule: RoutingRule | None
    reasons: tuple[str, ...] = ()

    @property
    def why_not(self) -> str:
        if not self.reasons:
            return "no routing rule is configured"
        return "no routing rule matches: " + "; ".join(self.reasons)


def mismatch(rule: RoutingRule, facts: SeriesFacts, check_count: bool = True) -> str | None:
    """None when the rule applies, else the first condition the series fails, in words (`check_count` False:
    while the series still arrives, its slice count is not known yet)."""
    if rule.calling_ae and facts.calling_ae.strip() not in rule.calling_ae:
        return f"sender {facts.calling_ae.strip() or '(unknown)'} is not {_any(rule.calling_ae)}"
    if rule.modality and facts.modality.strip().upper() not in rule.modality:
        return f"modality {facts.modality.strip() or '(none)'} is not {_any(rule.modality)}"
    if rule.body_part and facts.body_part.strip().upper() not in rule.body_part:
        return f"body part {facts.body_part.strip() or '(none)'} is not {_any(rule.body_part)}"
    if rule.series_description and not rule.series_description.matches(facts.series_description):
        return f"series description does not match {rule.series_description.text!r}"
    if rule.study_description and not rule.study_description.matches(facts.study_description):
        return f"study description does not match {rule.study_description.text!r}"
    if check_count and rule.slices and not rule.slices[0] <= facts.slices <= rule.slices[1]:
        return f"{facts.slices} slices, outside {rule.slices[0]}-{rule.slices[1]}"
    if rule.thickness_mm:
        low, high = rule.thickness_mm
        if facts.thickness_mm is None:
            return "no slice thickness in the header"
        if not low <= facts.thickness_mm <= high:
            return f"slice thickness {facts.thickness_mm:g} mm outside {low:g}-{high:g} mm"
    return None


def route(rules: tuple[RoutingRule, ...] | list[RoutingRule], facts: SeriesFacts) -> Route:
    """The first rule (in file order) that applies; like a firewall, order is the site's way to say precedence."""
    reasons = []
    for rule in rules:
        why = mismatch(rule, facts)
        if why is None:
            return Route(rule)
        reasons.append(f"{rule.name}: {why}")
    return Route(None, tuple(reasons))


def _any(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else "any of " + ", ".join(values)
