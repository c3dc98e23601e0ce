# The MNIST learning journey: `make run` walks the five phases, `make test` checks them.
# Both start from nothing: they create .venv, install requirements.txt and fetch the data.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_STAMP := data/MNIST/raw/.verified
SCRIPTS := 01_explore_mnist.py 02_simple_nn.py 03_train_model.py 04_improved_model.py 05_understand_model.py

.PHONY: setup data run test lint check-models bench clean

setup: $(VENV)/.installed $(DATA_STAMP)

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (found " + sys.version.split()[0] + ")")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Fetch and verify MNIST once; every script verifies the files again when it loads them.
$(DATA_STAMP): | $(VENV)/.installed
	$(PY) mnist_common.py
	touch $@

data: $(VENV)/.installed
	$(PY) mnist_common.py
	touch $(DATA_STAMP)

run: setup
	@for script in $(SCRIPTS); do \
		if [ -f $$script ]; then \
			echo; echo "=== python $$script"; start=$$(date +%s); \
			$(PY) $$script || exit 1; \
			echo "=== $$script took $$(( $$(date +%s) - start )) s"; \
		fi; \
	done

test: setup
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check .

# Check the models you trained yourself (models/mlp.pt, models/cnn.pt) against the thresholds.
check-models: $(VENV)/.installed
	$(PY) -m pytest -m my_models

bench: setup
	$(PY) benchmarks/benchmark.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
