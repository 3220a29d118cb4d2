# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Re-install when the dependency list changes.
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO := demo_output
# The demo resumes where it stopped if interrupted (or re-run), then writes the report.
demo: $(STAMP)
	if [ -f $(DEMO)/run/config.json ]; then \
	  $(VENV)/bin/assljax run --workdir $(DEMO)/run --resume; \
	else \
	  $(VENV)/bin/assljax run --config experiments/configs/demo.py --workdir $(DEMO)/run; \
	fi
	$(VENV)/bin/assljax report $(DEMO)/run --out $(DEMO)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist worksteal -q --durations=15

clean:
	rm -rf $(VENV) demo_output .pytest_cache
