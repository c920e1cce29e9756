# The two commands a new user needs (see README): `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages the test suite uses: promtool (Prometheus rule checks), Chromium (the dashboard's
# browser test), shellcheck (container scripts). Installed when missing and apt-get is usable; tests skip otherwise.
SYSTEM_TOOLS := promtool chromium shellcheck
SYSTEM_PACKAGES := prometheus chromium shellcheck

# Test files run in this many processes (integration tests mostly wait on worker processes; one file
# stays in one process, so its module fixtures are shared as written). Tests marked `alone` (kill -9
# and restarts under a timed stream) run afterwards, one at a time, as they always did.
TEST_PROCESSES ?= 2
PARALLEL := -n $(TEST_PROCESSES) --dist loadfile

.PHONY: install system-deps demo test test-fast lint bench bench-gpu clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/streamvision demo

system-deps:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing $(SYSTEM_PACKAGES) (missing:$$missing)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); \
		else echo "note: missing$$missing (install Debian packages $(SYSTEM_PACKAGES)); those tests will skip"; fi; \
	fi

test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q -ra $(PARALLEL) -m "not alone"
	$(BIN)/pytest -q -ra -m alone

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow" $(PARALLEL)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/streamvision bench -- --out bench-results/cpu.json

# On a machine with an NVIDIA GPU: the CUDA tests, the decode candidates (nvJPEG among them) and CLIP
# ViT-B/32 in fp16 with one and with four worker processes; JSON in bench-results/ (~10 min on an H100).
GPU_BENCH := --family clip --batch-sizes 64 --device cuda --precision fp16 --no-naive
bench-gpu: $(STAMP)
	$(BIN)/pytest -q -m gpu tests/unit/inference
	$(BIN)/python -m bench.decode --out bench-results/decode-gpu.json
	$(BIN)/streamvision bench --decode-threads 6 -- $(GPU_BENCH) --out bench-results/gpu-clip.json
	$(BIN)/streamvision bench --decode-threads 3 -- $(GPU_BENCH) --workers 4 --out bench-results/gpu-clip-4-workers.json

clean:
	rm -rf .streamvision bench-results test-artifacts
