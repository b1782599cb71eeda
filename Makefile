# make run   install (if needed), migrate, create the built-in users, serve on 0.0.0.0:8000 with gunicorn
# make test  install dev requirements (if needed), make sure a Redis answers on 127.0.0.1:6379 and Chromium is
#            installed for the browser test, run pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev redis browser

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

# The admin's browser test drives Debian's headless Chromium. On a fresh machine as root (CI), install it with apt;
# elsewhere say how. Selenium is given both paths, so it never downloads a browser or a driver itself.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium and chromium-driver with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
	  echo "no chromium/chromedriver: apt-get install chromium chromium-driver (the browser test skips, or fails under CI=true)"; \
	fi

# pytest's exit status is make's: 5 (no tests collected) fails too, since this suite always has tests.
test: install-dev redis browser
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests (exit 5): a failure, this suite is never empty" >&2; fi; \
	exit $$status
