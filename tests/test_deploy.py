"""Deployment files: the compose file validates, and gunicorn's configuration follows the store."""
from __future__ import annotations

import os
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_file_is_valid():
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine")
    result = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_the_scale_profile_runs_replicas_behind_nginx_sharing_one_redis():
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine")
    result = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), "--profile", "scale", "config"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "API_REPLICAS": "4"})
    assert result.returncode == 0, result.stderr
    rendered = result.stdout  # the resolved file, as YAML text (PyYAML is not a dependency)
    replica = rendered[rendered.index("  api-replica:"):rendered.index("  lb:")]
    assert "replicas: 4" in replica
    assert "REDIS_URL: redis://redis:6379/0" in replica and "NUM_PROXIES: '1'" in replica
    assert "api-replica:" in rendered[rendered.index("  lb:"):]
    nginx = (ROOT / "docker" / "nginx.conf").read_text()
    assert "proxy_pass $api;" in nginx and "http://api-replica:8000" in nginx


def gunicorn_config(monkeypatch, **env) -> dict:
    for name in ("REDIS_URL", "WORKERS", "THREADS", "PORT", "BIND_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "genderapi" / "gunicorn.conf.py"))


def test_gunicorn_runs_one_worker_with_the_embedded_store(monkeypatch):
    config = gunicorn_config(monkeypatch, WORKERS="4")
    assert config["workers"] == 1


def test_gunicorn_runs_workers_from_the_environment_with_redis(monkeypatch):
    assert gunicorn_config(monkeypatch, REDIS_URL="redis://redis:6379/0")["workers"] == 2
    assert gunicorn_config(monkeypatch, REDIS_URL="redis://redis:6379/0", WORKERS="3")["workers"] == 3


def test_gunicorn_loads_the_app_in_each_worker_and_logs_no_authorization(monkeypatch):
    config = gunicorn_config(monkeypatch)
    assert config["preload_app"] is False
    assert config["bind"] == ["0.0.0.0:8000"]
    assert "Authorization" not in config["access_log_format"] and "%(u)s" not in config["access_log_format"]
    assert "{authorization}i" not in config["access_log_format"].lower()


def test_ci_script_is_executable():
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_gunicorn_listens_on_every_interface_unless_bind_host_says_otherwise(monkeypatch):
    assert gunicorn_config(monkeypatch)["bind"] == ["0.0.0.0:8000"]  # a container's default
    assert gunicorn_config(monkeypatch, BIND_HOST="127.0.0.1", PORT="8011")["bind"] == ["127.0.0.1:8011"]

