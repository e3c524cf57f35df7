# The two commands of the README: `make run` (one round on the default SQLite store; a settings
# file with `make run CONFIG=FILE`) and `make test` (the whole suite). Each sets itself up:
# virtualenv, install of the exact versions in requirements.lock, and — when run as root — the
# system packages the lab tests need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock
CONFIG ?=

.PHONY: run test lint bench lock system-deps clean

# PIP_CONSTRAINT pins the build backend (setuptools, wheel) in pip's isolated build too.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(abspath $(LOCK)) $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Re-resolve every dependency (all extras, the build backend) to the newest versions the ranges
# in pyproject.toml allow, for every platform, and write them to requirements.lock.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	printf 'setuptools>=68\nwheel\n' | $(BIN)/uv pip compile pyproject.toml - --all-extras --universal \
	  --python-version 3.11 --upgrade --quiet -o $(LOCK)

# Root (CI) installs what the tests need from Debian when missing: iproute2 and iptables for the
# lab, the PostgreSQL server for the storage tests on the second backend, sqlite3 for checks,
# chromium (headless) for the dashboard's browser tests, wireguard-go and openvpn for the VPN
# tests against the real implementations.
system-deps:
	@if [ "$$(id -u)" = "0" ]; then \
	  missing=""; \
	  command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	  command -v iptables >/dev/null 2>&1 || missing="$$missing iptables"; \
	  command -v sqlite3 >/dev/null 2>&1 || missing="$$missing sqlite3"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  command -v chromium >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	  command -v wireguard-go >/dev/null 2>&1 || missing="$$missing wireguard-go wireguard-tools"; \
	  command -v openvpn >/dev/null 2>&1 || missing="$$missing openvpn"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

run: $(STAMP)
	$(BIN)/probe run --once$(if $(CONFIG), --config $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check probe measurements tests bench
	$(BIN)/mypy

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
