"""Many requests at once against two gunicorn instances (two workers each) sharing one real Redis and one database,
as replicas behind a load balancer would: the quota is exact, refunds never let the total pass the limit, and the
sign-in lockout is shared. Also, against the same real servers: 413 before the body is read, and no secret in
their logs (run at DEBUG).

The pipeline is the real one over a stand-in model (see ``stand_in_model``); only statuses and counts matter.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from .conftest import REAL_REDIS_URL
from .samples import encode, noise_image, photo
from .servers import (Gunicorn, basic_auth_header, free_port, post_image, prepare_database, request,
                      service_env, skip_or_fail)

pytestmark = [pytest.mark.integration, pytest.mark.real_pipeline]

LIMIT = 50
WORKERS = 2
PINPIN = basic_auth_header("pinpin", "azerty")
ADMIN = basic_auth_header("admin", "admin_password")
FACE = encode(photo("astronaut.png").resize((128, 128)), "JPEG", quality=85)  # ~4 KB, one face
NOT_AN_IMAGE = b"GIF89a but not really" * 10
NO_FACE = encode(noise_image((160, 120)), "PNG")


@pytest.fixture(scope="module")
def instances(tmp_path_factory, stand_in_model):
    try:
        redis.Redis.from_url(REAL_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {REAL_REDIS_URL} is not reachable: {exc}")
    tmp = tmp_path_factory.mktemp("replicas")
    first = service_env(tmp, redis_url=REAL_REDIS_URL, model_path=stand_in_model, WORKERS=WORKERS, THREADS=4,
                        QUOTA_DAILY_LIMIT=LIMIT, AUTH_LOCKOUT_USER_FAILURES=5, LOG_LEVEL="DEBUG")
    second = {**first, "PORT": str(free_port())}  # same database, secret key, Redis and key prefix
    prepare_database(first)
    servers = [Gunicorn(first, tmp / "first.log"), Gunicorn(second, tmp / "second.log")]
    try:
        deadline = time.monotonic() + 240
        for server in servers:
            server.wait_until_serving()
            while server.output().count("prediction pipeline loaded") < WORKERS:  # every worker, not just one
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.3)
        yield servers
    finally:
        for server in servers:
            server.signal_stop()
        for server in servers:
            server.stop()
        client = redis.Redis.from_url(REAL_REDIS_URL)
        keys = list(client.scan_iter(match=f"{first['QUOTA_KEY_PREFIX']}:*", count=1000))
        if keys:
            client.delete(*keys)


def quota_keys(instances) -> dict:
    client = redis.Redis.from_url(REAL_REDIS_URL)
    prefix = instances[0].env["QUOTA_KEY_PREFIX"]
    return {key.decode(): int(client.get(key)) for key in client.scan_iter(match=f"{prefix}:quota:*")}


def reset_pinpin(instances):
    assert request(instances[0].port, "POST", "/user/pinpin/reset_quota", headers={"Authorization": ADMIN}).status == 200


def burst(instances, uploads: list[bytes]) -> list[int]:
    """POST every upload at once (released together by a barrier), alternating between the instances."""
    barrier = threading.Barrier(len(uploads))

    def send(i):
        barrier.wait()
        return post_image(instances[i % 2].port, uploads[i], PINPIN, filename="upload.jpg").status

    with ThreadPoolExecutor(max_workers=len(uploads)) as pool:
        return list(pool.map(send, range(len(uploads))))


def test_200_simultaneous_predictions_from_one_user_give_exactly_the_limit(instances):
    started = time.monotonic()
    statuses = burst(instances, [FACE] * 200)
    elapsed = time.monotonic() - started
    counts = Counter(statuses)
    final = request(instances[1].port, "GET", "/user/pinpin/quota", headers={"Authorization": ADMIN}).json()
    print(f"\nsent 200, accepted {counts[200]}, refused {counts[429]}, final count {final['used']}, "
          f"{elapsed:.1f} s")
    assert counts == {200: LIMIT, 429: 200 - LIMIT}
    assert final["used"] == LIMIT
    assert list(quota_keys(instances).values()) == [LIMIT]


def test_refusals_and_their_refunds_never_let_the_total_pass_the_limit(instances):
    reset_pinpin(instances)
    kinds = ["face", "not an image", "face", "no face"] * 50
    body = {"face": FACE, "not an image": NOT_AN_IMAGE, "no face": NO_FACE}
    statuses = burst(instances, [body[kind] for kind in kinds])
    by_kind = {kind: Counter(s for k, s in zip(kinds, statuses) if k == kind) for kind in body}
    accepted = by_kind["face"][200]
    final = quota_keys(instances)
    print(f"\nsent 200 (100 faces, 50 not images, 50 without a face): {dict(by_kind)}, final count "
          f"{list(final.values())}")
    assert set(by_kind["face"]) <= {200, 429}
    assert set(by_kind["not an image"]) <= {400, 429} and set(by_kind["no face"]) <= {422, 429}
    assert 0 < accepted <= LIMIT
    assert list(final.values()) == [accepted], "every refusal after a charge must have been refunded"


def test_the_sign_in_lockout_is_shared_by_every_instance(instances):
    wrong = basic_auth_header("ghost", "guess")
    statuses = [request(instances[i % 2].port, "GET", "/quota/", headers={"Authorization": wrong}).status
                for i in range(6)]
    assert statuses == [401] * 5 + [429]


def test_a_body_over_the_limit_gets_413_before_gunicorn_reads_it(instances):
    port = instances[0].port
    declared = 10 * 1024 * 1024 + 1  # MAX_UPLOAD_BYTES + 1
    head = ("POST /predict/ HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: {PINPIN}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"x" * 1024)  # and never the rest: an app reading the body would wait here
        started = time.monotonic()
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        body = reply.read()
        assert time.monotonic() - started < 5
    assert reply.status == 413
    assert json.loads(body)["error"].startswith("Request body too large")
    assert request(port, "GET", "/healthz").status == 200


def test_passwords_and_authorization_headers_stay_out_of_the_server_logs(instances):
    guess = basic_auth_header("pinpin", "s3cr3t-guess")
    assert request(instances[0].port, "GET", "/quota/", headers={"Authorization": guess}).status == 401
    assert request(instances[1].port, "GET", "/quota/", headers={"Authorization": PINPIN}).status == 200
    time.sleep(0.5)  # let the access log lines land
    for server in instances:
        log = server.output()
        assert "GET /quota/" in log, "expected the requests in the access log"
        for secret in ("azerty", "s3cr3t-guess", "admin_password", PINPIN.split()[1], guess.split()[1],
                       ADMIN.split()[1]):
            assert secret not in log
