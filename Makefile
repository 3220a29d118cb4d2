# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# One stamp per install, each re-made when the dependency list changes: `make demo` installs
# the core (no TensorFlow), `make test` the dev extras (every optional dependency + pytest),
# also into a .venv that `make demo` created first (dev includes the core).
CORE_STAMP := $(VENV)/.installed-core
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test install clean

install: $(DEV_STAMP)

$(CORE_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	touch $(CORE_STAMP)

$(DEV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(CORE_STAMP) $(DEV_STAMP)

DEMO := demo_output
DEMO_STRATEGIES := random npc
# One process per strategy, side by side, each on one thread (XLA:CPU's multi-threaded
# Eigen is no faster than one thread at the demo's sizes, and two processes keep both cores
# busy through compilations too); same results as one run of both strategies. Ctrl-C
# stops both (background jobs of a script ignore SIGINT: the trap passes on a SIGTERM);
# an interrupted demo resumes where it stopped the next time, then writes the report.
DEMO_XLA_FLAGS := $(XLA_FLAGS) --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1
demo: $(CORE_STAMP)
	@failed=0; pids=""; \
	trap 'kill $$pids 2>/dev/null; wait; exit 130' INT TERM; \
	for s in $(DEMO_STRATEGIES); do \
	  if [ -f $(DEMO)/$$s/config.json ]; then \
	    XLA_FLAGS="$(DEMO_XLA_FLAGS)" $(VENV)/bin/assljax run --workdir $(DEMO)/$$s --resume & \
	  else \
	    XLA_FLAGS="$(DEMO_XLA_FLAGS)" $(VENV)/bin/assljax run --config experiments/configs/demo.py \
	      --workdir $(DEMO)/$$s "--config.strategies=['$$s']" & \
	  fi; \
	  pids="$$pids $$!"; \
	done; \
	for p in $$pids; do wait $$p || failed=1; done; \
	exit $$failed
	$(VENV)/bin/assljax report $(foreach s,$(DEMO_STRATEGIES),$(DEMO)/$(s)) --out $(DEMO)
	@echo "Five seeds separate only large effects: the digits benchmark (9 strategies, 8 seeds," \
	  "10 -> 60 labels) and what it shows are in experiments/results/README.md"

test: $(DEV_STAMP)
	$(PY) -m pytest -n 2 --dist worksteal -q --durations=15

clean:
	rm -rf $(VENV) demo_output .pytest_cache
