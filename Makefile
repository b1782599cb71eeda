# make run   install (if needed), migrate, create the built-in users, serve on 0.0.0.0:8000 with gunicorn
# make test  install dev requirements (if needed), make sure a Redis answers on 127.0.0.1:6379, run pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev redis

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
	$(BIN)/gunicorn -c genderapi/gunicorn.conf.py genderapi.wsgi

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

# pytest's exit status is make's: 5 (no tests collected) fails too, since this suite always has tests.
test: install-dev redis
	$(BIN)/python -m pytest
