# Both entry points bootstrap themselves: a virtualenv in .venv with the project installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast lint bench lock clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required (set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The two-command demo: the built-in FaceSign sandbox (--sandbox), on loopback, said loudly at start.
run: $(STAMP)
	$(BIN)/facesign-recovery db upgrade
	$(BIN)/facesign-recovery users add demo@example.com --id demo --name "Demo User" --exist-ok
	MAIL_BACKEND=$${MAIL_BACKEND:-file} MAIL_DIR=$${MAIL_DIR:-mail} $(BIN)/facesign-recovery serve --sandbox --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The inner loop: unit tests that need no service, browser or fault injection (under a minute).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m "not postgres and not redis and not browser and not chaos" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Benchmarks (a few minutes; needs Redis and PostgreSQL; uses wrk when installed): bench/results/latest.md
bench: $(STAMP)
	$(BIN)/python -m bench

# The runtime dependencies, pinned with hashes, that the Dockerfile installs (setuptools included: the
# image builds the project without fetching anything unpinned). Run after changing pyproject.toml.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --build-deps-for wheel --no-emit-index-url \
		--no-emit-find-links --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
