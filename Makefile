# Two entry points for a fresh clone: `make run` and `make test`.
#
# Development and CI install from uv.lock, so a fresh clone gets the same packages on any
# day; `make lock` moves the lock on purpose, and `make test-latest` runs the suite on the
# newest releases to show drift before a lock refresh brings it in. uv itself is pinned
# here and lives in build/uv, apart from the environment it manages.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := build/uv/bin/uv
LATEST := build/venv-latest
# --locked: fail, rather than re-resolve, when pyproject.toml changed without `make lock`.
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --python $(PYTHON)

.PHONY: run test test-latest typecheck lint docs gpu-check lock bench clean sources models tensorrt-names \
	published-models calibrate

$(UV):
	$(PYTHON) -m venv build/uv
	build/uv/bin/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)

# The stamp files re-install only when pyproject.toml or the lock changes.
# The core alone for `make run`; --inexact keeps what `make test` installed.
$(VENV)/.installed-core: pyproject.toml uv.lock | $(UV)
	$(SYNC) --quiet --inexact --no-dev
	touch $@

# Exactly the lock: the core, the extras all and test, and the dev group (pyright, ruff).
$(VENV)/.installed-all: pyproject.toml uv.lock | $(UV)
	$(SYNC) --quiet --extra all --extra test
	touch $@ $(VENV)/.installed-core

run: $(VENV)/.installed-core
	$(BIN)/autotune recommend

test: $(VENV)/.installed-all
	$(BIN)/python -m pytest -q

# pyright over autotune/ and plugins/ with torch's own types, and stubs in typings/ for the
# libraries that ship none (configuration in pyproject.toml).
typecheck: $(VENV)/.installed-all
	$(BIN)/pyright

lint: $(VENV)/.installed-all
	$(BIN)/ruff check .

# The manual (docs/, mkdocs.yml) into build/site; --strict fails on a broken link or anchor.
docs: $(VENV)/.installed-all
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# Refresh uv.lock to the newest releases the ranges in pyproject.toml allow.
lock: | $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

# The suite on the newest releases, without the lock or its holds ([tool.uv] is config, which
# --no-config drops), in a venv of its own (build/venv-latest).
test-latest: | $(UV)
	rm -rf $(LATEST)
	$(UV) venv --quiet --python $(PYTHON) $(LATEST)
	$(UV) pip install --quiet --refresh --no-config --python $(LATEST)/bin/python -e '.[all,test]' --group dev
	$(UV) pip list --python $(LATEST)/bin/python --format freeze > build/latest-versions.txt
	$(LATEST)/bin/python -m pytest -q -p no:cacheprovider

# On a GPU machine: every gpu/tensorrt test and the checks of the GPU-only paths, reported
# under benchmarks/results/ (docs/gpu-check.md); without a GPU it says so in seconds.
gpu-check: $(VENV)/.installed-all
	$(BIN)/python scripts/gpu_check.py

bench: $(VENV)/.installed-all
	$(BIN)/python benchmarks/recommend_startup.py

clean:
	rm -rf $(VENV) build *.egg-info

# profiles/sources.yaml is generated from the shared source distillation.
sources: $(VENV)/.installed-core
	$(BIN)/python scripts/sync_sources.py

# profiles/models.yaml is generated from the real torchvision models.
models: $(VENV)/.installed-all
	$(BIN)/python scripts/make_models.py

# profiles/published_models.yaml: the stats of every model profiles/published_measurements.yaml
# names, from timm, transformers and ultralytics, which autotune does not depend on: they go
# into an environment of their own, build/models-venv (newest releases; the header records them).
MODELS_VENV := build/models-venv
published-models: | $(UV)
	test -x $(MODELS_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(MODELS_VENV)
	$(UV) pip install --quiet --python $(MODELS_VENV)/bin/python -e . torch torchvision timm transformers ultralytics
	$(MODELS_VENV)/bin/python scripts/make_published_models.py

# profiles/throughput_model.yaml: the throughput prediction fitted to the published measurements.
calibrate: $(VENV)/.installed-all
	$(BIN)/python scripts/fit_throughput.py

# tests/tensorrt_api/<version>.txt: the names TensorRT's Python bindings register, from
# NVIDIA's bindings wheels (10.x and 11.x), which keep the TensorRT stand-in honest.
tensorrt-names: $(VENV)/.installed-all
	rm -rf build/tensorrt-wheels
	$(BIN)/python -m pip download -q --no-deps -d build/tensorrt-wheels tensorrt-cu13-bindings "tensorrt-cu12-bindings<11"
	$(BIN)/python scripts/tensorrt_names.py build/tensorrt-wheels/*.whl
