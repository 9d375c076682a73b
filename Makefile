# Streamfold — the two commands. Both create .venv when missing and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test lint bench clean browser tracker uplot

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` needs the runtime dependencies only; `make test` adds the test extras (SDKs, browsers, linters).
$(RUN_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/streamfold serve --demo

test: lint browser
	$(BIN)/python -m pytest -q

# The browser tests drive Debian's Chromium (and npm fetches the pinned SDK bundles). Installed when missing
# and we are root; otherwise those tests skip and say why.
APT := apt-get -o DPkg::Lock::Timeout=300 -y -q
browser:
	@missing=""; [ -x /usr/bin/chromium ] || missing=" chromium"; command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing for the browser tests (apt-get)"; \
	    { $(APT) install $$missing || { apt-get update -q && $(APT) install $$missing; }; } >/dev/null 2>&1 \
	      || echo "WARNING: could not install$$missing: the browser tests will be skipped"; \
	  else echo "WARNING: $$missing missing and not root: the browser tests will be skipped"; fi; \
	fi

# ruff (lint + format) and the import layers of pyproject.toml's [tool.importlinter]
lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python bench/ingest.py

# Rebuild api/static/tracker.js (minified, committed) from api/static/tracker.src.js; needs npm.
tracker:
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node build-tracker.mjs

# Vendor uPlot, the dashboard's chart library, from the npm registry (npm checks the tarball's integrity):
# `make uplot UPLOT_VERSION=1.6.32` rewrites api/static/uplot.min.js (+ .css, LICENSE); commit the result.
UPLOT_VERSION ?= 1.6.32
uplot:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent --loglevel=error uplot@$(UPLOT_VERSION) >/dev/null && tar xzf uplot-$(UPLOT_VERSION).tgz) && \
	integrity=$$(npm view --loglevel=error uplot@$(UPLOT_VERSION) dist.integrity) && \
	copyright=$$(grep -m1 Copyright "$$tmp/package/LICENSE") && \
	banner="/*! uPlot $(UPLOT_VERSION) | MIT License, $$copyright (api/static/uplot.LICENSE) | npm uplot@$(UPLOT_VERSION) $$integrity */" && \
	{ echo "$$banner"; cat "$$tmp/package/dist/uPlot.iife.min.js"; } > api/static/uplot.min.js && \
	{ echo "$$banner"; cat "$$tmp/package/dist/uPlot.min.css"; echo; } > api/static/uplot.min.css && \
	cp "$$tmp/package/LICENSE" api/static/uplot.LICENSE && \
	echo "api/static/uplot.min.js: uPlot $(UPLOT_VERSION), $$(wc -c < api/static/uplot.min.js) bytes"

clean:
	rm -rf $(VENV) .pytest_cache
