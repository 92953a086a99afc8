# tandem: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: demo test lint install system-deps bench-seed bench-decode bench-tatoeba bench-g2p bench-train bench-train-memory bench-train-step bench-train-profile bench-compile-cache bench-train-overhead bench-train-quality bench-serve bench-export how-it-works-figures clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Graphviz and Chromium with its driver, from Debian (root or sudo); a no-op once installed.
system-deps:
	.ci/system-deps

demo: $(STAMP)
	$(BIN)/python -m tandem.demo --output $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q -n auto  # one worker per core (pytest-xdist)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/ruff format --check .

bench-seed: $(STAMP)
	$(BIN)/python benchmarks/bench_seed.py --output benchmarks/results/seed.json

bench-decode: $(STAMP)
	$(BIN)/python benchmarks/bench_decode.py --output benchmarks/results/decode.json

bench-serve: $(STAMP)
	$(BIN)/python benchmarks/bench_serve.py --output benchmarks/results/serve.json

bench-export: $(STAMP)
	$(BIN)/python benchmarks/bench_export.py --output benchmarks/results/export.json

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

bench-tatoeba: $(STAMP)
	$(BIN)/python benchmarks/bench_tatoeba.py --output benchmarks/results/tatoeba.json

bench-g2p: $(STAMP)
	$(BIN)/python benchmarks/bench_g2p.py --average-last 5 --output benchmarks/results/g2p.json

bench-train: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py --output benchmarks/results/train.json

bench-train-memory: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py --memory-only --output benchmarks/results/train.json

bench-train-step: $(STAMP)
	$(BIN)/python benchmarks/bench_train_step.py --output benchmarks/results/train_step.json

bench-train-profile: $(STAMP)
	$(BIN)/python benchmarks/bench_train_profile.py --output benchmarks/results/train_profile.json

bench-compile-cache: $(STAMP)
	$(BIN)/python benchmarks/bench_compile_cache.py --output benchmarks/results/compile_cache.json

bench-train-overhead: $(STAMP)
	$(BIN)/python benchmarks/bench_train_overhead.py --output benchmarks/results/train_overhead.json

bench-train-quality: $(STAMP)
	$(BIN)/python benchmarks/bench_train_quality.py --seeds 1337 2 3 --output benchmarks/results/train_quality.json

how-it-works-figures: $(STAMP)
	$(BIN)/python docs/how-it-works/make_figures.py --demo $(DEMO_DIR)
