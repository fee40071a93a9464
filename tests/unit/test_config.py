"""Settings: layering of sources, one-line errors naming the setting, README in sync."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings, settings_fields

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_then_file_then_environment(tmp_path):
    file = tmp_path / "scim.toml"
    file.write_text('LDAP_POOL_SIZE = 3\nLDAP_BASE_DN = "dc=file,dc=org"\n')
    settings = load_settings({"LDAP_BASE_DN": "dc=env,dc=org"}, file)
    assert settings.LDAP_POOL_SIZE == 3
    assert settings.LDAP_BASE_DN == "dc=env,dc=org"
    assert settings.LDAP_TIMEOUT == 5.0
    assert load_settings({"SCIM_CONFIG_FILE": str(file)}).LDAP_POOL_SIZE == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LDAP_URL": "nonsense"}, "LDAP_URL: expected ldap://, ldaps:// or ldapi:// URL"),
        ({"LDAP_URL": "http://x"}, "LDAP_URL: expected ldap://"),
        ({"LDAP_URL": "ldap://h:99999"}, "LDAP_URL: bad port"),
        ({"LDAP_POOL_SIZE": "many"}, "LDAP_POOL_SIZE: expected a whole number"),
        ({"LDAP_POOL_SIZE": "0"}, "LDAP_POOL_SIZE: must be greater than 0"),
        ({"LDAP_TIMEOUT": "soon"}, "LDAP_TIMEOUT: expected a number of seconds"),
        ({"LDAP_START_TLS": "maybe"}, "LDAP_START_TLS: expected true or false"),
        ({"LDAP_BASE_DN": "example.org"}, "LDAP_BASE_DN: expected a DN"),
        ({"LDAP_CA_FILE": "/no/such/ca.pem"}, "LDAP_CA_FILE: no such file"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL: expected one of"),
        ({"LDAP_URL": "ldaps://h", "LDAP_START_TLS": "true"}, "LDAP_START_TLS: cannot"),
        ({"SCIM_PUBLIC_URL": "https://scim.example.com/scim/v2"},
         "SCIM_PUBLIC_URL: give the service's base URL without /scim/v2"),
        ({"SCIM_PUBLIC_URL": "scim.example.com"}, "SCIM_PUBLIC_URL: expected an http://"),
        ({"SCIM_PUBLIC_URL": "https://x.example/?a=1"}, "SCIM_PUBLIC_URL: expected a URL"),
    ],
)
def test_bad_values_name_the_setting(env, message):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("env", "url"), [
    ({"BIND": "127.0.0.1:8011"}, "http://127.0.0.1:8011"),
    ({"BIND": "0.0.0.0:8443"}, "http://127.0.0.1:8443"),
    ({"BIND": "[::1]:9000"}, "http://[::1]:9000"),
    ({"PORT": "5000"}, "http://127.0.0.1:5000"),
    ({"BIND": "unix:/run/scim.sock"}, "http://127.0.0.1:8000"),
    ({}, "http://127.0.0.1:8000"),
    ({"BIND": "127.0.0.1:8011", "SCIM_PUBLIC_URL": "https://scim.example.com/"},
     "https://scim.example.com"),
])
def test_the_public_url_follows_bind_unless_it_is_set(env, url):
    assert load_settings(env).SCIM_PUBLIC_URL == url


def test_unknown_key_in_file_is_refused(tmp_path):
    file = tmp_path / "scim.toml"
    file.write_text("LDAP_PORT = 1\n")
    with pytest.raises(ConfigError, match="LDAP_PORT: unknown setting"):
        load_settings({}, file)


def test_app_exits_with_one_line_on_a_bad_setting():
    result = subprocess.run(
        [sys.executable, "-c", "import app"], cwd=ROOT, capture_output=True, text=True,
        env={"LDAP_URL": "nonsense", "PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["configuration error: LDAP_URL: expected ldap://, ldaps:// or ldapi:// "
                     "URL, got 'nonsense'"]


def _shown(default: object) -> str:
    if default in ("", None):
        return "(empty)"
    return f"`{str(default).lower() if isinstance(default, bool) else default}`"


def test_readme_documents_every_setting_with_its_default():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]*?) \|", readme, re.M))
    assert sorted(rows) == sorted(f.name for f in settings_fields()), \
        "README configuration table differs from config/settings.py"
    for f in settings_fields():
        assert rows[f.name] == _shown(f.default), f"{f.name}: README shows {rows[f.name]!r}"
