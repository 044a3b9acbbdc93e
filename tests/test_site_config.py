"""Site configuration: parsed, validated with the key named, found where IT puts it."""

from __future__ import annotations

import pytest

from workstation.core.site import ConfigError, SiteConfig, parse_site_config
from workstation.services.config import ENV_VAR, load_site_config

GOOD = """
[workstation]
ae_title = "WS-RAD-01"
store_port = 11113
bind_address = "127.0.0.1"

[cache]
max_size_gb = 2.5

[pacs.MAIN]
ae_title = "ORTHANC"
host = "pacs.hospital.example"
port = 4242
retrieve = "get"
timeout_s = 15

[pacs.SECURE]
ae_title = "PACS2"
host = "10.0.0.9"
port = 2762
[pacs.SECURE.tls]
ca_file = "/etc/ssl/hospital-ca.pem"
cert_file = "/etc/workstation/client.pem"
key_file = "/etc/workstation/client.key"
"""


def test_a_complete_file(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(GOOD)
    config = load_site_config(path)
    assert (config.local.ae_title, config.local.store_port, config.local.bind_address) == ("WS-RAD-01", 11113, "127.0.0.1")
    assert config.cache.max_bytes == int(2.5 * 1024**3)
    main = config.node("MAIN")
    assert (main.ae_title, main.host, main.port, main.retrieve, main.timeout, main.tls) == (
        "ORTHANC", "pacs.hospital.example", 4242, "get", 15.0, None)
    secure = config.node("SECURE")
    assert secure.tls.ca_file == "/etc/ssl/hospital-ca.pem" and secure.tls.verify is True
    assert secure.retrieve == "move" and secure.retries == 2
    assert config.review.auto_advance is True  # the default: after A / R the next pending finding is selected
    assert parse_site_config({"review": {"auto_advance": False}}).review.auto_advance is False
    assert (config.results.node, config.results.send) == (None, "manual")
    results = parse_site_config({"pacs": {"MAIN": {"ae_title": "A", "host": "h", "port": 104}},
                                 "results": {"node": "MAIN", "send": "on-signoff"}}).results
    assert (results.node, results.send) == ("MAIN", "on-signoff")


@pytest.mark.parametrize("bad, key, words", [
    ({"pacs": {"MAIN": {"ae_title": "X", "host": "h", "port": 70000}}}, "pacs.MAIN.port", "1 to 65535"),
    ({"pacs": {"MAIN": {"ae_title": "X", "host": "h", "port": "104"}}}, "pacs.MAIN.port", "integer"),
    ({"pacs": {"MAIN": {"host": "h", "port": 104}}}, "pacs.MAIN.ae_title", "missing"),
    ({"pacs": {"MAIN": {"ae_title": "A" * 17, "host": "h", "port": 104}}}, "pacs.MAIN.ae_title", "1-16"),
    ({"pacs": {"MAIN": {"ae_title": "A\\B", "host": "h", "port": 104}}}, "pacs.MAIN.ae_title", "backslash"),
    ({"pacs": {"MAIN": {"ae_title": "A", "host": "", "port": 104}}}, "pacs.MAIN.host", "non-empty"),
    ({"pacs": {"MAIN": {"ae_title": "A", "host": "h", "port": 104, "retrieve": "push"}}}, "pacs.MAIN.retrieve", "move, get"),
    ({"pacs": {"MAIN": {"ae_title": "A", "host": "h", "port": 104, "tls": {"cert_file": "c"}}}}, "pacs.MAIN.tls.cert_file", "go together"),
    ({"pacs": {"MAIN": {"ae_title": "A", "host": "h", "port": 104, "tls": {"verify": "no"}}}}, "pacs.MAIN.tls.verify", "true or false"),
    ({"pacs": {"MAIN": {"ae_title": "A", "host": "h", "port": 104, "colour": "red"}}}, "pacs.MAIN.colour", "unknown setting"),
    ({"pacs": {"bad name": {"ae_title": "A", "host": "h", "port": 104}}}, "pacs.bad name", "letters"),
    ({"workstation": {"store_port": 0}}, "workstation.store_port", "port"),
    ({"cache": {"max_size_gb": -1}}, "cache.max_size_gb", "positive"),
    ({"pac": {}}, "pac", "unknown setting"),
    ({"review": {"auto_advance": "yes"}}, "review.auto_advance", "true or false"),
    ({"review": {"advance": True}}, "review.advance", "unknown setting"),
    ({"results": {"node": "NOPE"}}, "results.node", "no such PACS node"),
    ({"results": {"send": "always"}}, "results.send", "manual, on-signoff"),
    ({"results": {"send": "on-signoff"}}, "results.send", "needs results.node"),
])
def test_invalid_values_name_the_key(bad, key, words):
    with pytest.raises(ConfigError) as failure:
        parse_site_config(bad)
    assert failure.value.key == key and words in failure.value.reason


def test_file_problems_name_the_file(tmp_path):
    broken = tmp_path / "site.toml"
    broken.write_text("[pacs.MAIN\nhost = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_site_config(broken)
    with pytest.raises(ConfigError, match="not found"):
        load_site_config(tmp_path / "missing.toml")
    broken.write_text('[pacs.MAIN]\nae_title = "A"\nhost = "h"\nport = 0\n')
    with pytest.raises(ConfigError) as failure:
        load_site_config(broken)
    assert str(broken) in failure.value.key and failure.value.key.endswith("pacs.MAIN.port")


def test_environment_variable_and_option(tmp_path, monkeypatch):
    from_env, from_option = tmp_path / "env.toml", tmp_path / "opt.toml"
    from_env.write_text('[workstation]\nae_title = "FROMENV"\n')
    from_option.write_text('[workstation]\nae_title = "FROMOPT"\n')
    monkeypatch.setenv(ENV_VAR, str(from_env))
    assert load_site_config().local.ae_title == "FROMENV"
    assert load_site_config(from_option).local.ae_title == "FROMOPT"


def test_no_file_means_defaults_without_nodes(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "none-either"))
    config = load_site_config()
    assert config == SiteConfig() and config.nodes == {}
    with pytest.raises(ConfigError, match="no such PACS node"):
        config.node("MAIN")


def test_the_central_server_table(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('[server]\nurl = "https://audit.hospital.example:8443/"\nca_file = "/etc/ssl/hospital-ca.pem"\n'
                    'batch_size = 50\ninterval_s = 10\nmax_backoff_s = 120.5\n')
    server = load_site_config(path).server
    assert (server.url, server.ca_file, server.verify, server.batch_size, server.interval_s, server.max_backoff_s) == (
        "https://audit.hospital.example:8443", "/etc/ssl/hospital-ca.pem", True, 50, 10.0, 120.5)
    assert server.configured
    defaults = parse_site_config({}).server
    assert not defaults.configured and (defaults.verify, defaults.batch_size, defaults.interval_s, defaults.max_backoff_s) == (
        True, 500, 30.0, 300.0)
    assert parse_site_config({"server": {"url": "http://127.0.0.1:8000", "verify": False}}).server.verify is False


@pytest.mark.parametrize("bad, key, words", [
    ({"url": "ftp://audit.example"}, "server.url", "http:// or https://"),
    ({"url": "audit.example"}, "server.url", "http:// or https://"),
    ({"url": "https://"}, "server.url", "http:// or https://"),
    ({"url": "https://user:pw@audit.example"}, "server.url", "http:// or https://"),
    ({"url": ""}, "server.url", "non-empty"),
    ({"url": 8443}, "server.url", "non-empty"),
    ({"verify": "yes"}, "server.verify", "true or false"),
    ({"ca_file": ""}, "server.ca_file", "non-empty"),
    ({"batch_size": 0}, "server.batch_size", "1 to 500"),
    ({"batch_size": 501}, "server.batch_size", "1 to 500"),
    ({"batch_size": 2.5}, "server.batch_size", "integer"),
    ({"batch_size": True}, "server.batch_size", "integer"),
    ({"interval_s": 0}, "server.interval_s", "seconds"),
    ({"interval_s": "30"}, "server.interval_s", "seconds"),
    ({"max_backoff_s": -5}, "server.max_backoff_s", "seconds"),
    ({"max_backoff_s": 0.5}, "server.max_backoff_s", "at least 1"),
    ({"token": "secret"}, "server.token", "unknown setting"),
])
def test_invalid_server_values_name_the_key(bad, key, words):
    with pytest.raises(ConfigError) as failure:
        parse_site_config({"server": bad})
    assert failure.value.key == key and words in failure.value.reason


def test_server_must_be_a_table():
    with pytest.raises(ConfigError) as failure:
        parse_site_config({"server": "https://audit.example"})
    assert failure.value.key == "server" and "table" in failure.value.reason


def test_the_whole_site_check_needs_only_the_standard_library():
    """The offline installer runs `check_site_data` from the bundle's wheel under the system Python, before any
    package is installed: routing rules, alert thresholds and [deid] are checked there too, with no numpy, pydicom or
    platformdirs (python -S: no site-packages at all)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1])\n"
        "from workstation.core.site import ConfigError\n"
        "from workstation.services.site_check import check_site_data\n"
        "site = {'pacs': {'MAIN': {'ae_title': 'PACS', 'host': 'pacs', 'port': 104}},\n"
        "        'routing': {'rules': [{'name': 'ct', 'modality': 'CT', 'models': ['nodule-detector'],\n"
        "                               'slices': 'many'}]}}\n"
        "try:\n    check_site_data(site)\nexcept ConfigError as exc:\n    print(json.dumps([exc.key, exc.reason]))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'pydicom', 'platformdirs'))))\n"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(repo)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    refusal, third_party = done.stdout.splitlines()
    assert refusal.startswith('["routing.rules[0].'), refusal
    assert third_party == "[]"
