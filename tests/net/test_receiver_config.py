"""The receiver's site keys ([workstation] limits and [workstation.tls]) are validated with the key and the reason."""

from __future__ import annotations

import pytest

from workstation.core.site import ConfigError, InboundTls, parse_site_config
from workstation.net.errors import PacsError
from workstation.net.receiver import StoreReceiver


def local(**workstation):
    return parse_site_config({"workstation": workstation}).local


def test_defaults_and_values():
    defaults = local()
    assert (defaults.tls, defaults.artim_timeout_s, defaults.idle_timeout_s, defaults.association_timeout_s) == (None, 10, 60, 3600)
    assert (defaults.max_associations, defaults.max_associations_per_host) == (16, 4)
    chosen = local(artim_timeout_s=2.5, max_associations=32, max_associations_per_host=1,
                   tls={"cert_file": "r.pem", "key_file": "r.key", "ca_file": "ca.pem", "require_client_cert": True})
    assert chosen.artim_timeout_s == 2.5 and chosen.max_associations == 32 and chosen.max_associations_per_host == 1
    assert chosen.tls == InboundTls("r.pem", "r.key", "ca.pem", True)


@pytest.mark.parametrize("settings, key, reason", [
    ({"artim_timeout_s": 0}, "workstation.artim_timeout_s", "above 0"),
    ({"association_timeout_s": "long"}, "workstation.association_timeout_s", "seconds"),
    ({"max_associations": 0}, "workstation.max_associations", "from 1 to 256"),
    ({"max_associations_per_host": True}, "workstation.max_associations_per_host", "integer"),
    ({"tls": "yes"}, "workstation.tls", "must be a table"),
    ({"tls": {"cert_file": "r.pem"}}, "workstation.tls.key_file", "missing"),
    ({"tls": {"cert_file": "r.pem", "key_file": "r.key", "verify": False}}, "workstation.tls.verify", "unknown setting"),
    ({"tls": {"cert_file": "r.pem", "key_file": "r.key", "require_client_cert": True}},
     "workstation.tls.require_client_cert", "needs ca_file"),
])
def test_bad_values_name_the_key(settings, key, reason):
    with pytest.raises(ConfigError) as raised:
        local(**settings)
    assert raised.value.key == key and reason in raised.value.reason


def test_unreadable_certificate_is_a_clear_error(tmp_path):
    settings = local(tls={"cert_file": str(tmp_path / "missing.pem"), "key_file": str(tmp_path / "missing.key")})
    with pytest.raises(PacsError, match="workstation.tls: cannot load the receiver's certificate"):
        StoreReceiver(settings, handler=None)


def test_receiver_security_settings_are_in_the_audited_configuration_summary():
    from workstation.core.site import SiteConfig
    from workstation.services.session import config_summary

    assert config_summary(SiteConfig())["workstation"] == {"id": None, "ae_title": "WORKSTATION", "store_port": 11112}
    summary = config_summary(parse_site_config({"workstation": {
        "max_associations_per_host": 2, "tls": {"cert_file": "r.pem", "key_file": "r.key", "ca_file": "ca.pem"}}}))
    assert summary["workstation"]["max_associations_per_host"] == 2
    assert summary["workstation"]["tls"] == ["r.pem", "ca.pem", False]  # switching TLS off is a config.change
