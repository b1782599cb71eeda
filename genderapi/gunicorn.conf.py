"""Gunicorn settings (``gunicorn -c genderapi/gunicorn.conf.py genderapi.wsgi``), tuned by environment:
``BIND_HOST`` (0.0.0.0), ``PORT`` (8000), ``WORKERS`` (2, only with ``REDIS_URL``), ``THREADS`` (4), ``TIMEOUT`` (60 s).

preload_app stays False on purpose: TensorFlow is not fork-safe, so the model must not be loaded in the
master and inherited by forked workers. Each worker imports genderapi.wsgi itself, which builds and warms
the pipeline before the worker starts accepting connections (so a worker never serves cold).

Threads (gthread) let one worker overlap the I/O of a request (upload, Redis) with another's inference while
sharing one copy of the model; separate workers cost one model copy each.

Without REDIS_URL the quota counters live inside each process, so more than one worker would give each
user one quota per worker: we force a single worker then, and say so.
"""
import os


# BIND_HOST: the address to listen on (all interfaces by default, as a container needs; `make run` passes 127.0.0.1)
bind = [f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"]
worker_class = "gthread"
threads = int(os.environ.get("THREADS", "4"))
timeout = int(os.environ.get("TIMEOUT", "60"))
graceful_timeout = 30
preload_app = False
# gunicorn 27's control socket lives at ~/.gunicorn/gunicorn.ctl, one path for every instance of a user (and no
# writable home in the image): this service does not use it.
control_socket_disable = True

if os.environ.get("REDIS_URL", "").strip():
    workers = int(os.environ.get("WORKERS", "2"))
else:
    workers = 1
    print("gunicorn.conf: REDIS_URL is not set, so the quota store is per-process: running 1 worker"
          + (f" (WORKERS={os.environ['WORKERS']} ignored)" if os.environ.get("WORKERS") else ""), flush=True)

# Access log on stdout, without request headers: the Authorization header (and the Basic-auth user name
# gunicorn would decode from it, %(u)s) never reach the log. %({x-request-id}o)s ties a line to the app's logs.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
