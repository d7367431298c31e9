# Everything starts from a machine with only python3: the venv is made on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# ADOT's layer pins its own OpenTelemetry SDK: it gets a venv of its own, used by
# the coexistence tests (run through it by awslambdaric) and the benchmarks.
ADOT_VENV := .venv-adot
ADOT_STAMP := $(ADOT_VENV)/.installed
# aioboto3's aiobotocore pins an older botocore than the main venv's boto3: the
# async AWS client tests run their function on a venv of its own.
AIO_VENV := .venv-aio
AIO_STAMP := $(AIO_VENV)/.installed

.PHONY: demo test test-pythons lint typecheck docs unit bench fuzz clean example-package

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# compat mode: a plain path entry, like a regular install; the default editable
	# finder adds import-hook work that would distort the cold-start benchmarks.
	$(BIN)/python -m pip install --quiet -e '.[local,dev,otel]' --config-settings editable_mode=compat
	touch $(STAMP)

$(ADOT_STAMP): requirements/adot.txt
	test -x $(ADOT_VENV)/bin/python || $(PYTHON) -m venv $(ADOT_VENV)
	$(ADOT_VENV)/bin/python -m pip install --quiet -r requirements/adot.txt
	touch $(ADOT_STAMP)

$(AIO_STAMP): requirements/aio.txt
	test -x $(AIO_VENV)/bin/python || $(PYTHON) -m venv $(AIO_VENV)
	$(AIO_VENV)/bin/python -m pip install --quiet -r requirements/aio.txt
	touch $(AIO_STAMP)

## demo: run the example functions in the local Lambda runtime and show their traces
##       (make demo BACKEND=otel for the OpenTelemetry backend)
BACKEND ?= xray
demo: $(STAMP)
	$(BIN)/tracing demo --backend $(BACKEND)

## test: lint, type-check, build the docs (strict) and run the whole test suite (the
##       docs' code blocks included)
test: lint typecheck docs $(ADOT_STAMP) $(AIO_STAMP)
	$(BIN)/python -m pytest -q

## docs: build the documentation site into out/site, strict (broken links fail)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

## test-pythons: the unit and contract suites and one awslambdaric test under every
##               Python 3.10-3.14 found here (PATH, then pyenv); lists the versions skipped
test-pythons:
	$(PYTHON) tests/run_pythons.py

lint: $(STAMP)
	$(BIN)/ruff check tracing tests examples benchmarks
	$(BIN)/ruff format --check tracing tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## fuzz: longer fuzzing than make test: 5,000 generated programs compared across the
##       backends (tests/contract/test_differential.py), 3,000 generated sets of OTel
##       spans compared with OpenTelemetry's own OTLP encoder
##       (tests/unit/test_otlp_differential.py), 10x the atheris inputs and the
##       OTLP size fuzzing (tests/unit/test_otlp.py, tests/functional/test_otlp_export.py)
fuzz: $(STAMP)
	TRACING_DIFFERENTIAL_EXAMPLES=5000 TRACING_OTLP_DIFFERENTIAL_EXAMPLES=3000 \
	TRACING_FUZZ_SCALE=10 $(BIN)/python -m pytest -q \
		tests/contract/test_differential.py tests/fuzz tests/unit/test_otlp_differential.py \
		tests/unit/test_otlp.py tests/functional/test_otlp_export.py

## bench: performance figures against the anchors (not part of make test)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

## example-package: build examples/build/orders_{api,worker,notifier} for `sam deploy` (Linux x86_64, Python 3.12)
example-package: $(STAMP)
	rm -rf examples/build && mkdir -p examples/build/wheels
	$(BIN)/python -m pip wheel --quiet --no-deps -w examples/build/wheels .
	for fn in orders_api orders_worker orders_notifier; do \
		$(BIN)/python -m pip install --quiet --target examples/build/$$fn \
			--platform manylinux2014_x86_64 --python-version 3.12 --only-binary=:all: \
			examples/build/wheels/*.whl && \
		cp examples/$$fn/app.py examples/build/$$fn/ || exit 1; \
	done

clean:
	rm -rf $(VENV) .venv-adot .venv-aio .venv-pythons .mypy_cache .ruff_cache .pytest_cache
