# Two entry points: `make demo` (the main job) and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The local CPU wheel (torch 2.13.0) satisfies this range; a bare `torch` would pull a CUDA build.
TORCH_SPEC ?= torch>=2.2,<2.14
FMNIST_DIR := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=

.PHONY: install readers data demo demo-quick test test-slow lint clean

$(BIN)/python:
	$(PYTHON) -m venv --system-site-packages $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null \
		|| $(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

# The NIR readers (SpikingJelly, Norse) for the cross-simulator tests; see requirements-readers.txt.
$(VENV)/.readers: $(VENV)/.installed requirements-readers.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-readers.txt
	@touch $@

readers: $(VENV)/.readers

data:
	@if [ -f $(FMNIST_DIR)/t10k-labels-idx1-ubyte.gz ] || [ -n "$$DTIF_DATA" ]; then \
		echo "Fashion-MNIST: found"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST is missing. Install it as root: apt-get install dataset-fashion-mnist,"; \
		echo "or put the four IDX files in a folder and set DTIF_DATA=/that/folder."; exit 1; \
	fi

demo: install data
	$(BIN)/dtif demo

demo-quick: install data
	$(BIN)/dtif demo --quick

test: install readers
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: install readers
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: install
	$(BIN)/python -m ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
