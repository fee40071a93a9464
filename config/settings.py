"""Settings of the service.

Each field's metadata carries its documentation; the README's configuration table
is checked against these fields by ``tests/unit/test_config.py``. Values come from
the defaults, then an optional TOML file named by ``SCIM_CONFIG_FILE``, then the
environment (same names). The first invalid value raises ``ConfigError`` whose
message is one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it."""


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class Settings:
    """Validated settings; build with :func:`load_settings`."""

    LDAP_URL: str = field(
        default="ldap://127.0.0.1:3890",
        metadata=_doc(
            "Directory server URL(s): `ldap://`, `ldaps://` or `ldapi://`. Several URLs "
            "separated by spaces or commas are providers in fail-over order: a worker writes "
            "to one until it fails, then to the next (see README, High availability)."
        ),
    )
    LDAP_BIND_DN: str = field(
        default="cn=admin,dc=scimbridge,dc=local",
        metadata=_doc("DN the service binds as."),
    )
    LDAP_BIND_PASSWORD: str = field(default="", metadata=_doc("Password of `LDAP_BIND_DN`."))
    LDAP_BASE_DN: str = field(
        default="dc=scimbridge,dc=local",
        metadata=_doc(
            "Base DN of the default tenant (`ou=People`, `ou=Groups`, `ou=Service` below it)."
        ),
    )
    LDAP_START_TLS: bool = field(
        default=False, metadata=_doc("Upgrade `ldap://` connections with StartTLS.")
    )
    LDAP_CA_FILE: str = field(
        default="", metadata=_doc("PEM file of the CA(s) that sign the directory's certificate.")
    )
    LDAP_TLS_VERIFY: bool = field(
        default=True,
        metadata=_doc("Verify the directory's TLS certificate (turn off only for tests)."),
    )
    LDAP_CONNECT_TIMEOUT: float = field(
        default=2.0, metadata=_doc("Seconds to wait for a TCP connection to the directory.")
    )
    LDAP_TIMEOUT: float = field(
        default=5.0, metadata=_doc("Seconds to wait for any one LDAP operation's answer.")
    )
    LDAP_POOL_SIZE: int = field(
        default=8, metadata=_doc("LDAP connections per worker process.")
    )
    LDAP_POOL_WAIT: float = field(
        default=2.0,
        metadata=_doc(
            "Seconds a request waits for a free LDAP connection before it is answered 503."
        ),
    )
    LDAP_PPOLICY_LOCK: bool = field(
        default=True,
        metadata=_doc(
            "Lock disabled users with ppolicy's `pwdAccountLockedTime` (needs the ppolicy "
            "overlay with `pwdLockout: TRUE`)."
        ),
    )
    LDAP_PASSWORD_SCHEME: str = field(
        default="SSHA512",
        metadata=_doc(
            "How SCIM passwords are hashed before they are stored: `SSHA512` (needs "
            "OpenLDAP's pw-sha2 module) or `SSHA`."
        ),
    )
    SCIM_BEARER_TOKEN: str = field(
        default="",
        metadata=_doc(
            "Static bearer token for the default tenant (simplest deployments). Empty: "
            "only managed tokens are accepted."
        ),
    )
    SCIM_PUBLIC_URL: str = field(
        default="http://127.0.0.1:8000",
        metadata=_doc(
            "Public base URL of the service (what Entra reaches), without `/scim/v2`; the "
            "CLI and the dashboard show `<SCIM_PUBLIC_URL>/scim/v2` as the endpoint to "
            "paste. Unset: `http://<BIND>` when `BIND` is set (`0.0.0.0` shown as "
            "`127.0.0.1`)."
        ),
    )
    SCIM_TOKEN_CACHE_SECONDS: int = field(
        default=30,
        metadata=_doc(
            "Seconds a worker trusts a verified managed token before asking the directory "
            "again; a revoked token stops working within this time."
        ),
    )
    SCIM_OAUTH_TOKEN_SECONDS: int = field(
        default=3600, metadata=_doc("Lifetime of OAuth access tokens from `/oauth/token`.")
    )
    SCIM_AUTH_FAILURES_PER_MINUTE: int = field(
        default=10,
        metadata=_doc(
            "Failed authentications one client address may make per minute (per worker) "
            "before it is answered 429."
        ),
    )
    SCIM_TRUSTED_PROXIES: int = field(
        default=0,
        metadata=_doc(
            "Reverse proxies in front of the service whose `X-Forwarded-For`, `-Proto`, "
            "`-Host` and `-Port` are trusted (werkzeug's ProxyFix): the limiter and the logs "
            "see the real client, and `Location`/`meta.location` the public `https://` URL. "
            "Set 1 behind nginx; keep 0 when clients reach the service directly."
        ),
    )
    SCIM_MAPPING_FILE: str = field(
        default="",
        metadata=_doc("TOML file replacing the default SCIM to LDAP attribute mapping."),
    )
    SCIM_MAX_PAGE_SIZE: int = field(
        default=1000, metadata=_doc("Largest `count` a list request may return.")
    )
    SCIM_MAX_FILTER_LENGTH: int = field(
        default=4096, metadata=_doc("Longest accepted filter, in characters.")
    )
    SCIM_MAX_FILTER_DEPTH: int = field(
        default=32,
        metadata=_doc("Deepest nesting of parentheses, `not (…)` and `[…]` in a filter."),
    )
    SCIM_MAX_FILTER_CLAUSES: int = field(
        default=256, metadata=_doc("Most comparisons (`attr op value`, `attr pr`) in a filter.")
    )
    SCIM_MAX_OPERATIONS: int = field(
        default=1000, metadata=_doc("Most operations in one PATCH request; each key of a "
                                    "path-less operation's value counts as one.")
    )
    SCIM_MAX_MEMBERS_PER_PATCH: int = field(
        default=10000, metadata=_doc("Most member values in one PATCH request.")
    )
    SCIM_MAX_BODY_BYTES: int = field(
        default=4 * 1024 * 1024, metadata=_doc("Largest accepted request body, in bytes.")
    )
    SCIM_RETRY_AFTER: int = field(
        default=5,
        metadata=_doc("`Retry-After` seconds sent with 503 when the directory is unavailable."),
    )
    LOG_LEVEL: str = field(default="INFO", metadata=_doc("Log level (DEBUG, INFO, WARNING…)."))
    METRICS_TOKEN: str = field(
        default="",
        metadata=_doc(
            "Bearer token Prometheus must send to scrape `/metrics`. Empty: `/metrics` is "
            "off (404)."
        ),
    )
    AUDIT_LOG: str = field(
        default="",
        metadata=_doc(
            "File the audit trail of SCIM changes is appended to, one JSON object a line. "
            "Empty: standard output."
        ),
    )
    ADMIN_BASE_DN: str = field(
        default="",
        metadata=_doc(
            "Where the admin dashboard's accounts live (`flask --app app admin create`); "
            "sign-in looks only here. Empty: `ou=Admins,ou=Service,<LDAP_BASE_DN>`. Must lie "
            "outside every tenant's `ou=People` and `ou=Groups`."
        ),
    )
    ADMIN_GROUP_DN: str = field(
        default="",
        metadata=_doc(
            "Optional group (`groupOfNames`) an admin must also be a `member` of to sign "
            "in. Empty: every account under the admin base may. Must lie outside every "
            "tenant's `ou=People` and `ou=Groups`."
        ),
    )
    ADMIN_SECRET_KEY: str = field(
        default="",
        metadata=_doc(
            "Key that signs the admin dashboard's session cookie. Empty: a random key per "
            "process, so sessions do not survive a restart or span workers."
        ),
    )
    ADMIN_COOKIE_SECURE: bool = field(
        default=True,
        metadata=_doc(
            "Send the admin session cookie over HTTPS only (turn off only for plain-HTTP "
            "local runs)."
        ),
    )
    ADMIN_IDLE_MINUTES: int = field(
        default=15,
        metadata=_doc("Minutes without a request after which an admin session is signed out."),
    )

    @property
    def ldap_urls(self) -> list[str]:
        """The directory URLs in fail-over order."""
        return [u for u in self.LDAP_URL.replace(",", " ").split() if u]

    @property
    def admin_base_dn(self) -> str:
        """Where dashboard admins live (``ADMIN_BASE_DN`` or its default)."""
        return self.ADMIN_BASE_DN or f"ou=Admins,ou=Service,{self.LDAP_BASE_DN}"

    def admin_dns(self) -> dict[str, str]:
        """The dashboard's trust anchors by setting name: they must stay outside every
        tenant's ``ou=People``/``ou=Groups`` (checked at start and at ``tenant create``)."""
        dns = {"ADMIN_BASE_DN": self.admin_base_dn}
        if self.ADMIN_GROUP_DN:
            dns["ADMIN_GROUP_DN"] = self.ADMIN_GROUP_DN
        return dns


def settings_fields() -> list[dataclasses.Field[Any]]:
    """The settings in declaration order (used by docs and the README check)."""
    return list(dataclasses.fields(Settings))


def _check_urls(value: str) -> str:
    urls = [u for u in value.replace(",", " ").split() if u]
    if not urls:
        raise ValueError("expected at least one ldap://, ldaps:// or ldapi:// URL")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("ldap", "ldaps", "ldapi") or not parts.netloc:
            raise ValueError(f"expected ldap://, ldaps:// or ldapi:// URL, got {url!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError(f"bad port in {url!r}") from None
    return value


def _check_dn(value: str) -> str:
    rdns = [r for r in value.split(",") if r.strip()]
    if not rdns or any("=" not in r for r in rdns):
        raise ValueError(f"expected a DN like dc=example,dc=org, got {value!r}")
    return value


def _check_choice(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.upper() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value.upper()

    return check


def _check_optional_dn(value: str) -> str:
    return _check_dn(value) if value else value


def _check_public_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"expected a URL without ?query or #fragment, got {value!r}")
    if parts.path.rstrip("/").lower().endswith("/scim/v2"):
        raise ValueError(f"give the service's base URL without /scim/v2 (the endpoint is "
                         f"<SCIM_PUBLIC_URL>/scim/v2), got {value!r}")
    return value.strip().rstrip("/")


def public_url_from_bind(bind: str) -> str | None:
    """``http://host:port`` for gunicorn's ``BIND`` (``0.0.0.0``/``::`` → loopback), or
    None when it names no TCP address (``unix:…``)."""
    bind = bind.strip().split()[0] if bind.strip() else ""
    if not bind or bind.startswith(("unix:", "fd://")):
        return None
    host, _, port = bind.rpartition(":")
    if not port.isdigit():
        return None
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def _check_file(value: str) -> str:
    if value and not Path(value).is_file():
        raise ValueError(f"no such file: {value!r}")
    return value


_CHECKS: dict[str, Callable[[str], str]] = {
    "LDAP_URL": _check_urls,
    "LDAP_BIND_DN": _check_dn,
    "LDAP_BASE_DN": _check_dn,
    "ADMIN_GROUP_DN": _check_optional_dn,
    "ADMIN_BASE_DN": _check_optional_dn,
    "LDAP_CA_FILE": _check_file,
    "SCIM_MAPPING_FILE": _check_file,
    "SCIM_PUBLIC_URL": _check_public_url,
    "LDAP_PASSWORD_SCHEME": _check_choice("SSHA512", "SSHA"),
    "LOG_LEVEL": _check_choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
}
_POSITIVE = {
    "ADMIN_IDLE_MINUTES",
    "SCIM_TOKEN_CACHE_SECONDS", "SCIM_OAUTH_TOKEN_SECONDS", "SCIM_AUTH_FAILURES_PER_MINUTE",
    "LDAP_CONNECT_TIMEOUT", "LDAP_TIMEOUT", "LDAP_POOL_SIZE", "LDAP_POOL_WAIT",
    "SCIM_MAX_PAGE_SIZE", "SCIM_MAX_FILTER_LENGTH", "SCIM_MAX_FILTER_DEPTH",
    "SCIM_MAX_FILTER_CLAUSES", "SCIM_MAX_OPERATIONS",
    "SCIM_MAX_MEMBERS_PER_PATCH", "SCIM_MAX_BODY_BYTES", "SCIM_RETRY_AFTER",
}


def _convert(name: str, kind: Any, raw: Any) -> Any:
    if kind in (bool, "bool"):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind in (int, "int"):
        if isinstance(raw, bool):
            raise ValueError(f"expected a whole number, got {raw!r}")
        try:
            value: Any = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
    elif kind in (float, "float"):
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {raw!r}") from None
    else:
        value = str(raw)
    if name in _POSITIVE and value <= 0:
        raise ValueError(f"must be greater than 0, got {raw!r}")
    if name == "SCIM_TRUSTED_PROXIES" and value < 0:
        raise ValueError(f"must be 0 or more, got {raw!r}")
    check = _CHECKS.get(name)
    return check(value) if check else value


def _plain_dn(dn: str) -> str:
    """A DN of the settings compared loosely: lower case, no spaces around , and =."""
    return ",".join("=".join(p.strip() for p in rdn.split("=", 1))
                    for rdn in dn.lower().split(","))


def _check_admin_outside_tenant(settings: Settings) -> None:
    """The admin base and group may not lie in (or hold) the default tenant's People or
    Groups, where a SCIM token could create an admin or join the group. Managed tenants
    are checked when they are created (``tenant create``) and by ``admin create``."""
    for name, dn in settings.admin_dns().items():
        for ou in ("People", "Groups"):
            area = f"ou={ou},{settings.LDAP_BASE_DN}"
            inner, outer = _plain_dn(dn), _plain_dn(area)
            if inner == outer or inner.endswith("," + outer) or outer.endswith("," + inner):
                where = "contains" if outer.endswith("," + inner) else "lies inside"
                raise ConfigError(
                    f"{name}: {dn} {where} {area}, which SCIM clients manage; put it outside "
                    f"every tenant's ou=People and ou=Groups, e.g. under "
                    f"ou=Service,{settings.LDAP_BASE_DN} (or leave {name} empty for the "
                    f"default; see the README's upgrade notes)")


def load_settings(
    environ: Mapping[str, str] | None = None, file: str | Path | None = None
) -> Settings:
    """Build settings from defaults < TOML ``file`` (or ``$SCIM_CONFIG_FILE``) < ``environ``."""
    env = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {}
    path = file if file is not None else env.get("SCIM_CONFIG_FILE")
    if path:
        try:
            with open(path, "rb") as handle:
                raw.update(tomllib.load(handle))
        except OSError as exc:
            raise ConfigError(
                f"SCIM_CONFIG_FILE: cannot read {str(path)!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"SCIM_CONFIG_FILE: {str(path)!r} is not valid TOML: {exc}") from None
    names = {f.name for f in settings_fields()}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting in {str(path)!r}")
    raw.update({k: v for k, v in env.items() if k in names})
    bind = env.get("BIND") or (f"0.0.0.0:{env['PORT']}" if env.get("PORT") else "")
    if not raw.get("SCIM_PUBLIC_URL") and bind:
        derived = public_url_from_bind(bind)
        if derived:
            raw["SCIM_PUBLIC_URL"] = derived
    values: dict[str, Any] = {}
    for f in settings_fields():
        if f.name not in raw:
            continue
        try:
            values[f.name] = _convert(f.name, f.type, raw[f.name])
        except ValueError as exc:
            raise ConfigError(f"{f.name}: {exc}") from None
    settings = Settings(**values)
    _check_admin_outside_tenant(settings)
    if settings.LDAP_START_TLS and any(u.startswith("ldaps:") for u in settings.ldap_urls):
        raise ConfigError("LDAP_START_TLS: cannot be combined with an ldaps:// LDAP_URL")
    return settings
