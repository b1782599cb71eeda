"""Real processes for the tests that need them: a throwaway ``redis-server`` that a test can kill and restart, and
the service under gunicorn, started as in production (migrate, ensureusers, ``gunicorn -c genderapi/gunicorn.conf.py``).

A machine without ``redis-server`` skips those tests, except under ``CI=true``, where that fails instead, as the
``real_redis`` fixture does for an unreachable Redis.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(message: str):
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A ``redis-server`` without persistence on ``port`` (a free one by default), started and killed at will."""

    def __init__(self, port: int | None = None):
        if shutil.which("redis-server") is None:
            skip_or_fail("redis-server is not on PATH")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not come up on port {self.port}")
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash, its connections dropped."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=2)


def basic_auth_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file; returns ``(body, content type)``."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
            timeout: float = 60) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        connection.close()


def post_image(port: int, data: bytes, auth: str, filename: str = "face.jpg") -> Response:
    body, content_type = multipart("file", filename, data)
    return request(port, "POST", "/predict/", body, {"Authorization": auth, "Content-Type": content_type})


class Gunicorn:
    """One instance of the service under gunicorn, its output in ``log_path``."""

    def __init__(self, env: dict, log_path: Path):
        self.env = env
        self.port = int(env["PORT"])
        self.log_path = log_path
        self.log = open(log_path, "w")
        gunicorn = Path(sys.executable).with_name("gunicorn")
        # A session of its own, so that stop() can end the master and its workers together.
        self.process = subprocess.Popen([str(gunicorn), "-c", "genderapi/gunicorn.conf.py", "genderapi.wsgi"],
                                        cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_until_serving(self, timeout: float = 180) -> None:
        """Wait until a worker answers /healthz (its pipeline is warmed by then: wsgi.py loads it first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            try:
                if request(self.port, "GET", "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def signal_stop(self) -> None:
        """Ask for gunicorn's quick shutdown (SIGQUIT): a test has no requests left to finish gracefully."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)

    def stop(self) -> None:
        """Quick shutdown; workers still tearing TensorFlow down after 2 s (it takes seconds) are killed."""
        self.signal_stop()
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.log.close()


def service_env(tmp: Path, *, redis_url: str, model_path: str, database_path: Path | None = None,
                secret_key: str | None = None, **extra) -> dict:
    """The environment of a production-like instance: its own port and key prefix unless given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "QUOTA_", "AUTH_LOCKOUT_", "REDIS_URL", "DATABASE_PATH", "MODEL_PATH"))}
    env.update({
        "PORT": str(free_port()), "REDIS_URL": redis_url, "MODEL_PATH": model_path,
        "QUOTA_KEY_PREFIX": f"genderapi-test-{uuid.uuid4().hex[:12]}",
        "DATABASE_PATH": str(database_path or tmp / "db.sqlite3"),
        "DJANGO_SECRET_KEY": secret_key or "test-" + uuid.uuid4().hex * 2,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def prepare_database(env: dict) -> None:
    """migrate + ensureusers, as the container's entrypoint does."""
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "--noinput"], ["ensureusers"]):
        result = subprocess.run(manage + command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
