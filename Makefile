# The two commands of the README (`make demo`, `make test`) set everything up themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench addon addon-compat install clean

$(STAMP): setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/relight demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/relight bench --config small --device cpu

addon: $(STAMP)
	$(PY) scripts/build_addon.py --out-dir build/addon

# The add-on tests on the oldest and newest supported Blender (separate venvs; not run by CI).
addon-compat:
	scripts/addon_compat.sh 4.2.23 5.0.1

clean:
	rm -rf $(VENV) build *.egg-info out
