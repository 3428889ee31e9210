# driftstack — the two commands people need: `make demo` and `make test`.
PY := .venv/bin/python
export DRIFTSTACK_STATE_DIR ?= $(CURDIR)/.state
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: setup test test-unit demo up down status deploy destroy layers bench clean

demo: setup       ## the whole loop on this machine: LocalStack, deploy, train, serve, drift, retrain, promote
	$(PY) -m driftstack.tools.demo

setup:            ## install everything (idempotent, quick when up to date)
	@bash scripts/setup.sh

test: setup       ## the full suite: unit + Spark + LocalStack integration (starts/stops its own LocalStack)
	$(PY) -m pytest

test-unit: setup  ## fast tests only (no Spark, no LocalStack)
	$(PY) -m pytest -m "not localstack and not spark"

up: setup         ## start LocalStack on the host and deploy the stack
	$(PY) -m driftstack.tools.localstack_host start
	$(PY) -m driftstack.tools.deploy deploy

deploy: setup
	$(PY) -m driftstack.tools.deploy deploy

down:             ## stop LocalStack and every process it started
	-$(PY) -m driftstack.tools.localstack_host stop

status:
	$(PY) -m driftstack.tools.localstack_host status

layers: setup
	$(PY) layers/build.py

clean: down       ## remove state and build outputs (keeps the virtualenvs)
	rm -rf .state build
