# Hibiki — every target installs what it needs: a fresh machine with Python 3.11 is enough.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
RUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
PROTO_OUT := libs/contracts/src
API_DOCS := docs/api
PROTO_FILES = $(shell find proto -name '*.proto' | sort)

.PHONY: help install run test test-unit test-integration lint proto proto-check k8s-check obs-check browser sip-phone sip-proxy asyncapi-schema audit clean bench soak

help:
	@echo "make run    start broker, databases, the services, simulators and the SIP gateway (Ctrl-C stops all)"
	@echo "make test   run the whole suite: unit tests and integration tests (real broker, real PostgreSQL)"
	@echo "make lint   ruff, mypy, buf lint and buf breaking"
	@echo "make proto  regenerate Python code, the API reference and the AsyncAPI document (docs/api/) from proto/"
	@echo "make k8s-check  render deploy/k8s overlays and validate them offline (also part of make test)"
	@echo "make obs-check  promtool checks and rule tests, dashboard checks (also part of make test)"
	@echo "make bench  measure each pipeline against the raw broker limit (BENCH_ARGS=--quick: under 2 min)"
	@echo "make soak   10,000 hostile records per input topic at the running consumers; DLQ reasons counted"
	@echo "make clean  remove virtualenvs, caches and local data"

$(UV):
	@echo "==> installing uv $(UV_VERSION) into $(TOOLS)/"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml tools/*/pyproject.toml services/*/pyproject.toml)
	@echo "==> syncing locked dependencies into $(VENV)/"
	@$(UV) sync --locked --all-packages --quiet
	@touch $@

install: $(VENV)/.synced

proto: install
	@rm -rf $(PROTO_OUT)/hibiki $(PROTO_OUT)/buf
	@mkdir -p $(PROTO_OUT)
	@$(RUN) python -m grpc_tools.protoc -I proto \
		--python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
		--mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) $(PROTO_FILES)
	@find $(PROTO_OUT)/hibiki $(PROTO_OUT)/buf -type d -exec touch {}/__init__.py \;
	@touch $(PROTO_OUT)/hibiki/py.typed $(PROTO_OUT)/buf/py.typed
	@echo "==> generated code in $(PROTO_OUT)/hibiki and $(PROTO_OUT)/buf"
	@$(RUN) python -m hibiki_runtime.contract_docs write proto $(API_DOCS)

proto-check: install
	@$(RUN) python -m hibiki_runtime.contracts_check proto $(PROTO_OUT)
	@$(RUN) python -m hibiki_runtime.contract_docs check proto $(API_DOCS)

run: install
	@$(RUN) hibiki-dev run

test: install proto-check asyncapi-schema browser sip-phone sip-proxy
	@$(RUN) pytest -p no:cacheprovider --basetemp="$$(mktemp -d /tmp/hibiki-test.XXXXXX)" libs tools services tests

test-unit: install
	@$(RUN) pytest -p no:cacheprovider -m "not integration" libs tools services

test-integration: install browser sip-phone
	@$(RUN) pytest -p no:cacheprovider tests/integration

lint: install
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy libs/runtime/src tools/devstack/src tools/telephony-sim/src tools/bench/src tools/cli/src services/*/src/*/domain
	@$(RUN) buf lint proto
	@if git rev-parse --verify --quiet HEAD~1:proto >/dev/null; then \
		$(RUN) buf breaking proto --against '.git#ref=HEAD~1,subdir=proto'; \
	else echo "buf breaking: no earlier commit with proto/, nothing to compare"; fi
	@$(MAKE) --no-print-directory audit

# pip-audit of the locked dependencies. AUDIT=strict also fails on packages the index cannot look up;
# AUDIT=off skips it when working offline (an audit that could not run fails rather than looking green).
AUDIT ?= on
audit: install
	@if [ "$(AUDIT)" = off ]; then echo "pip-audit: skipped (AUDIT=off)"; exit 0; fi; \
	$(UV) export --locked --all-packages --all-groups --no-emit-workspace --format requirements-txt --quiet --output-file $(VENV)/audit-requirements.txt && \
	$(RUN) pip-audit --disable-pip --require-hashes --progress-spinner off $(if $(filter strict,$(AUDIT)),--strict) -r $(VENV)/audit-requirements.txt

k8s-check: install sip-proxy
	@command -v kubectl >/dev/null || { echo "k8s-check needs kubectl (Debian package kubectl, kustomize built in)"; exit 1; }
	@$(RUN) pytest -p no:cacheprovider -q tests/deploy

browser:
	@scripts/install-browser.sh

sip-phone:
	@scripts/install-sip-phone.sh

sip-proxy:
	@scripts/install-kamailio.sh

asyncapi-schema:
	@scripts/install-asyncapi-schema.sh

obs-check: install
	@deploy/observability/check.sh
	@$(RUN) pytest -p no:cacheprovider -q tests/observability

bench: install
	@$(RUN) hibiki-bench $(BENCH_ARGS)

soak: install
	@$(RUN) hibiki-soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
