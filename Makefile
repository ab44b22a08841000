# Two entry points for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean sources models

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
