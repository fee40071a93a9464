# The README's two commands are `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint venv clean typecheck

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

run: venv
	scripts/serve

# Every test runs: a missing slapd, nginx or Chromium is installed (as root) or named in
# one line (scripts/test-prerequisites), and CI=1 turns any skip for one into a failure.
test: venv
	scripts/test-prerequisites
	$(VENV)/bin/ruff check .
	CI=$${CI:-1} $(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .

# mypy reads its file list and settings from pyproject.toml
typecheck: venv
	$(VENV)/bin/mypy

# The private slapd runs from var/slapd: stop it before its files go (else it keeps
# serving deleted files and the next `make run` cannot start one on its port).
clean:
	@if [ -d var/slapd ]; then scripts/slapd stop --dir var/slapd || { \
	    echo "make clean: could not stop the private slapd (scripts/slapd stop --dir" \
	         "var/slapd); var/ kept" >&2; exit 1; }; fi
	rm -rf $(VENV) var build *.egg-info
