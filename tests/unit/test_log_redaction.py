"""scim.logs.redact: secret query parameters, headers and credentials never reach a log
line, whatever field of the JSON line they are in; everything else is left as it was."""

from __future__ import annotations

import json
import logging

import pytest

from scim.logs import JsonFormatter, redact

SECRET = "s3cr3t-VALUE_0123456789"


@pytest.mark.parametrize("text", [
    f"/scim/v2/Users?access_token={SECRET}",
    f"count=1&ACCESS_TOKEN={SECRET}&x=2",
    f"client_id=abc&client_secret={SECRET}",
    f"grant_type=password&password={SECRET}",
    f"code={SECRET}&state=1",
    f"token={SECRET}",
    f"client_secret%3D{SECRET}",
    f"Authorization: Bearer {SECRET}",
    f'"authorization": "Basic {SECRET}"',
    f"Cookie: scim_admin={SECRET}",
    f"sent Bearer {SECRET} to the API",
    f"{{'Authorization': 'Bearer {SECRET}'}}",
])
def test_secrets_are_replaced(text):
    out = redact(text)
    assert SECRET not in out and "[redacted]" in out


@pytest.mark.parametrize("text", [
    "GET /scim/v2/Users?filter=userName%20eq%20%22ada%22&count=10",
    "admin sign-in from 10.0.0.1: uid=ops,ou=Admins,ou=Service,dc=x",
    "mytoken=1&notpassword=2",
    "",
])
def test_other_text_is_left_alone(text):
    assert redact(text) == text


def test_every_field_of_a_line_is_redacted():
    formatter = JsonFormatter()
    access = logging.LogRecord("gunicorn.access", logging.INFO, "x", 1, "%(h)s", None, None)
    access.args = {"h": "127.0.0.1", "m": "GET", "U": "/scim/v2/Users", "s": "401", "B": "0",
                   "q": f"access_token={SECRET}&count=1", "D": "1500",
                   "{x-request-id}o": "r1", "{x-forwarded-for}i": "-", "a": f"Bearer {SECRET}"}
    line = json.loads(formatter.format(access))
    assert line["query"] == "access_token=[redacted]&count=1"
    assert SECRET not in json.dumps(line)
    app = logging.LogRecord("scim.api", logging.WARNING, "x", 1, "refused %s", (
        f"POST /oauth/token?client_secret={SECRET}",), None)
    app.headers = {"Authorization": f"Bearer {SECRET}"}
    assert SECRET not in formatter.format(app)
