# mailrelay - the commands the README gives. `make test` works on a fresh machine with python3 and make.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .venv-tools
STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed
SYSTEM_STAMP := .venv/.system-packages
# checkov gets its own environment: it would downgrade SAM CLI's boto3.
CHECKOV := $(TOOLS)/checkov/bin/checkov
# Debian packages the tests use as real peers and clients (chromium drives the mail viewer's tests).
APT_PACKAGES := swaks msmtp postfix libnet-ssleay-perl chromium chromium-driver
# sam build looks for the function runtime's interpreter; pyenv has it on these machines.
SAM_ENV := AWS_DEFAULT_REGION=eu-west-1 SAM_CLI_TELEMETRY=0 PYENV_VERSION=$(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.11' | head -1):$(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.13' | head -1)

.PHONY: help install system-packages tools lint typecheck test unit template-check sam-build run bench soak fuzz clean

help:
	@echo "make run    - start the whole system locally (API, SMTP bridge, delivery, capture server)"
	@echo "make test   - install everything, lint, type-check, run all tests and template checks"
	@echo "make unit   - the pure core on in-memory ports (seconds)"
	@echo "make lint   - ruff + mypy + import contract (lint-imports) + dead code (vulture) + hadolint only"
	@echo "make soak   - the fault-injection ledger over 20,000 messages"
	@echo "make fuzz   - the SMTP session fuzzer, long run (FUZZ_SESSIONS=100000, about 25 minutes), then its summary"
	@echo "make bench  - benchmarks side by side with Postfix (see README, Performance)"

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -e '.[dev]'
	touch $@

install: $(STAMP)

# Real peers for the tests (swaks, msmtp, Postfix's smtp-sink) and the browser the viewer's tests drive; installed when we are root.
$(SYSTEM_STAMP): Makefile | $(STAMP)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: not root, cannot install:$$missing (tests that need them are skipped)"; fi; \
	fi
	touch $@

system-packages: $(SYSTEM_STAMP)

# SAM CLI lives in its own environment: its pins must not decide ours.
$(TOOLS_STAMP):
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -qq --upgrade pip
	$(TOOLS)/bin/pip install -qq aws-sam-cli
	touch $@

tools: $(TOOLS_STAMP) $(CHECKOV)

$(CHECKOV):
	$(PY) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install -qq --upgrade pip
	$(TOOLS)/checkov/bin/pip install -qq 'checkov>=3.2,<4'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy functions/api/app.py functions/deliver/app.py functions/events/app.py functions/webhooks/app.py functions/feedback/app.py
	$(BIN)/lint-imports
	$(BIN)/vulture
	$(BIN)/hadolint smtp_bridge/Dockerfile

typecheck: lint

template-check: $(STAMP) $(TOOLS_STAMP) $(CHECKOV)
	$(BIN)/cfn-lint template.yaml
	$(SAM_ENV) $(TOOLS)/bin/sam validate --lint --template template.yaml
	BC_SKIP_MAPPING=TRUE $(CHECKOV) -f template.yaml --framework cloudformation --skip-download --compact --quiet
	$(MAKE) sam-build

sam-build: $(TOOLS_STAMP)
	$(SAM_ENV) $(TOOLS)/bin/sam build --template template.yaml --build-dir .aws-sam/build >/tmp/mailrelay-sam-build.log 2>&1 \
	  || { cat /tmp/mailrelay-sam-build.log; exit 1; }
	@tail -n 3 /tmp/mailrelay-sam-build.log

# The pure core on in-memory ports: no moto, no sockets, a second or so.
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: $(STAMP) $(SYSTEM_STAMP) lint template-check
	$(BIN)/pytest -q

run: $(STAMP)
	$(BIN)/mailrelay run

# Fault-injection ledger over 20,000 messages (hours on 2 cores with webhooks); `make test` runs 400.
soak: $(STAMP) $(SYSTEM_STAMP)
	MAILRELAY_LEDGER_SOAK=1 $(BIN)/pytest -q -s tests/reliability

# Stateful SMTP session fuzzer, long run: FUZZ_SESSIONS random sessions (new seed each run unless FUZZ_SEED),
# FUZZ_CONCURRENCY at a time, against the real bridge; prints sessions, commands and findings. `make test`
# runs the same grammar as a derandomised hypothesis state machine.
FUZZ_SESSIONS ?= 100000
FUZZ_CONCURRENCY ?= 24
fuzz: $(STAMP)
	MAILRELAY_FUZZ_SESSIONS=$(FUZZ_SESSIONS) MAILRELAY_FUZZ_CONCURRENCY=$(FUZZ_CONCURRENCY) MAILRELAY_FUZZ_SEED=$(FUZZ_SEED) \
	  HYPOTHESIS_PROFILE=soak $(BIN)/pytest -q -s -p no:cacheprovider -p no:logging tests/bridge/test_session_fuzz.py -k long_fuzz_run

# Throughput, latency, cold start and memory against Postfix and bare baselines (several minutes).
bench: $(STAMP) $(SYSTEM_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .mypy_cache .ruff_cache .pytest_cache
