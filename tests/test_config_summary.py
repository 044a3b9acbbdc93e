"""Configuration changes that matter to triage and report delivery are audited like the rest of the site file."""

from __future__ import annotations

from workstation.core.site import parse_site_config
from workstation.services.session import config_change, config_summary


def test_a_raised_alert_threshold_and_a_new_ris_are_configuration_changes():
    base = parse_site_config({})
    raised = parse_site_config({"alerts": {"nodule-detector": {"threshold": 0.8}}})
    with_ris = parse_site_config({"ris": {"host": "ris.example", "port": 2575}})
    assert "triage" not in config_summary(base) and "delivery" not in config_summary(base)  # older digests unchanged
    assert config_summary(raised)["triage"] == {"alerts": {"nodule-detector": {"threshold": 0.8}}}
    assert config_summary(with_ris)["delivery"]["ris"] == ["ris.example", 2575, False]
    assert config_summary(raised) != config_summary(parse_site_config({"alerts": {"nodule-detector": {"threshold": 0.9}}}))
    last = {"config_sha256": config_change({"config_sha256": "x"}, config_summary(base))["config_sha256"]}
    assert config_change(last, config_summary(base)) == {}
    assert config_change(last, config_summary(raised))["summary"]["triage"]
