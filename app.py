"""WSGI entry point: ``gunicorn app:app``. A bad setting stops start-up with one line."""

import sys

from config import ConfigError
from directory import MappingError
from scim.factory import create_app

try:
    app = create_app()
except (ConfigError, MappingError) as exc:
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
