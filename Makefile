# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv on first use. torch is pinned first: an unpinned torch
# pulls a multi-GB CUDA build, while 2.13.0 is the CPU build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean-data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m testmem.examples.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# mypy maps modules to folders: .typecheck/testmem/ links the folders under their import names.
	mkdir -p .typecheck/testmem && for p in memory agents examples; do ln -sfn ../../$$p .typecheck/testmem/$$p; done
	$(BIN)/mypy -p testmem.memory -p testmem.agents

test: lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean-data:
	rm -rf data/* && touch data/.gitkeep
