# make run   install (if needed), migrate, create the built-in users, serve on 127.0.0.1:8000 with gunicorn
#            (BIND_HOST=0.0.0.0 to listen on every interface)
# make test  install dev requirements (if needed), make sure a Redis answers on 127.0.0.1:6379 and Chromium is
#            installed for the browser test (and a compose client for the deployment tests), run pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev redis tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files: pip runs again only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-detector.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -r requirements-detector.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensureusers
	@if [ -z "$$REDIS_URL" ]; then echo "REDIS_URL not set: embedded per-process quota store, so gunicorn runs 1 worker"; fi
	BIND_HOST=$${BIND_HOST:-127.0.0.1} $(BIN)/gunicorn -c genderapi/gunicorn.conf.py genderapi.wsgi

# The integration tests need a real Redis: use the one on 127.0.0.1:6379, or start a throwaway one there.
redis:
	@if $(BIN)/python -c "import redis; redis.Redis(socket_connect_timeout=1).ping()" 2>/dev/null; then \
	  echo "Redis answers on 127.0.0.1:6379"; \
	elif command -v redis-server >/dev/null; then \
	  echo "starting redis-server on 127.0.0.1:6379"; \
	  redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes; \
	  for i in 1 2 3 4 5 6 7 8 9 10; do \
	    $(BIN)/python -c "import redis; redis.Redis(socket_connect_timeout=1).ping()" 2>/dev/null && exit 0; sleep 0.5; \
	  done; echo "redis-server did not come up"; exit 1; \
	else \
	  echo "no Redis on 127.0.0.1:6379 and no redis-server: integration tests will skip (or fail under CI=true)"; \
	fi

# The admin's browser test drives Debian's headless Chromium, and the deployment tests validate docker-compose.yml
# with a compose client (this machine has the docker CLI without its compose plugin). On a fresh machine as root
# (CI), install what is missing with apt; elsewhere say how. Selenium is given both browser paths, so it never
# downloads a browser or a driver itself.
tools:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; } || missing="$$missing docker-compose"; \
	if [ -z "$$missing" ]; then \
	  echo "chromium, chromedriver and a compose client are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
	  echo "missing:$$missing (apt-get install$$missing); the browser and compose tests skip (the browser test fails under CI=true)"; \
	fi

# pytest's exit status is make's: 5 (no tests collected) fails too, since this suite always has tests.
test: install-dev redis tools
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests (exit 5): a failure, this suite is never empty" >&2; fi; \
	exit $$status
