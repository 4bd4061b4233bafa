# The two commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ES_PORT ?= 9200
export ES_PORT

.PHONY: demo test i18n venv dev-deps system-deps es-up es-down es-cluster-up es-cluster-down lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e . --config-settings editable_mode=compat

# editable_mode=compat: pySigma finds plugins by scanning the sigma.pipelines namespace, which only
# works when the project folder is on sys.path (sigma/pipelines/ztsoc publishes our pipelines).
dev-deps: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat

# Debian packages the tests use: a JDK and Maven for Elasticsearch, tshark for the
# deep-dissection engine, Chromium for the browser tests, iproute2 for namespaces.
system-deps:
	@bash scripts/system-deps.sh

demo: venv
	$(BIN)/soc demo

# The interface's catalogs (locales/, see locales/__init__.py): extract the marked messages,
# merge them into every language's .po, compile the .mo (a missing .mo is compiled in memory).
i18n: dev-deps
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output -w 110 -k N_ -k ngettext:1,2 \
	  --project ztsoc -o locales/ztsoc.pot .
	$(BIN)/python -m soc_cli.i18n locales/ztsoc.pot
	$(BIN)/pybabel update -D ztsoc -i locales/ztsoc.pot -d locales --no-fuzzy-matching --ignore-obsolete -w 110
	$(BIN)/pybabel compile -D ztsoc -d locales --statistics

es-up:
	@bash scripts/es.sh up

es-down:
	@bash scripts/es.sh down

# A 3-node cluster on loopback (HTTP 9250-9252, 256m heaps) for the failover test; that test
# starts and stops its own when SOC_TEST_ES_CLUSTER_URL does not name a running one.
es-cluster-up:
	@bash scripts/es-cluster.sh up
	@echo "SOC_TEST_ES_CLUSTER_URL=$$(bash scripts/es-cluster.sh url)"

es-cluster-down:
	@bash scripts/es-cluster.sh down

# Starts a node if none answers, runs every test against both stores, stops the node it started.
test: system-deps dev-deps
	@started=0; \
	if ! curl -fsS -m 2 http://127.0.0.1:$(ES_PORT)/_cluster/health >/dev/null 2>&1; then \
	  bash scripts/es.sh up || exit 1; started=1; fi; \
	SOC_TEST_ES_URL=http://127.0.0.1:$(ES_PORT) $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then bash scripts/es.sh down; fi; \
	exit $$rc

lint: dev-deps
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every fuzz harness (tests/fuzz) for FUZZ_SECONDS each; crashes land in tests/fuzz/regressions/.
FUZZ_SECONDS ?= 120
fuzz: dev-deps
	$(BIN)/python -m tests.fuzz --all $(FUZZ_SECONDS)

bench: dev-deps
	$(BIN)/python -m bench

clean:
	rm -rf build $(VENV) .pytest_cache .mypy_cache .ruff_cache
