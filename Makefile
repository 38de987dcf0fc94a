# chainpipe — `make demo` runs the seed walkthrough on a fresh SQLite file; `make test` runs the tests;
# `make test-fast` runs the unit and service tests on SQLite without the slow ones (the edit loop).
# The tests run in TEST_WORKERS processes (pytest-xdist), three for every two CPUs by default: half of
# the suite's time is spent waiting (servers starting, outbox polls), not computing, and each process
# pays the collection again (measured here on 2 CPUs: 220 s with 3, 239 s with 4, 287 s with 2);
# `make test TEST_WORKERS=0` runs them in this one process.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(((n * 3 + 1) / 2)))
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

.PHONY: install demo test test-fast test-sqlite fuzz bench bench-smoke lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv || true
	if test -x $(BIN)/uv; then \
	  $(BIN)/uv pip install -q -p $(BIN)/python --compile-bytecode -e '.[dev]'; \
	else \
	  $(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'; \
	fi
	# uv compiles the dependencies only; the project's own bytecode saves every cold `pipe` start
	# its compile (PYTHONDONTWRITEBYTECODE would otherwise keep it from ever being written).
	$(BIN)/python -m compileall -q core cli bot gh
	touch $(STAMP)

install: $(STAMP)

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: install
	$(PYTEST) -q --durations=10

test-fast: install
	env -u PIPE_TEST_DATABASE_URL $(PYTEST) -q -m "not slow" tests/unit tests/service

# 10,000 random invocations of the CLI and 10,000 API bodies (random seed); `make test` runs a
# bounded, fixed-seed share of the same properties.
fuzz: install
	PIPE_FUZZ_PROFILE=deep PIPE_FUZZ_EXAMPLES=$${PIPE_FUZZ_EXAMPLES:-10000} $(BIN)/python -m pytest -q -m fuzz tests/fuzz

test-sqlite: install
	env -u PIPE_TEST_DATABASE_URL $(PYTEST)

# `make bench` measures on SQLite and, when PIPE_TEST_DATABASE_URL (or PIPE_BENCH_DATABASE_URL) is set,
# PostgreSQL: in process, then `pipe create` as a whole process and a loaded pipe-server, and ends with
# the Targets table (each speed target: holds, does not hold, or not measured and why). BENCH_ARGS
# passes options: --no-cli-start, --no-server, --no-web, --no-postgres; `--write` also rewrites the
# results and the server section in BENCHMARKS.md. `make bench-smoke` runs all of it small (CI).
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-smoke: install
	$(BIN)/python -m bench.run --smoke $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo .pytest_cache

# `make image` builds the pipe-server image with podman on a Debian base made here once
# (docs/deploy.md); `make image-test` builds it and starts the server from it (tests/e2e/test_image.py).
.PHONY: image image-test
image:
	bash scripts/image.sh build

image-test: install
	bash scripts/image.sh base
	CHAINPIPE_IMAGE_TEST=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/test_image.py

# `make bench-server` loads a local pipe-server (SQLite, and PostgreSQL when PIPE_TEST_DATABASE_URL or
# PIPE_BENCH_DATABASE_URL is set): API writes/s and CPU per request, Slack ack latency beside /healthz;
# `make bench-server BENCH_ARGS="--workers 2 --write"` also rewrites "## Server" in BENCHMARKS.md.
.PHONY: bench-server
bench-server: install
	$(BIN)/python -m bench.server $(BENCH_ARGS)
