# driftstack — the two commands people need: `make demo` and `make test`. `make` (or `make help`) lists every target.
PY := .venv/bin/python
DRIFTSTACK := $(PY) -m driftstack.tools.cli
export DRIFTSTACK_STATE_DIR ?= $(CURDIR)/.state
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.DEFAULT_GOAL := help
.PHONY: help setup test test-unit demo up down status deploy destroy layers bench clean

help:             ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  the CLI: $(DRIFTSTACK) --help  (installed as \`driftstack\`)"

demo: setup       ## the whole loop on this machine: LocalStack, deploy, train, serve, drift, retrain, promote
	$(PY) -m driftstack.tools.demo

setup:            ## install everything (idempotent, quick when up to date)
	@bash scripts/setup.sh

test: setup       ## the full suite: unit + Spark + LocalStack integration (starts/stops its own LocalStack)
	$(PY) -m pytest

test-unit: setup  ## fast tests only (no Spark, no LocalStack)
	$(PY) -m pytest -m "not localstack and not spark"

up: setup         ## start LocalStack on the host and deploy the stack (driftstack up)
	$(DRIFTSTACK) up

deploy: setup     ## (re)deploy the stack to the current target (driftstack deploy)
	$(DRIFTSTACK) deploy

destroy:          ## destroy the deployed stack, its bucket and tables (driftstack destroy)
	$(DRIFTSTACK) destroy --yes

down:             ## stop LocalStack and every process it started (driftstack down)
	-$(DRIFTSTACK) down

status:           ## the deployment at a glance: stack, model, rollout, drift checks, decisions (driftstack status)
	$(DRIFTSTACK) status

layers: setup     ## build the Lambda layers (layers/build.py)
	$(PY) layers/build.py

# The benchmarks that need no LocalStack and finish in about a minute; the others (scripts/bench_*.py:
# datapath, localstack, loop, serving, train) start LocalStack or Spark: run them by hand (see their docstrings).
bench: setup      ## run the quick standalone benchmarks (drift computation, shadow overhead); lists the others
	@for f in scripts/bench_*.py; do printf "  %-28s %s\n" "$$f" "$$(grep -m1 '"""' $$f | sed 's/.*"""//' | cut -c1-90)"; done
	$(PY) scripts/bench_drift.py --no-localstack --repeat 2
	$(PY) scripts/bench_shadow.py

clean: down       ## remove state and build outputs (keeps the virtualenvs)
	rm -rf .state build
