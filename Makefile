# The two commands a newcomer needs (README):  make demo   and   make test
# Both create .venv and install what is needed; a second run skips the install (a stamp per pyproject).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing dropfit and its dependencies into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-warn-conflicts -e ".[cpu,cloud,gpu,dev,api]" 2>&1 | grep -v "is ignored" || true
	@# hy3dgen without its demo app's dependencies (pyproject's tool.dropfit, docs/gpu.md); torchvision for the tests
	@# only, outside the venv
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --no-deps \
	  $$($(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['tool']['dropfit']['install-without-deps'])") \
	  2>&1 | grep -v "is ignored" || true
	@test -f .cache/torchvision/torchvision/__init__.py || $(BIN)/python -m pip install --quiet --disable-pip-version-check \
	  --no-deps --target .cache/torchvision torchvision==0.28.0 2>&1 | grep -v "is ignored" || true
	@$(BIN)/python -c "import functions.cli, fastapi, uvicorn, sse_starlette, python_multipart, moto, pytest, torch, mediapipe, dlib, anny, modal, diffusers, insightface, peft, xatlas, hy3dgen" || { echo "install failed"; exit 1; }
	@echo "building the CPU models' one-time cache in .cache/ (about a minute the first time) ..."
	@$(BIN)/dropfit models prepare --quiet || { echo "model preparation failed"; exit 1; }
	@# the glTF validator (tests) and the result page's 3D viewer (docs/result-page.md), pinned, from npm
	@command -v npm >/dev/null || { echo "npm not found: the glTF validator tests will skip, result pages get no 3D viewer"; \
	  exit 0; }; \
	{ npm ls --prefix .cache/npm gltf-validator@2.0.0-dev.3.10 && npm ls --prefix .cache/npm @google/model-viewer@4.4.0; } \
	  >/dev/null 2>&1 || \
	npm install --prefix .cache/npm --no-audit --no-fund --silent gltf-validator@2.0.0-dev.3.10 @google/model-viewer@4.4.0
	@# Debian's chromium for the result page's browser test (Playwright drives it; no browser download)
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; } \
	  >/dev/null 2>&1; } || echo "chromium not installed (needs root and apt-get): the page's browser test will skip"; }
	@touch $(STAMP)

demo: setup
	$(BIN)/dropfit demo

test: setup
	$(BIN)/ruff check functions pipeline events infra tests bench modal_deploy.py
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench.spine
	$(BIN)/python -m bench.phases
	$(BIN)/python -m bench.job

lint: setup
	$(BIN)/ruff check functions pipeline events infra tests bench modal_deploy.py
	$(BIN)/mypy

clean:
	rm -rf $(VENV) dropfit-demo dropfit-bucket bench/out
