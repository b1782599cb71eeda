"""The guide's curl commands, verbatim, against the real server: gunicorn, the real Redis, the real model.

Only the port changes (a free one instead of 8000) and the guide's placeholder image path becomes a real photo.
The run covers a prediction, the admin quota endpoints, the 51st call refused, the reset endpoint and the
``resetquota`` command.
"""
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.samples import ROOT, astronaut_jpeg

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")]

GUIDE = {
    "predict": 'curl -X POST "http://localhost:8000/predict/" -u "pinpin:azerty" -F "file=@/chemin/vers/votre/image.jpg"',
    "all_quotas": 'curl -X GET "http://localhost:8000/users/quotas/" -u "admin:admin_password"',
    "user_quota": 'curl -X GET "http://localhost:8000/user/pinpin/quota" -u "admin:admin_password"',
    "reset": 'curl -X POST "http://localhost:8000/user/pinpin/reset_quota" -u "admin:admin_password"',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def real_redis_url():
    """The real Redis's URL; unreachable: fail under CI=true, skip elsewhere."""
    import redis

    from tests.conftest import REAL_REDIS_URL

    try:
        redis.Redis.from_url(REAL_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"Redis at {REAL_REDIS_URL} is not reachable: {exc}")
        pytest.skip(f"Redis at {REAL_REDIS_URL} is not reachable: {exc}")
    return REAL_REDIS_URL


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_redis_url):
    tmp = tmp_path_factory.mktemp("e2e")
    port = free_port()
    prefix = f"genderapi-e2e-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PORT": str(port), "REDIS_URL": real_redis_url, "QUOTA_KEY_PREFIX": prefix,
           "DATABASE_PATH": str(tmp / "db.sqlite3"), "DJANGO_SECRET_KEY": "e2e-" + uuid.uuid4().hex,
           "WORKERS": "2", "THREADS": "2", "QUOTA_DAILY_LIMIT": "50"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "--noinput"], env=env, check=True, capture_output=True)
    subprocess.run(manage + ["ensureusers"], env=env, check=True, capture_output=True)
    log = open(tmp / "gunicorn.log", "w+")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen([str(gunicorn), "-c", "genderapi/gunicorn.conf.py", "genderapi.wsgi"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://localhost:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    break
        except Exception:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    else:
        proc.kill()
    image = tmp / "image.jpg"
    image.write_bytes(astronaut_jpeg())
    log.seek(0)
    assert proc.poll() is None, "gunicorn died:\n" + log.read()
    yield {"port": port, "image": image, "env": env, "manage": manage, "log": log}
    proc.terminate()
    proc.wait(30)
    import redis
    client = redis.Redis.from_url(real_redis_url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def curl(server, command: str, include_headers=False) -> tuple[int, dict, dict]:
    command = command.replace("localhost:8000", f"localhost:{server['port']}")
    command = command.replace("/chemin/vers/votre/image.jpg", str(server["image"]))
    args = shlex.split(command) + ["-s", "-D", "-"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout
    head, _, body = out.partition("\n\n")
    while head.split()[1].startswith("1"):  # "HTTP/1.1 100 Continue" before the real answer
        head, _, body = body.partition("\n\n")
    status = int(head.split()[1])
    headers = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip()
               for line in head.split("\n")[1:] if ":" in line}
    return status, headers, json.loads(body)


def test_the_guides_curl_commands_work_verbatim(server):
    status, headers, body = curl(server, GUIDE["predict"])
    assert status == 200, body
    assert body["gender"] in ("female", "male") and body["faces"][0]["box"]["width"] > 50
    assert headers["x-ratelimit-limit"] == "50" and headers["x-ratelimit-remaining"] == "49"
    assert headers["x-request-id"] == body["request_id"]

    status, _, body = curl(server, GUIDE["all_quotas"])
    assert status == 200
    assert json.dumps(body).count('"pinpin"') == 1

    status, _, body = curl(server, GUIDE["user_quota"])
    assert status == 200 and body["used"] == 1 and body["remaining"] == 49

    for _ in range(49):
        status, _, body = curl(server, GUIDE["predict"])
        assert status == 200, body
    status, headers, body = curl(server, GUIDE["predict"])
    assert status == 429 and "error" in body and int(headers["retry-after"]) > 0
    assert curl(server, GUIDE["user_quota"])[2]["used"] == 50

    status, _, body = curl(server, GUIDE["reset"])
    assert status == 200
    assert curl(server, GUIDE["user_quota"])[2]["used"] == 0
    assert curl(server, GUIDE["predict"])[0] == 200

    result = subprocess.run(server["manage"] + ["resetquota", "pinpin"], env=server["env"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert curl(server, GUIDE["user_quota"])[2]["used"] == 0


def test_wrong_password_and_no_face_are_clear_json_errors(server):
    status, headers, body = curl(server, GUIDE["predict"].replace("pinpin:azerty", "pinpin:wrong"))
    assert status == 401 and "error" in body and headers["www-authenticate"].startswith("Basic")
    server["image"].write_bytes((ROOT / "tests" / "samples.py").read_bytes())  # not an image
    try:
        status, _, body = curl(server, GUIDE["predict"])
        assert status == 400 and "error" in body
    finally:
        server["image"].write_bytes(astronaut_jpeg())
