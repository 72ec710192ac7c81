# The two commands in README's Quick start: `make demo` and `make test`.
# Everything they need is installed here: a virtualenv with the pinned requirements and, when
# run as root, the Debian packages listed in DEBIAN_PACKAGES.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
DEBIAN_PACKAGES := gettext pcscd vsmartcard-vpcd libpcsclite-dev swig chromium fonts-wqy-microhei orthanc orthanc-dicomweb dcmtk poppler-utils
PYTEST_ARGS ?=
DEMO_READS_PER_SECOND ?= 0.5

.PHONY: demo test test-sqlite test-postgres setup system-packages postgres-up messages

# The demo: SQLite under var/, demo data, and a simulated reader (the real agent, reading random
# demo tags) feeding the scan station page of reader "demo-station".
demo: setup messages
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py register_reader demo-station --location FR --mode locate --revoke-old > var/demo-reader.key
	@echo
	@echo "Filmroom is starting at http://$(HOST):$(PORT)/  (log in with a demo login above; Ctrl-C stops it)"
	@echo "Scan station fed by a simulated reader: http://$(HOST):$(PORT)/station/demo-station/  (log in as staff)"
	@echo
	@$(BIN)/python -m agent --server http://$(HOST):$(PORT) --key-file var/demo-reader.key --reader sim \
	  --sim-rate $(DEMO_READS_PER_SECOND) --outbox var/demo-outbox.sqlite3 > var/demo-agent.log 2>&1 & \
	agent=$$!; trap 'kill $$agent 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver --noreload $(HOST):$(PORT)

test: setup messages
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite:
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: postgres-up
	DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest --create-db $(PYTEST_ARGS)

setup: system-packages $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Please install the Debian packages:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; \
	fi

messages: $(BIN)/.installed
	$(BIN)/python manage.py compilemessages --ignore=.venv -v0

postgres-up:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
	echo "PostgreSQL does not answer on 127.0.0.1:5432; the PostgreSQL half of the suite cannot run." >&2; exit 1
