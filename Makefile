# SCRM: `make run` to try it, `make test` before you push. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# Rebuilt when a requirement file changes; otherwise `make install` is a no-op.
STAMP := $(VENV)/.installed
PORT ?= 8000
BENCH ?=

.PHONY: help install chromium hey run test lint bench vendor messages constraints services-stop clean

help:
	@echo "make install   create .venv and install the pinned requirements (and Debian's chromium)"
	@echo "make run       the embedded default: SQLite, demo data, accounts printed, serve on :\$$PORT (8000)"
	@echo "make test      ruff, mypy and pytest on PostgreSQL + Redis (started if not reachable)"
	@echo "make lint      ruff format --check, ruff check, mypy"
	@echo "make bench     benchmarks on PostgreSQL: make bench [BENCH='import ...']"
	@echo "make vendor    npm ci and copy htmx / Sortable / ECharts into static/vendor/"
	@echo "make messages  makemessages -l zh_Hans, then compilemessages"
	@echo "make constraints  re-pin constraints.txt from the installed .venv"

install: $(STAMP) chromium

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt -c constraints.txt
	@touch $@

# The browser tests drive Debian's chromium through Playwright; Playwright's own
# browser download is never used (it cannot be fetched here).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (and CJK fonts for screenshots) for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else \
	    echo "warning: /usr/bin/chromium is missing; the browser tests need it (apt-get install chromium)" >&2; \
	  fi; \
	fi

run: install
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py seed_demo --if-empty
	@$(PY) manage.py collectstatic --noinput -v 0
	@echo
	@echo "SCRM: http://127.0.0.1:$(PORT)/   (admin: http://127.0.0.1:$(PORT)/admin/)"
	@for ip in $$(hostname -I 2>/dev/null); do case $$ip in *:*) ;; *) echo "      http://$$ip:$(PORT)/";; esac; done
	@echo "Parent app (H5, a phone's browser): http://127.0.0.1:$(PORT)/m/   (the demo parent's phone is printed above)"
	@echo
	DEBUG=$${DEBUG:-1} ALLOWED_HOSTS="$${ALLOWED_HOSTS:-*}" $(PY) manage.py runserver 0.0.0.0:$(PORT)

test: install
	@scripts/with-services.sh scripts/test.sh

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

bench: install hey
	@scripts/with-services.sh $(PY) -m bench $(BENCH)

# The API bench's load generator (bench/bench_api.py): Debian's hey.
hey:
	@if ! command -v hey >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's hey (the API bench's load generator)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey >/dev/null; \
	  else \
	    echo "warning: hey is missing; the API bench needs it (apt-get install hey)" >&2; \
	  fi; \
	fi

# Stop the private PostgreSQL / Redis left running by KEEP_SERVICES=1.
services-stop:
	@scripts/ensure-services.sh stop

vendor:
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
	cp node_modules/sortablejs/Sortable.min.js static/vendor/Sortable.min.js
	# ECharts' "common" build: bar, line, pie and scatter with their components, the charts the
	# persona pages draw; the full build is half as large again.
	cp node_modules/echarts/dist/echarts.common.min.js static/vendor/echarts.common.min.js
	@echo "static/vendor/ updated; commit it so \`make run\` needs no npm"

# Needs GNU gettext (Debian: apt-get install gettext). The compiled .mo files are
# committed, so running the product never needs gettext.
messages: install
	@command -v xgettext >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null; \
	  else echo "make messages needs GNU gettext (apt-get install gettext)" >&2; exit 1; fi; }
	$(PY) manage.py makemessages -l zh_Hans --no-obsolete \
	  --ignore=.venv --ignore=node_modules --ignore=static --ignore=staticfiles --ignore=.run --ignore=media
	$(PY) manage.py compilemessages -l zh_Hans --ignore=.venv --ignore=node_modules

constraints: $(STAMP)
	@{ echo "# Every package installed by requirements-dev.txt, pinned (pip freeze). Regenerate with \`make constraints\`."; \
	  $(PY) -m pip freeze --exclude-editable | sort -f; } > constraints.txt
	@touch $(STAMP)

clean: services-stop
	@if [ -f .run/pg.datadir ]; then rm -rf "$$(cat .run/pg.datadir)"; fi
	rm -rf .run staticfiles .mypy_cache .ruff_cache .pytest_cache
