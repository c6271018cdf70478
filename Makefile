# Everything a fresh machine needs is set up here: `make test` and `make demo` create the venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

# The demo needs only torch, matplotlib and the core deps: on a fresh machine it gets a venv of
# its own (no ray, pytest or ruff); where `make test` already built .venv, it runs there.
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed

.PHONY: test demo lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, pinned: its CPU wheel is on our machines; an unpinned torch pulls a CUDA build.
	$(BIN)/pip install torch==2.13.0
	# ray: the replay service's tests run on a local Ray instance (pearll[ray] is optional).
	# constraints.txt pins every other package to the versions the suite passed with.
	$(BIN)/pip install -c constraints.txt torch==2.13.0 -e ".[dev,ray]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

$(DEMO_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/pip install --upgrade pip
	$(DEMO_VENV)/bin/pip install torch==2.13.0
	$(DEMO_VENV)/bin/pip install -c constraints.txt torch==2.13.0 -e ".[demo]"
	touch $(DEMO_STAMP)

# .venv if `make test` built it, else the demo's own venv.
DEMO_NEEDS := $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))
DEMO_PYTHON := $(if $(wildcard $(STAMP)),$(BIN),$(DEMO_VENV)/bin)/python

demo: $(DEMO_NEEDS)
	$(DEMO_PYTHON) -m pearll.demo

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The peers (SB3, cpprb, TorchRL, Tianshou) live in their own venv, never in the core deps.
$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --upgrade pip
	$(BENCH_VENV)/bin/pip install torch==2.13.0
	$(BENCH_VENV)/bin/pip install torch==2.13.0 -e ".[bench]"
	touch $(BENCH_STAMP)

# make bench ARGS=--quick for a short run; results go to benchmarks/RESULTS*.md
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks.bench_buffers $(ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.bench_per $(ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.bench_atari $(ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.bench_compressed $(ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.bench_her $(ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.bench_sb3 $(ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.bench_adds $(ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.bench_sequences $(ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DEMO_VENV)
