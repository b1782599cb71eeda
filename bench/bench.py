"""Benchmark genderapi as it runs in production, and print every figure in one run.

    .venv/bin/python bench/bench.py [--photos DIR] [--requests N] [--workers 1 2] [--out bench/results/FILE]

It measures, on the same photos (``../shared/data/portraits-dev`` when present, else the scikit-image portraits):

1. the in-process pipeline (no HTTP, no auth, no quota) at concurrency 1, 2, 4, 8: photos/s and ms per photo,
   split into decode, detect and classify: the limit the web layer is measured against;
2. gunicorn started as compose starts it (real Redis, production settings), for 1 and 2 workers: ``/predict/``
   at concurrency 1, 2, 4, 8 (p50/p95/p99 latency, throughput, ratio to in-process at the same concurrency);
3. the per-request cost of authentication and of the quota check, from endpoints that do only that;
4. Redis commands per charged request (from Redis's own command counter);
5. cold start (process start to first prediction served) and resident memory per worker.

Nothing here is a test: figures vary with the machine's load. Compare ratios measured in the same run.
"""
from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
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

    pipeline = GenderPipeline.load(str(ROOT / "model.h5"))
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


def request(url, body=None, content_type=None, auth=True):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if auth:
        req.add_header("Authorization", AUTH)
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=60) as response:
        response.read()
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


def redis_commands(client) -> int:
    return int(client.info("stats")["total_commands_processed"])


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
        # overhead of auth and quota: /healthz (no auth) vs /quota/ (auth + one ledger read)
        n = 300
        plain, _ = run_concurrently(lambda _: request(base + "/healthz", auth=False), range(n), 1)
        authed, _ = run_concurrently(lambda _: request(base + "/quota/"), range(n), 1)
        result["auth_plus_quota_read_ms_p50"] = round(
            (percentile(authed, 50) - percentile(plain, 50)) * 1000, 2)
        # Redis commands per charged request
        before = redis_commands(client)
        for data in photos[:20]:
            request(base + "/predict/", *multipart(data))
        result["redis_commands_per_request"] = round((redis_commands(client) - before - 1) / 20, 2)
        result["rss_mb_per_worker"] = [round(rss_mb(p)) for p in worker_pids(proc.pid)]
        return result
    finally:
        proc.terminate()
        proc.wait(30)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "portraits-dev"))
    parser.add_argument("--limit-photos", type=int, default=60)
    parser.add_argument("--requests", type=int, default=120, help="requests per concurrency level")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genderapi.settings")
    photos = load_photos(args.photos, args.limit_photos)
    print(f"{len(photos)} photos; {args.requests} requests per level; {platform.machine()}, "
          f"{os.cpu_count()} cores", flush=True)
    inproc = in_process(photos, args.requests)
    print(f"in-process stages (ms, mean): {inproc['stages_ms']}; classifier, one crop: "
          f"{inproc['classify_one_crop_ms_p50']} ms p50")
    for c, row in inproc["by_concurrency"].items():
        print(f"  in-process c={c}: {row['photos_per_s']} photos/s, {row['ms_per_photo']} ms/photo", flush=True)
    servers = []
    for workers in args.workers:
        result = serve_and_measure(workers, photos, args.requests, inproc, args.redis_url)
        servers.append(result)
        print(f"gunicorn, {workers} worker(s): cold start {result['cold_start_s']} s, RSS per worker "
              f"{result['rss_mb_per_worker']} MB, auth+quota read {result['auth_plus_quota_read_ms_p50']} ms p50, "
              f"Redis commands per /predict/ {result['redis_commands_per_request']}")
        for c, row in result["by_concurrency"].items():
            print(f"  HTTP c={c}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms, "
                  f"{row['photos_per_s']} photos/s = {row['ratio_to_in_process']:.0%} of in-process", flush=True)
    report = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "photos": len(photos),
              "requests_per_level": args.requests, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "in_process": inproc, "http": servers}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
