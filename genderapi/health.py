"""Probes for orchestrators, without authentication: ``/healthz`` (the process answers) and ``/readyz``
(it can serve predictions: the pipeline is loaded and the quota store answers PING)."""
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from genderapi.errors import error_response
from predictions import runtime
from quotas.ledger import QuotaLedger, QuotaStoreUnavailable


class ProbeView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]


class HealthView(ProbeView):
    def get(self, request):
        return Response({"status": "ok"})


class ReadyView(ProbeView):
    def get(self, request):
        problems = []
        loaded, detail = runtime.pipeline_status()
        if not loaded:
            problems.append(f"pipeline: {detail}")
        try:
            QuotaLedger().ping()
        except QuotaStoreUnavailable as exc:
            problems.append(f"quota store: {exc}")
        if problems:
            return error_response("Not ready: " + "; ".join(problems), 503)
        return Response({"status": "ready"})
