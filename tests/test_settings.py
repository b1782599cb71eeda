"""Settings read from the environment, checked in a fresh interpreter (settings load once per process)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOW = ("import django; django.setup(); from django.conf import settings as s; "
        "print('KEY=' + s.SECRET_KEY); print('LIMIT=%s' % s.QUOTA_DAILY_LIMIT); print('TZ=' + s.TIME_ZONE)")


def start(tmp_path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("DJANGO_", "REDIS_URL", "QUOTA_", "DATABASE_PATH"))}
    environ.update(DJANGO_SETTINGS_MODULE="genderapi.settings", DATABASE_PATH=str(tmp_path / "db.sqlite3"),
                   **env)
    return subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=60)


def test_without_secret_key_a_generated_one_is_kept_next_to_the_database_and_warned(tmp_path):
    first, second = start(tmp_path), start(tmp_path)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "secret_key"
    assert f"KEY={key_file.read_text()}" in first.stdout.splitlines()
    assert first.stdout.splitlines()[-3:] == second.stdout.splitlines()[-3:]
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "DJANGO_SECRET_KEY not set" in first.stdout


def test_redis_url_unset_logs_the_embedded_store_warning(tmp_path):
    result = start(tmp_path, DJANGO_SECRET_KEY="x" * 50)
    assert ("WARNING genderapi: REDIS_URL not set: using an embedded in-process store (fakeredis); "
            "counters are per-process and lost on restart; not for production") in result.stdout


def test_values_come_from_the_environment(tmp_path):
    result = start(tmp_path, DJANGO_SECRET_KEY="k" * 50, QUOTA_DAILY_LIMIT="7", TIME_ZONE="Europe/Paris",
                   REDIS_URL="redis://127.0.0.1:6379/0")
    assert result.returncode == 0, result.stderr
    assert {"KEY=" + "k" * 50, "LIMIT=7", "TZ=Europe/Paris"} <= set(result.stdout.splitlines())
    assert "REDIS_URL not set" not in result.stdout
    assert not (tmp_path / "secret_key").exists()


def test_a_malformed_number_stops_start_up_with_a_clear_message(tmp_path):
    result = start(tmp_path, QUOTA_DAILY_LIMIT="fifty")
    assert result.returncode != 0
    assert "QUOTA_DAILY_LIMIT must be an integer, not 'fifty'" in result.stderr


def test_a_malformed_redis_url_stops_start_up_without_echoing_it(tmp_path):
    result = start(tmp_path, DJANGO_SECRET_KEY="x" * 50, REDIS_URL="s3cret@127.0.0.1:6391")
    assert result.returncode != 0
    assert "REDIS_URL is not a Redis URL" in result.stderr and "redis://127.0.0.1:6379/0" in result.stderr
    assert "s3cret" not in result.stderr


def test_manage_py_reports_a_wrong_setting_in_one_line_without_a_traceback(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_URL", "QUOTA_"))}
    environ.update(DATABASE_PATH=str(tmp_path / "db.sqlite3"), REDIS_URL="http://x")
    result = subprocess.run([sys.executable, "manage.py", "resetquota", "pinpin"], cwd=ROOT, env=environ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("Configuration error: REDIS_URL is not a Redis URL")
    assert "Traceback" not in result.stderr
