"""Probes for orchestrators, without authentication: ``/healthz`` (the process answers) and ``/readyz``
(it can serve predictions: the pipeline is loaded and the quota store answers PING).

:class:`ProbeMiddleware` answers them ahead of Django's host check, so a Kubernetes probe (which sends the
pod's IP as ``Host``) or a load balancer's check gets its answer whatever ``DJANGO_ALLOWED_HOSTS`` says. The
public answer names what is missing but not why (file paths, Redis errors): the details are in the log."""
import logging

from django.conf import settings
from django.http import JsonResponse

from genderapi.errors import error_response
from predictions import runtime
from quotas.ledger import QuotaLedger, QuotaStoreUnavailable

logger = logging.getLogger(__name__)


def probe(view):
    """GET and HEAD only; any other method gets the API's JSON 405."""
    def wrapper(request):
        if request.method not in ("GET", "HEAD"):
            return error_response(f'Method "{request.method}" not allowed.', 405, {"Allow": "GET, HEAD"})
        return view(request)
    return wrapper


@probe
def healthz(request):
    return JsonResponse({"status": "ok"})


@probe
def readyz(request):
    problems = []
    loaded, detail = runtime.pipeline_status()
    if not loaded:
        problems.append("pipeline: " + ("not loaded yet" if detail == "not loaded yet"
                                        else "failed to load (details in the server log)"))
    try:
        QuotaLedger().ping()
    except QuotaStoreUnavailable as exc:
        logger.warning("readiness: quota store unavailable: %s", exc)
        if not settings.QUOTA_FAIL_OPEN:  # fail-open serves predictions uncounted: still ready for traffic
            problems.append("quota store: unreachable (details in the server log)")
    if problems:
        return error_response("Not ready: " + "; ".join(problems), 503)
    return JsonResponse({"status": "ready"})


PROBES = {"/healthz": healthz, "/healthz/": healthz, "/readyz": readyz, "/readyz/": readyz}


class ProbeMiddleware:
    """Answer the probe paths before any middleware that validates the Host header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = PROBES.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
