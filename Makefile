# The MNIST learning journey: `make run` walks the phases, `make test` checks them.
# Both start from nothing: they create .venv, install requirements.txt and fetch the data.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_STAMP := data/MNIST/raw/.verified
# The journey, in order (one script per line; arguments after the name).
STEPS := \
	"01_explore_mnist.py" \
	"02_simple_nn.py" \
	"03_train_model.py" \
	"03_train_model.py --experiment all" \
	"03b_backprop_by_hand.py" \
	"04_improved_model.py" \
	"05_understand_model.py"

.PHONY: setup data run check-guide beyond transfer speedrun distributed draw test test-browser test-all-precisions lint check-models bench clean

setup: $(VENV)/.installed $(DATA_STAMP)

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (found " + sys.version.split()[0] + ")")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Fetch and verify MNIST once; every script verifies the files again when it loads them.
$(DATA_STAMP): | $(VENV)/.installed
	$(PY) -m mnist_common
	touch $@

data: $(VENV)/.installed
	$(PY) -m mnist_common
	touch $(DATA_STAMP)

run: setup
	@for step in $(STEPS); do \
		echo; echo "=== python $$step"; start=$$(date +%s); \
		$(PY) $$step || exit 1; \
		echo "=== $$step took $$(( $$(date +%s) - start )) s"; \
	done

# The guide against a real run: the default journey into journey.log (10 to 12 minutes on 2 cores),
# then every number learning_plan.md quotes compared with what the run printed.
check-guide: SHELL := /bin/bash
check-guide: setup
	set -o pipefail; $(MAKE) --no-print-directory run 2>&1 | tee journey.log
	$(PY) -m pytest -m guide tests/test_guide_run.py

# The first "next step" (not part of make run): augmentation and an ensemble of five deeper CNNs,
# 15 to 20 minutes on a 2-core CPU with native bf16. A rerun after Ctrl-C continues where it stopped.
beyond: setup
	$(PY) 06_beyond_99.py

# Teach it something new (not part of make run): how much of the MNIST CNN transfers to Fashion-MNIST with
# 1 to 1,000 images per class, then your own classes (the example symbols unless --dataset DIR), about 15 minutes on one core.
transfer: setup
	$(PY) 07_transfer_learning.py

# How fast can it learn? (not part of make run): the ladder from the conventional recipe to 99% in
# seconds, one change per rung, timed on this CPU; about 7 and a half minutes, most of them in the conventional rung.
speedrun: setup
	$(PY) 08_speedrun.py

# More than one process (not part of make run): 04's CNN trained by 2 processes with DistributedDataParallel,
# the proof of what DDP computes, and its costs, under 2 minutes on a quiet 2-core CPU. torchrun starts the processes.
distributed: setup
	$(VENV)/bin/torchrun --standalone --nproc_per_node=2 09_distributed.py

# The drawing page: draw a digit in your browser and watch your CNN and MLP answer (Ctrl-C stops it).
draw: setup
	$(PY) 05b_draw_a_digit.py

# The whole suite in the default precision (fp32), then the precision-dependent tests again in bf16
# (native or emulated): both paths, on every machine.
test: setup
	$(PY) -m pytest
	MNIST_PRECISION=bf16 $(PY) -m pytest -m precision

# The drawing page in headless Chromium, driven by Selenium (needs the Debian packages chromium and
# chromium-driver; .ci/run installs them where missing).
test-browser: setup
	$(PY) -m pytest -m browser tests/browser

# For developers: the whole suite in each precision.
test-all-precisions: setup
	MNIST_PRECISION=fp32 $(PY) -m pytest
	MNIST_PRECISION=bf16 $(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check .

# Check the models you trained yourself (models/mlp.pt, models/cnn.pt) against the thresholds.
check-models: $(VENV)/.installed
	$(PY) -m pytest -m my_models

bench: setup
	$(PY) benchmarks/benchmark.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
