# Every target installs the project first (once per pyproject.toml change), so on a fresh machine
# `make demo` and `make test` are the only two commands needed.
PYTHON ?= python3
SHARED_TIKTOKEN := $(abspath ../shared/tiktoken_cache)
ifneq ($(wildcard $(SHARED_TIKTOKEN)),)
export TIKTOKEN_CACHE_DIR ?= $(SHARED_TIKTOKEN)
endif

.PHONY: install test demo bench lint

install: .install.stamp

.install.stamp: pyproject.toml
	$(PYTHON) -m pip install --quiet -e ".[dev,parquet,slurm,track]"
	touch $@

test: install
	$(PYTHON) -m pytest

demo: install
	$(PYTHON) -m scaling.cli demo

bench: install
	$(PYTHON) benchmarks/bench_model.py
	$(PYTHON) benchmarks/bench_train.py
	$(PYTHON) benchmarks/bench_fit.py
	$(PYTHON) benchmarks/bench_decode.py
	$(PYTHON) benchmarks/bench_sweep.py

lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
