"""Helpers of the trust-boundary tests (test_trust.py, test_consumers.py): the CLI as an
operator runs it, a dashboard browser that keeps its cookie, ldapsearch as a reader."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability.support import Gunicorn, Reply, call

ROOT = Path(__file__).resolve().parents[2]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def flask_cli(env: dict[str, str], *args: str, check: bool = True,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``flask --app app ARGS`` in a subprocess with the service's settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LDAP_", "SCIM_",
                                                                     "ADMIN_"))}
    full.update(env)
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", *args],
                            cwd=ROOT, env=full, capture_output=True, text=True, timeout=60,
                            input=stdin, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"flask {' '.join(args)}: {result.stdout}{result.stderr}")
    return result


def printed(output: str, label: str) -> str:
    """The value after ``label:`` on a line of the CLI's output."""
    found = re.search(rf"^{re.escape(label)}: (\S+)$", output, re.M)
    assert found, f"no {label!r} in {output!r}"
    return found[1]


@dataclass
class Browser:
    """The dashboard through gunicorn, keeping the ``scim_admin`` cookie as a browser."""

    server: Gunicorn
    cookie: str = ""
    pages: list[Reply] = field(default_factory=list)

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                cookie: str | None = None) -> Reply:
        headers = {}
        jar = self.cookie if cookie is None else cookie
        if jar:
            headers["Cookie"] = f"scim_admin={jar}"
        raw = None
        if form is not None:
            raw = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        reply = call(self.server, method, path, token=None, headers=headers, raw=raw)
        found = re.match(r"scim_admin=([^;]*)", reply.headers.get("set-cookie", ""))
        if found and cookie is None:
            self.cookie = found[1]
        return reply

    def csrf(self, path: str) -> str:
        page = self.request("GET", path)
        found = CSRF.search(page.raw.decode())
        assert found, f"{path} has no CSRF token ({page.status})"
        return found[1]

    def sign_in(self, login: str, password: str) -> Reply:
        token = self.csrf("/admin/login")
        return self.request("POST", "/admin/login", {"username": login, "password": password,
                                                     "csrf_token": token})

    def sign_out(self) -> Reply:
        return self.request("POST", "/admin/logout",
                            {"csrf_token": self.csrf("/admin/connector")})


def ldif_entries(text: str) -> dict[str, dict[str, list[str]]]:
    """``ldapsearch -LLL -o ldif-wrap=no`` output → {dn: {attribute (lower): values}}."""
    entries: dict[str, dict[str, list[str]]] = {}
    for block in text.strip().split("\n\n"):
        attrs: dict[str, list[str]] = {}
        dn = None
        for line in block.splitlines():
            name, sep, value = line.partition(": ")
            if not sep:
                continue
            if name == "dn":
                dn = value
            else:
                attrs.setdefault(name.lower(), []).append(value)
        if dn is not None:
            entries[dn] = attrs
    return entries
