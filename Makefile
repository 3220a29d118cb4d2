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
# The demo resumes where it stopped if interrupted (or re-run), then writes the report.
demo: $(CORE_STAMP)
	if [ -f $(DEMO)/run/config.json ]; then \
	  $(VENV)/bin/assljax run --workdir $(DEMO)/run --resume; \
	else \
	  $(VENV)/bin/assljax run --config experiments/configs/demo.py --workdir $(DEMO)/run; \
	fi
	$(VENV)/bin/assljax report $(DEMO)/run --out $(DEMO)
	@echo "Five seeds separate only large effects: the digits benchmark (9 strategies, 8 seeds," \
	  "10 -> 60 labels) and what it shows are in experiments/results/README.md"

test: $(DEV_STAMP)
	$(PY) -m pytest -n 2 --dist worksteal -q --durations=15

clean:
	rm -rf $(VENV) demo_output .pytest_cache
