# reqprof - developer entry points. `make demo` and `make test` are the two
# commands of the README's quick start; the README's "Development" section
# lists every target.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CORE   := src/reqprof/_core
CC     ?= gcc
PORT   ?= 8000

# Development and CI builds treat compiler warnings as errors (setup.py);
# a user's `pip install` does not.
export REQPROF_WERROR := 1

# The real Pyroscope server tests/test_pyroscope.py pushes to: the shared
# tools next to the checkout unless set (the tests fail under CI without it).
export REQPROF_PYROSCOPE_DIR ?= $(abspath $(CURDIR)/../shared/tools/pyroscope)

# The pure-C parts of the engine (no Python): unit-tested on their own.
C_UNITS   := $(CORE)/buf.c $(CORE)/tree.c $(CORE)/report.c $(CORE)/hist.c $(CORE)/aggregate.c \
             $(CORE)/budget.c $(CORE)/outfiles.c \
             $(wildcard $(CORE)/write_*.c $(CORE)/read_*.c)
C_TESTS   := $(wildcard tests/c/test_*.c)
C_BUILD   := tests/c/build
C_CFLAGS  := -std=c11 -Wall -Wextra -Werror -Wno-missing-field-initializers -D_GNU_SOURCE -g -I$(CORE)
CORE_SRC  := $(wildcard $(CORE)/*.c $(CORE)/*.h)

.PHONY: build build-faults speedscope fuzz soak test test-quick test-c test-js test-py test-portable \
        test-asan test-valgrind test-versions test-install demo bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77'
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.ext: $(VENV)/.installed $(CORE_SRC)
	$(PY) setup.py -q build_ext --inplace
	touch $@

build: $(VENV)/.ext

# The units are compiled once (ASan+UBSan) and linked into each test binary.
C_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
C_OBJS    := $(patsubst $(CORE)/%.c,$(C_BUILD)/obj/%.o,$(C_UNITS))
.SECONDARY: $(C_OBJS)

$(C_BUILD)/obj/%.o: $(CORE)/%.c $(wildcard $(CORE)/*.h)
	@mkdir -p $(C_BUILD)/obj
	$(CC) $(C_CFLAGS) $(C_SAN) -c -o $@ $<

$(C_BUILD)/%: tests/c/%.c $(C_OBJS) $(wildcard $(CORE)/*.h tests/c/*.h)
	@mkdir -p $(C_BUILD)
	$(CC) $(C_CFLAGS) $(C_SAN) -o $@ $< $(C_OBJS) -lm -lz

$(C_BUILD)/plain/%: tests/c/%.c $(C_UNITS) $(wildcard $(CORE)/*.h tests/c/*.h)
	@mkdir -p $(C_BUILD)/plain
	$(CC) $(C_CFLAGS) -O1 -o $@ $< $(C_UNITS) -lm -lz

C_BINS       := $(patsubst tests/c/%.c,$(C_BUILD)/%,$(C_TESTS))
C_PLAIN_BINS := $(patsubst tests/c/%.c,$(C_BUILD)/plain/%,$(C_TESTS))

# C unit tests, built with ASan+UBSan.
test-c: $(C_BINS)
	@set -e; for t in $(C_BINS); do echo "== $$t"; $$t; done

# What the full suite needs besides the venv, prepared once (tests never
# install anything): the extension with fault hooks, speedscope from npm.
TEST_DEPS := build-faults speedscope

test-py: build $(TEST_DEPS)
	$(PY) -m pytest -q tests

# The engine suite again with the public-API fallback forced.
test-portable: build
	REQPROF_PORTABLE=1 $(PY) -m pytest -q tests/test_engine.py tests/test_accuracy.py tests/test_attribution.py

test: test-js test-c test-py test-portable

# The quick tier: C unit tests, the viewer model's tests and the pytest tests
# that need no browser, Go, npm-installed consumer or real server (markers in
# pyproject.toml). Under a minute.
QUICK := not browser and not consumer and not server and not soak
test-quick: test-c test-js build
	$(PY) -m pytest -q -m '$(QUICK)' tests

# sdist and wheel built, the wheel repaired to manylinux, each installed into a
# fresh venv and smoke-tested there (tests/install/smoke.sh; CI runs it).
test-install:
	PYTHON=$(PYTHON) bash tests/install/smoke.sh

# The viewer's model (src/reqprof/viewer/model.js) under Node's test runner.
test-js:
	node --test tests/js/

# The whole suite against an extension built with ASan+UBSan. The build goes
# to build/asan (a copy of the package) so the normal build is left alone.
ASAN_LIB = $(shell $(CC) -print-file-name=libasan.so)
test-asan: build $(TEST_DEPS)
	rm -rf build/asan && mkdir -p build/asan
	cp -r src/reqprof build/asan/reqprof
	find build/asan -name '*.so' -delete
	REQPROF_SANITIZE=1 $(PY) setup.py -q build_ext --build-lib build/asan --build-temp build/asan-tmp --force
	PYTHONPATH=build/asan PYTHONMALLOC=malloc LD_PRELOAD=$(ASAN_LIB) \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  REQPROF_EXPECT_SANITIZED=1 $(PY) -m pytest -q -p no:cacheprovider tests

# Load and soak at full size (a few minutes, loopback only, not under ASan):
# 20,000 profiled requests at concurrency 32 against a mixed FastAPI app, a
# 60-second profiled stream beside a websocket session. `make test` runs
# short versions of the same tests. Figures: test-output/soak.jsonl.
soak: build
	@mkdir -p test-output
	REQPROF_SOAK=1 REQPROF_SOAK_RESULTS=test-output/soak.jsonl \
	  $(PY) -m pytest -q -s -p no:cacheprovider --timeout=1800 tests/test_soak.py

# The engine suites on every other CPython 3.9+ this machine has (pyenv's
# versions): each builds the extension into build/py<version>; where the
# fast path exists (3.12) the suites run again on the public-API path.
# greenlet, trio and anyio are installed for the attribution tests.
OTHER_PYTHONS ?= $(shell for v in 3.9 3.10 3.12 3.13 3.14; do \
    ls -d $$HOME/.pyenv/versions/$$v.*/bin/python3 2>/dev/null | sort -V | tail -1; done)
test-versions:
	@if [ -z "$(strip $(OTHER_PYTHONS))" ]; then echo "test-versions: no CPython besides the default found"; fi
	@set -e; for py in $(OTHER_PYTHONS); do \
	  v=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); d=build/py$$v; \
	  echo "== CPython $$v ($$py)"; \
	  rm -rf $$d && mkdir -p $$d && cp -r src/reqprof $$d/ && find $$d -name '*.so' -delete; \
	  $$py -m venv $$d/venv && $$d/venv/bin/pip install -q pytest pytest-timeout 'setuptools>=77' greenlet trio anyio; \
	  $$d/venv/bin/python setup.py -q build_ext --build-lib $$d --build-temp $$d/tmp --force; \
	  PYTHONPATH=$$d $$d/venv/bin/python -m pytest -q --noconftest -p no:cacheprovider \
	    tests/test_engine.py tests/test_accuracy.py tests/test_attribution.py tests/test_long_calls.py; \
	  if PYTHONPATH=$$d $$d/venv/bin/python -c 'import sys, reqprof._core as c; sys.exit(not c.MODE.startswith("fast"))'; then \
	    echo "== CPython $$v, public-API path"; \
	    REQPROF_PORTABLE=1 PYTHONPATH=$$d $$d/venv/bin/python -m pytest -q --noconftest -p no:cacheprovider \
	      tests/test_engine.py tests/test_accuracy.py tests/test_attribution.py tests/test_long_calls.py; \
	  fi; \
	done

# The extension with fault injection compiled in (REQPROF_FAULT=...), in
# build/faults (a copy of the package): tests put it first on PYTHONPATH.
build/faults/.built: $(VENV)/.installed $(CORE_SRC) setup.py
	rm -rf build/faults && mkdir -p build/faults
	cp -r src/reqprof build/faults/reqprof
	find build/faults -name '*.so' -delete
	REQPROF_FAULTS=1 $(PY) setup.py -q build_ext --build-lib build/faults --build-temp build/faults-tmp --force
	touch $@

build-faults: build/faults/.built

# speedscope's release (the pinned package and lockfile in tests/speedscope),
# whose importer the format tests run in Chromium.
build/speedscope/.installed: tests/speedscope/package.json tests/speedscope/package-lock.json
	rm -rf build/speedscope && mkdir -p build/speedscope
	cp tests/speedscope/package.json tests/speedscope/package-lock.json build/speedscope/
	cd build/speedscope && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

speedscope: build/speedscope/.installed

# The C unit tests under valgrind memcheck (built without sanitizers), then
# a short run of the engine through Python (errors in reqprof's code fail).
test-valgrind: $(C_PLAIN_BINS) build
	@set -e; for t in $(C_PLAIN_BINS); do echo "== valgrind $$t"; \
	  valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite $$t; done
	$(PY) tests/valgrind/check_engine.py

# Coverage-guided fuzzing (libFuzzer, with ASan+UBSan) of the writers and
# the escaping, and of the JSON reader, each seeded from its corpus under
# tests/fuzz and run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
CLANG ?= clang
FUZZ_TARGETS := fuzz_writers fuzz_read_json
build/fuzz/%: tests/fuzz/%.c tests/c/json_check.h $(C_UNITS) $(wildcard $(CORE)/*.h)
	@mkdir -p build/fuzz
	$(CLANG) -g -O1 -std=c11 -D_GNU_SOURCE -I$(CORE) -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $< $(C_UNITS) -lm -lz

fuzz: $(addprefix build/fuzz/,$(FUZZ_TARGETS))
	@mkdir -p build/fuzz/corpus-writers build/fuzz/corpus-json
	build/fuzz/fuzz_writers -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 -artifact_prefix=build/fuzz/ \
	    build/fuzz/corpus-writers tests/fuzz/corpus
	build/fuzz/fuzz_read_json -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -print_final_stats=1 -artifact_prefix=build/fuzz/ \
	    build/fuzz/corpus-json tests/fuzz/corpus-json

demo: build
	$(PY) examples/demo.py --port $(PORT)

# Benchmarks against pyinstrument and cProfile (bench/run.py, under 15 minutes);
# writes bench/RESULTS.md. Bench-only dependencies: bench/requirements.txt and
# Debian's wrk for the HTTP part.
$(VENV)/.bench: $(VENV)/.installed bench/requirements.txt
	$(PY) -m pip install -q -r bench/requirements.txt
	touch $@

bench: build $(VENV)/.bench
	@command -v wrk >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk could not be installed: the HTTP benchmark will say it is not available"
	REQPROF_BENCH_VIA_MAKE=1 $(PY) bench/run.py

clean:
	rm -rf build $(C_BUILD) src/reqprof/*.so *.egg-info src/*.egg-info
