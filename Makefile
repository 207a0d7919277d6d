# hub-operator — every command sets up what it needs (venv, broker package, control-plane binaries).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help venv devenv test unit integration system-test system-test-ci bench crds demo demo-down clean

help:
	@echo "make demo         local control plane + broker + operator + dispatchers, a message end to end"
	@echo "make test         the whole test suite (unit + integration) against real components"
	@echo "make system-test  security matrix, fault injection and scale (slower)"
	@echo "make system-test-ci  what CI runs of them: all but the broker-fault streams and the scale runs"
	@echo "make bench        throughput and latency benchmarks (ratios against the broker's own ceiling)"
	@echo "make crds         regenerate crds/ and the chart's CRDs and RBAC rules from the code"
	@echo "make demo-down    stop what make demo started"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# Installs rabbitmq-server if missing, builds/caches etcd + kube-apiserver + kube-controller-manager, unpacks
# kubectl + helm: done before pytest so that a first build never eats into a test's timeout.
devenv: venv
	$(PY) -m hub_devenv prepare

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: devenv
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test: devenv
	$(PY) -m pytest tests/unit tests/integration $(PYTEST_ARGS)

system-test: devenv
	$(PY) -m pytest tests/system $(PYTEST_ARGS)

# What CI runs of tests/system (see .ci/run): all but the broker faults and the scale runs.
SYSTEM_TESTS_CI := tests/system/test_security_matrix.py tests/system/test_batch_validation.py \
	tests/system/test_faults_ordering.py tests/system/test_faults_dispatcher.py \
	tests/system/test_faults_operator.py tests/system/test_faults_apiserver.py

system-test-ci: devenv
	$(PY) -m pytest $(SYSTEM_TESTS_CI) $(PYTEST_ARGS)

bench: devenv
	$(PY) -m pytest tests/bench -s $(PYTEST_ARGS)

crds: venv
	$(PY) -m hub_operator.api.crdgen --output crds/ --docs docs/reference/crds.md
	$(PY) -m hub_operator.chartgen --chart charts/hub-operator

demo: devenv
	$(PY) -m hub_devenv demo

demo-down: venv
	$(PY) -m hub_devenv down

clean:
	rm -rf $(VENV) .cache .pytest_cache
