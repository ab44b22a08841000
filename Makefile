# Two entry points for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean sources models tensorrt-names

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The stamp files re-install only when pyproject.toml changes.
$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[all,test]'
	touch $@ $(VENV)/.installed-core

run: $(VENV)/.installed-core
	$(BIN)/autotune recommend

test: $(VENV)/.installed-all
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-all
	$(BIN)/python -m pip install -q ruff
	$(BIN)/ruff check .

bench: $(VENV)/.installed-all
	$(BIN)/python benchmarks/recommend_startup.py

clean:
	rm -rf $(VENV) build *.egg-info

# profiles/sources.yaml is generated from the shared source distillation.
sources: $(BIN)/python
	$(BIN)/python scripts/sync_sources.py

# profiles/models.yaml is generated from the real torchvision models.
models: $(VENV)/.installed-all
	$(BIN)/python scripts/make_models.py

# tests/tensorrt_api/<version>.txt: the names TensorRT's Python bindings register, from
# NVIDIA's bindings wheels (10.x and 11.x), which keep the TensorRT stand-in honest.
tensorrt-names: $(BIN)/python
	rm -rf build/tensorrt-wheels
	$(BIN)/python -m pip download -q --no-deps -d build/tensorrt-wheels tensorrt-cu13-bindings "tensorrt-cu12-bindings<11"
	$(BIN)/python scripts/tensorrt_names.py build/tensorrt-wheels/*.whl
