#!/bin/sh
# Container start: bring the database schema and the built-in accounts up to date, then serve.
# Any arguments replace the server (e.g. `docker compose run --rm api python manage.py resetquota pinpin`).
set -eu
python manage.py migrate --noinput
python manage.py ensureusers
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec gunicorn -c genderapi/gunicorn.conf.py genderapi.wsgi
