# The README's commands. Each does its own set-up on a fresh clone.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
FMNIST  := /usr/share/datasets/fashion-mnist

TEST_WORKERS ?= 2
# everything but the real-Ray and slow tests, on xdist workers, a file each
PYTEST_REST = $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile \
	  --no-loadscope-reorder -m "not ray and not slow"

.PHONY: setup test test-fast demo bench profile gpu-check clean notebooks system-deps fashion-mnist

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# Two phases. The real-Ray and slow tests in one process (on 2 cores two xdist workers ran
# them slower: two Rays and their trials thrash the cores; most of them share one cluster,
# tests/conftest.py), then the rest on two xdist workers, a file each. A phase that selects
# nothing (a -k in PYTEST_ADDOPTS) exits 5: that counts as passed unless both do.
test: $(STAMP)
	@export RAY_USAGE_STATS_ENABLED=0; \
	$(BIN)/python -m pytest -q -m "ray or slow"; ray=$$?; \
	$(PYTEST_REST); rest=$$?; \
	echo "make test: real-Ray/slow phase exit $$ray, other tests exit $$rest"; \
	if [ $$ray = 5 ] && [ $$rest = 5 ]; then exit 5; fi; \
	for rc in $$ray $$rest; do [ $$rc = 0 ] || [ $$rc = 5 ] || exit $$rc; done

# make test's second phase alone: everything but the tests marked ray or slow, on two xdist
# workers (at most the analysis tests' one shared study starts a local Ray): for development.
test-fast: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(PYTEST_REST)

# Fashion-MNIST is the embedded real dataset: Debian ships it; elsewhere torchvision downloads it.
fashion-mnist:
	@test -d $(FMNIST) || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null))) || \
	  echo "Fashion-MNIST not under $(FMNIST): it will be downloaded by torchvision into ./data"

# What the tests need that pip cannot install: headless Chromium (the report is opened in a
# real browser) and Debian's Fashion-MNIST (the real-data reader test). Only where apt and
# root exist (CI, the project's VMs); elsewhere those tests skip and say why.
system-deps: fashion-mnist
	@command -v chromium >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null))) || \
	  echo "chromium not installed: the report-in-a-browser test will skip"

demo: $(STAMP) fashion-mnist
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m study run quickstart --download --resume
	$(BIN)/python -m analysis report results/quickstart

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py

profile: $(STAMP)
	$(BIN)/python bench/profile_step.py

# On a machine with a GPU and this venv: bench/gpu_check.py (CUDA tests, a trial per
# precision, correctness, the benches, one summary table, a 330 s budget). A lent machine without
# the venv runs `python3 bench/gpu_check.py --out DIR` itself (README). No CUDA: exit 2.
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py --out bench/out/gpu-check

# JupyterLab on analysis/notebooks, listening on 127.0.0.1 only, with token auth (open the
# printed http://127.0.0.1:PORT/lab?token=... URL). The study to analyse: ELM_STUDY=results/NAME.
ELM_STUDY ?= results/quickstart
NB_PORT   ?= 8888
notebooks: $(STAMP)
	@test -d "$(ELM_STUDY)" || echo "note: $(ELM_STUDY) does not exist yet: run make demo or pass ELM_STUDY=results/NAME"
	ELM_STUDY="$(abspath $(ELM_STUDY))" $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 \
	  --ServerApp.port=$(NB_PORT) --ServerApp.open_browser=False \
	  --ServerApp.terminals_enabled=False --ServerApp.root_dir=analysis/notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
