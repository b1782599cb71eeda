"""``POST /predict/``: authenticate, charge the quota, hand the uploaded bytes to the pipeline, shape the JSON.

The charge comes first, so a client over quota gets its 429 before the upload is read or the model runs. A
charge stands only when the request yields an analysis: any failure after it (missing file, image rejected
by the pipeline, model unavailable, a bug) refunds it. A refund for a refused upload (a 4xx) also counts it
against the user's ``QUOTA_REFUSED_PER_HOUR``, past which the charge answers 429 too: refused uploads cost no
quota, but not without end. Every response from here on carries the quota headers.

If the quota store is down, the request fails closed (503 + Retry-After) unless ``QUOTA_FAIL_OPEN`` is set: then
it is served uncounted (``"quota": null``, no quota headers) and a warning is logged.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from genderapi.errors import error_response
from predictions import runtime
from predictions.ml.errors import ImageRejected
from quotas.ledger import QuotaLedger, QuotaState, QuotaStoreUnavailable
from quotas.views import LedgerAPIView

logger = logging.getLogger(__name__)

FILE_FIELD = "file"
PIPELINE_RETRY_AFTER = 30


def quota_headers(state: QuotaState) -> dict[str, str]:
    """The classic X-RateLimit-* headers and the IETF draft RateLimit/RateLimit-Policy fields."""
    return {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(state.remaining),
        "X-RateLimit-Reset": str(int(state.resets_at.timestamp())),
        "RateLimit-Policy": f'"daily";q={state.limit};w=86400',
        "RateLimit": f'"daily";r={state.remaining};t={state.seconds_to_reset}',
    }


def over_quota_message(state: QuotaState) -> str:
    if state.limit == 0:  # a DailyLimitOverride of 0: the reset at midnight will not help
        return "This account's daily limit is 0: predictions are blocked; ask an administrator."
    return (f"Daily quota exceeded: {state.used} of {state.limit} predictions used; "
            f"it resets at {state.resets_at.isoformat()}.")


def is_refused_upload(exc: Exception) -> bool:
    """Whether a failed prediction was the client's upload being refused (a 4xx: not an image, no face, a broken
    form...), which counts towards ``QUOTA_REFUSED_PER_HOUR``, rather than the service failing (a 5xx)."""
    if isinstance(exc, (ImageRejected, SuspiciousOperation)):
        return True
    return isinstance(exc, APIException) and 400 <= exc.status_code < 500


class PredictView(LedgerAPIView):
    parser_classes = [MultiPartParser]
    quota: QuotaState | None = None

    def post(self, request):
        ledger = QuotaLedger()
        try:
            self.quota = ledger.charge(request.user)
        except QuotaStoreUnavailable as exc:
            if not settings.QUOTA_FAIL_OPEN:
                raise
            logger.warning("quota store unavailable, serving uncounted (QUOTA_FAIL_OPEN) request_id=%s "
                           "user=%s: %s", request.request_id, request.user.get_username(), exc)
        if self.quota is not None and self.quota.cooldown:
            return error_response(
                f"Too many refused uploads (images that could not be analysed) in the last hour; retry in "
                f"{self.quota.cooldown} seconds.", 429, {"Retry-After": str(self.quota.cooldown)})
        if self.quota is not None and not self.quota.allowed:
            # A blocked account (limit 0) gets no Retry-After: midnight will not change anything for it.
            retry = {"Retry-After": str(self.quota.seconds_to_reset)} if self.quota.limit > 0 else {}
            return error_response(over_quota_message(self.quota), 429, retry)
        try:
            data = self.uploaded_bytes(request)
            analysis = runtime.get_pipeline().analyse(data)
        except Exception as exc:
            if self.quota is not None:
                self.refund(ledger, request.user, refused=is_refused_upload(exc))
            raise
        body = analysis.to_dict()
        body["request_id"] = request.request_id
        body["quota"] = self.quota.to_dict() if self.quota is not None else None
        logger.info("prediction request_id=%s user=%s faces=%d", request.request_id,
                    request.user.get_username(), len(body.get("faces", [])))
        return Response(body)

    @staticmethod
    def uploaded_bytes(request) -> bytes:
        uploads = request.FILES.getlist(FILE_FIELD)
        if not uploads:
            raise ParseError(f'Send the image as a multipart/form-data file field named "{FILE_FIELD}".')
        if len(uploads) > 1:
            raise ParseError(f'Send one image per request: the form has {len(uploads)} files named "{FILE_FIELD}".')
        upload = uploads[0]
        data = upload.read()
        if not data:
            raise ParseError("The uploaded file is empty.")
        return data

    def refund(self, ledger: QuotaLedger, user, refused: bool) -> None:
        try:
            self.quota = ledger.refund(user, self.quota.day, refused=refused)
        except QuotaStoreUnavailable as exc:
            logger.warning("could not refund the quota of %s: %s", user.get_username(), exc)

    def handle_exception(self, exc):
        if isinstance(exc, UnsupportedMediaType):  # e.g. the raw image as the body instead of a form
            content_type = self.request.META.get("CONTENT_TYPE", "")[:100] or "none"
            return error_response(
                f'Send the image as multipart/form-data with a file field named "{FILE_FIELD}" '
                f'(curl -F "{FILE_FIELD}=@photo.jpg"); this request\'s Content-Type is {content_type!r}.', 415)
        if isinstance(exc, ImageRejected):
            return error_response(str(exc), exc.status)
        if isinstance(exc, runtime.PipelineUnavailable):
            return error_response("The prediction model is not available; retry later.", 503,
                                  {"Retry-After": str(PIPELINE_RETRY_AFTER)})
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.quota is not None:
            for name, value in quota_headers(self.quota).items():
                response[name] = value
        return response
