# Quick start: `make demo` (onboard a model into the embedded lab) and `make test` (every test).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
LAB_DIR ?= .lab
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(VENV)/collections
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup lab-up lab-down demo test test-unit test-lab test-integration test-molecule gates bench clean

help:
	@echo "make demo      set up, start the lab, onboard a model, print the gateway's completion"
	@echo "make test      every test (unit, lab contracts, modules, molecule, lint, sanity, build)"
	@echo "make bench     scale figures (access 200/1000 accounts, 1 vs 10/50 models, bootstrap 200/1000 users, waits) -> build/bench.json"
	@echo "make setup     create .venv (ansible-core, kubernetes.core, kubectl, test tools)"
	@echo "make lab-up LAB_DIR=dir / make lab-down LAB_DIR=dir   start / stop a lab"

setup:
	@hack/setup.sh

lab-up: setup
	@$(VENV)/bin/python -m maaslab up --dir $(LAB_DIR) $(LAB_ARGS)

lab-down:
	@$(VENV)/bin/python -m maaslab down --dir $(LAB_DIR)

demo: setup
	@hack/demo.sh $(LAB_DIR)

test: setup
	@hack/test.sh

test-unit: setup
	@hack/test.sh unit

test-lab: setup
	@hack/test.sh lab

test-integration: setup
	@hack/test.sh integration

test-molecule: setup
	@hack/test.sh molecule

gates: setup
	@hack/test.sh gates

# Not a test: measures (521 s on an idle 2-core machine, most of it the naive uri loop for 200 accounts).
bench: setup
	@$(VENV)/bin/python hack/bench.py $(BENCH_ARGS)

clean:
	-@[ -d $(LAB_DIR) ] && $(VENV)/bin/python -m maaslab down --dir $(LAB_DIR) || true
	rm -rf $(LAB_DIR) build .pytest_cache tests/output
