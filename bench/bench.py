"""Benchmark genderapi as it runs in production, and print every figure in one run.

    .venv/bin/python bench/bench.py [--photos DIR] [--requests N] [--workers 1 2] [--out bench/results/FILE]

It measures, on the same photos (``../shared/data/portraits-dev`` when present, else the scikit-image portraits):

1. the in-process pipeline (no HTTP, no auth, no quota) at concurrency 1, 2, 4, 8: photos/s and ms per photo,
   split into decode, detect and classify: the limit the web layer is measured against;
2. gunicorn started as compose starts it (real Redis, production settings), for 1 and 2 workers: ``/predict/``
   at concurrency 1, 2, 4, 8 (p50/p95/p99 latency, throughput, ratio to in-process at the same concurrency);
3. the per-request cost of authentication and of the quota check, from endpoints that do only that;
4. Redis round trips per charged request (commands seen by MONITOR on a throwaway redis-server it starts);
5. cold start (process start to first prediction served) and resident memory per worker.

Nothing here is a test: figures vary with the machine's load. Compare ratios measured in the same run.
"""
from __future__ import annotations

import argparse
import base64
import glob
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONCURRENCY = (1, 2, 4, 8)
AUTH = "Basic " + base64.b64encode(b"pinpin:azerty").decode()


def load_photos(folder: str | None, limit: int) -> list[bytes]:
    paths = sorted(glob.glob(os.path.join(folder, "*", "*.jpg")))[:limit] if folder else []
    if not paths:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        paths = [str(data / "astronaut.png"), str(data / "camera.png")]
    return [Path(p).read_bytes() for p in paths]


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def run_concurrently(task, items, concurrency):
    """Call ``task(item)`` for every item with ``concurrency`` threads; return (latencies in s, wall s)."""
    latencies = []
    lock = threading.Lock()

    def timed(item):
        started = time.perf_counter()
        task(item)
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, items))
    return latencies, time.perf_counter() - started


def in_process(photos, total):
    from predictions.ml.pipeline import GenderPipeline

    from django.conf import settings

    # TensorFlow's threads as a server worker sets them (INFERENCE_THREADS), so both sides run the same pipeline
    pipeline = GenderPipeline.load(str(ROOT / "model.h5"), threads=settings.INFERENCE_THREADS or None)
    for data in photos[:5]:
        pipeline.analyse(data)
    stages = {"decode": [], "detect": [], "classify": []}
    for data in photos:
        timings = pipeline.analyse(data).timings_ms
        for key in stages:
            stages[key].append(timings[key])
    result = {"stages_ms": {k: round(statistics.mean(v), 2) for k, v in stages.items()}, "by_concurrency": {}}
    # the classifier alone, one face crop (batch of one, mirror averaging included), after warm-up
    import numpy as np

    size = pipeline.classifier.config.input_size
    crop = np.random.default_rng(0).integers(0, 255, (1, size, size, 3), dtype=np.uint8)
    timings = []
    for _ in range(300):
        started = time.perf_counter()
        pipeline.classifier.predict(crop)
        timings.append((time.perf_counter() - started) * 1000)
    result["classify_one_crop_ms_p50"] = round(statistics.median(timings[50:]), 2)
    portrait = resized_jpeg(photos[0], 1280)
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        pipeline.analyse(portrait)
        timings.append((time.perf_counter() - started) * 1000)
    result["portrait_1280_ms_p50"] = round(statistics.median(timings), 1)
    items = [photos[i % len(photos)] for i in range(total)]
    for c in CONCURRENCY:
        latencies, wall = run_concurrently(pipeline.analyse, items, c)
        result["by_concurrency"][c] = {"photos_per_s": round(total / wall, 1),
                                       "ms_per_photo": round(statistics.mean(latencies) * 1000, 1)}
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(data: bytes):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


_connections = threading.local()


def request(url, body=None, content_type=None, auth=True):
    """One HTTP request on this thread's keep-alive connection (as a client library or a proxy would send it):
    the load generator shares the two cores with the server, so it must cost as little as possible."""
    parts = urllib.parse.urlsplit(url)
    connection = getattr(_connections, parts.netloc, None)
    if connection is None:
        connection = http.client.HTTPConnection(parts.netloc, timeout=60)
        setattr(_connections, parts.netloc, connection)
    headers = {"Authorization": AUTH} if auth else {}
    if content_type:
        headers["Content-Type"] = content_type
    for attempt in (1, 2):  # a kept-alive connection the server has since closed is opened again, once
        try:
            connection.request("POST" if body is not None else "GET", parts.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            break
        except (OSError, http.client.HTTPException):
            connection.close()
            if attempt == 2:
                delattr(_connections, parts.netloc)
                raise
    if response.status >= 400:
        raise RuntimeError(f"{url}: HTTP {response.status}")
    return response.status


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def redis_round_trips(url, action) -> dict[str, int]:
    """Run ``action()`` while Redis's MONITOR watches; return the commands clients sent, by name (the commands
    a Lua script runs inside the server are not round trips and are left out)."""
    import redis

    sentinel = f"bench-done-{uuid.uuid4().hex}"
    seen: dict[str, int] = {}
    marker = redis.Redis.from_url(url)
    marker.ping()  # its connection is made (and greeted) before MONITOR starts
    with redis.Redis.from_url(url).monitor() as monitor:
        thread = threading.Thread(target=lambda: (action(), marker.echo(sentinel)))
        thread.start()
        while True:
            command = monitor.next_command()
            if sentinel in command["command"]:
                break
            if command["client_type"] != "lua":
                name = command["command"].split(" ", 1)[0].strip('"').lower()
                seen[name] = seen.get(name, 0) + 1
        thread.join()
    return seen


COMPONENTS = r"""
import json, statistics, time
import django
django.setup()
from django.contrib.auth import get_user_model
from genderapi.authentication import CachedBasicAuthentication
from quotas.ledger import QuotaLedger

def p50(task, n):
    times = []
    for _ in range(n):
        started = time.perf_counter()
        task()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)

auth = CachedBasicAuthentication()
started = time.perf_counter()
auth.authenticate_credentials("pinpin", "azerty")          # first time: the password hasher runs
first = (time.perf_counter() - started) * 1000
user = get_user_model().objects.get(username="pinpin")
ledger = QuotaLedger()
print(json.dumps({
    "auth_first_check_ms": round(first, 1),
    "auth_remembered_ms_p50": p50(lambda: auth.authenticate_credentials("pinpin", "azerty"), 500),
    "quota_charge_ms_p50": p50(lambda: ledger.charge(user), 500),
}))
"""


def components(env) -> dict:
    """Authentication (first check, then remembered) and one quota charge, timed inside a Django process."""
    out = subprocess.run([sys.executable, "-c", COMPONENTS], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def resized_jpeg(data: bytes, side: int) -> bytes:
    """The photo scaled so its longer side is ``side`` px, as a phone app would send it (JPEG quality 90)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    scale = side / max(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def serve_and_measure(workers, photos, total, inproc, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    port = free_port()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"genderapi-bench-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    prefix = f"genderapi-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PORT": str(port), "REDIS_URL": redis_url, "QUOTA_KEY_PREFIX": prefix,
           "WORKERS": str(workers), "DATABASE_PATH": str(tmp / "db.sqlite3"), "DJANGO_DEBUG": "false",
           "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2, "QUOTA_DAILY_LIMIT": "100000000", "LOG_LEVEL": "warning"}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "--noinput"], env=env, check=True, capture_output=True)
    subprocess.run(manage + ["ensureusers"], env=env, check=True, capture_output=True)
    base = f"http://127.0.0.1:{port}"
    body, ctype = multipart(photos[0])
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "genderapi/gunicorn.conf.py",
                             "genderapi.wsgi"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if request(base + "/predict/", body, ctype) == 200:
                    break
            except Exception:
                time.sleep(0.05)
            if time.perf_counter() - started > 180:
                raise RuntimeError("the server did not come up")
        cold_start = time.perf_counter() - started
        # wait for every worker to be ready, then warm each connection path
        time.sleep(2)
        for data in photos[:10]:
            request(base + "/predict/", *multipart(data))
        result = {"workers": workers, "cold_start_s": round(cold_start, 2), "by_concurrency": {}}
        bodies = [multipart(photos[i % len(photos)]) for i in range(total)]
        for c in CONCURRENCY:
            latencies, wall = run_concurrently(lambda b: request(base + "/predict/", *b), bodies, c)
            throughput = total / wall
            result["by_concurrency"][c] = {
                "p50_ms": round(percentile(latencies, 50) * 1000, 1),
                "p95_ms": round(percentile(latencies, 95) * 1000, 1),
                "p99_ms": round(percentile(latencies, 99) * 1000, 1),
                "photos_per_s": round(throughput, 1),
                "ratio_to_in_process": round(throughput / inproc["by_concurrency"][c]["photos_per_s"], 3)}
        # one 1280-px portrait at concurrency 1, the latency target's case
        portrait = multipart(resized_jpeg(photos[0], 1280))
        latencies, _ = run_concurrently(lambda b: request(base + "/predict/", *b), [portrait] * 50, 1)
        result["portrait_1280_c1_p50_ms"] = round(percentile(latencies, 50) * 1000, 1)
        # overhead of auth and quota: /healthz (no auth) vs /quota/ (auth + one ledger read)
        n = 300
        plain, _ = run_concurrently(lambda _: request(base + "/healthz", auth=False), range(n), 1)
        authed, _ = run_concurrently(lambda _: request(base + "/quota/"), range(n), 1)
        result["auth_plus_quota_read_ms_p50"] = round(
            (percentile(authed, 50) - percentile(plain, 50)) * 1000, 2)
        # Redis commands per charged request
        charged = [multipart(photos[i % len(photos)]) for i in range(20)]
        calls = redis_round_trips(redis_url, lambda: [request(base + "/predict/", *b) for b in charged])
        result["redis_commands_per_request"] = round(sum(calls.values()) / len(charged), 2)
        result["redis_commands_seen"] = calls
        result["rss_mb_per_worker"] = [round(rss_mb(p)) for p in worker_pids(proc.pid)]
        result["components"] = components(env)
        return result
    finally:
        proc.terminate()
        proc.wait(30)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def private_redis():
    """A throwaway redis-server on a free port, so Redis's command counter sees only this benchmark."""
    import redis

    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def summary(inproc, servers) -> list[str]:
    """Each target of the performance issue, and the figure this run reached."""
    one = servers[0]
    ratios = [row["ratio_to_in_process"] for server in servers for row in server["by_concurrency"].values()]
    best = max(servers, key=lambda server: max(r["photos_per_s"] for r in server["by_concurrency"].values()))
    c = one["components"]
    return [
        f"HTTP throughput / in-process at the same concurrency (target >= 85%): "
        f"{min(ratios):.0%} to {max(ratios):.0%}",
        f"auth + quota per request, p50 (target <= 3 ms): remembered auth {c['auth_remembered_ms_p50']} ms + "
        f"charge {c['quota_charge_ms_p50']} ms = {c['auth_remembered_ms_p50'] + c['quota_charge_ms_p50']:.2f} ms "
        f"(first check of a password: {c['auth_first_check_ms']} ms); over HTTP, /quota/ minus /healthz: "
        f"{one['auth_plus_quota_read_ms_p50']} ms",
        f"Redis commands per /predict/ (target 1): {one['redis_commands_per_request']} "
        f"({', '.join(f'{name} x{count}' for name, count in one['redis_commands_seen'].items())} for 20 requests)",
        f"one 1280-px portrait at c=1, p50 (target <= 60 ms): HTTP {one['portrait_1280_c1_p50_ms']} ms, "
        f"in-process {inproc['portrait_1280_ms_p50']} ms",
        f"classifier, one face crop, p50 (target <= 5 ms): {inproc['classify_one_crop_ms_p50']} ms",
        "cold start to first prediction: " + ", ".join(f"{s['workers']} worker(s) {s['cold_start_s']} s"
                                                       for s in servers),
        "resident memory per worker: " + ", ".join(f"{s['workers']} worker(s) {s['rss_mb_per_worker']} MB"
                                                   for s in servers),
        f"best throughput: {max(r['photos_per_s'] for r in best['by_concurrency'].values())} photos/s "
        f"with {best['workers']} worker(s)",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "portraits-dev"))
    parser.add_argument("--limit-photos", type=int, default=60)
    parser.add_argument("--requests", type=int, default=120, help="requests per concurrency level")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                        help="default: a throwaway redis-server on a free port (else 127.0.0.1:6379)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genderapi.settings")
    from django.conf import settings

    lines = []

    def say(line=""):
        print(line, flush=True)
        lines.append(line)

    redis_proc = None
    if args.redis_url is None:
        if subprocess.run(["which", "redis-server"], capture_output=True).returncode == 0:
            redis_proc, args.redis_url = private_redis()
        else:
            args.redis_url = "redis://127.0.0.1:6379/0"
    try:
        photos = load_photos(args.photos, args.limit_photos)
        source = args.photos if os.path.isdir(args.photos) else "scikit-image's sample photos (no --photos folder)"
        say(f"genderapi benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {len(photos)} photos "
            f"from {source}, "
            f"{args.requests} requests per level; {platform.machine()}, {os.cpu_count()} cores; "
            f"Redis {args.redis_url}; INFERENCE_THREADS={settings.INFERENCE_THREADS}")
        inproc = in_process(photos, args.requests)
        say(f"in-process stages (ms, mean): {inproc['stages_ms']}; classifier, one crop: "
            f"{inproc['classify_one_crop_ms_p50']} ms p50; one 1280-px portrait {inproc['portrait_1280_ms_p50']} ms p50")
        for c, row in inproc["by_concurrency"].items():
            say(f"  in-process c={c}: {row['photos_per_s']} photos/s, {row['ms_per_photo']} ms/photo")
        servers = []
        for workers in args.workers:
            result = serve_and_measure(workers, photos, args.requests, inproc, args.redis_url)
            servers.append(result)
            say(f"gunicorn, {workers} worker(s): cold start {result['cold_start_s']} s, RSS per worker "
                f"{result['rss_mb_per_worker']} MB, Redis commands per /predict/ "
                f"{result['redis_commands_per_request']}, 1280-px portrait at c=1 "
                f"{result['portrait_1280_c1_p50_ms']} ms p50, components {result['components']}")
            for c, row in result["by_concurrency"].items():
                say(f"  HTTP c={c}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms, "
                    f"{row['photos_per_s']} photos/s = {row['ratio_to_in_process']:.0%} of in-process")
    finally:
        if redis_proc is not None:
            redis_proc.kill()
    say("targets:")
    for line in summary(inproc, servers):
        say(f"  {line}")
    report = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "photos": len(photos),
              "requests_per_level": args.requests, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "in_process": inproc, "http": servers}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"written to {out} and {out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
