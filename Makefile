# korth-bench: every target creates the virtual environment and installs the project first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tests that start Ray run in a loopback-only network namespace when we are root and can make one,
# so they bind 127.0.0.1 and prove the suite needs no network.
NETNS := $(shell if [ "$$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then echo yes; fi)
ISOLATE = $(if $(NETNS),unshare -n sh -c 'ip link set lo up 2>/dev/null || true; exec "$$0" "$$@"',)
PYTEST_ENV = RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
# The real CIFAR-10 file is found by one rule: $KORTH_CIFAR10_PARQUET, else data/cifar10-jpeg.parquet
# (git-ignored; a link to a copy elsewhere will do). Tests that need it are skipped without it.
export KORTH_CIFAR10_PARQUET ?= data/cifar10-jpeg.parquet

.PHONY: install test test-reliability demo bench mutation chromium clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PYTEST_ENV) $(ISOLATE) $(PY) -m pytest -q -x --durations=15 tests

# Failure injection races real processes: one try, no re-run. Its waits are for conditions (a
# file, a port, a node count) with generous timeouts, never fixed sleeps.
test-reliability: $(STAMP)
	$(PYTEST_ENV) $(ISOLATE) $(PY) -m pytest -q -m reliability --durations=0 tests

demo: $(STAMP)
	$(PYTEST_ENV) $(ISOLATE) $(VENV)/bin/korth-bench run search_spaces/smoke.yaml
	$(VENV)/bin/korth-bench report results/smoke --out results/smoke/report

bench: $(STAMP)
	$(PYTEST_ENV) $(ISOLATE) $(PY) benchmarks/run_all.py

# Mutation testing (docs/mutation.md), not part of `make test`: mutmut over the modules whose errors
# change a verdict or a number, each against the tests that cover it, one mutant at a time (about
# an hour on 2 cores). MUTATION=measures (any groups of benchmarks/mutation.py) runs only those.
MUTATION ?=
mutation: $(STAMP)
	$(PY) -c 'import mutmut' 2>/dev/null || $(PY) -m pip install -q -e '.[test,mutation]'
	$(PYTEST_ENV) $(PY) benchmarks/mutation.py $(MUTATION)

# Debian's Chromium renders the HTML leaderboard in the report test (skipped where absent).
chromium:
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

clean-venv:
	rm -rf $(VENV)
