# The README's two commands are `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint venv clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

run: venv
	scripts/serve

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var build *.egg-info
