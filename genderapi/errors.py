"""The API's one error shape: ``{"error": "<message>"}`` with the right HTTP status, never an HTML page.

:func:`error_response` builds every error response (views, middleware, DRF's exception handler and Django's
404/500 handlers all call it). Paths under ``/admin/`` keep Django's HTML error pages, since people read those.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

# Headers a DRF error response may carry that the client needs (challenge, back-off hints).
_KEPT_HEADERS = ("WWW-Authenticate", "Retry-After", "Allow")


def error_response(message: str, status: int, headers: dict | None = None) -> JsonResponse:
    """Return the JSON error response ``{"error": message}`` with ``status`` and any extra ``headers``."""
    return JsonResponse({"error": message}, status=status, headers=headers)


def _message(detail) -> str:
    """Flatten a DRF error detail (a string, list or dict of them) into one readable sentence."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _message(value)
            parts.append(text if field in ("detail", "non_field_errors") else f"{field}: {text}")
        return " ".join(parts)
    if isinstance(detail, (list, tuple)):
        return " ".join(_message(item) for item in detail)
    return str(detail)


def api_exception_handler(exc, context):
    """DRF ``EXCEPTION_HANDLER``: DRF's own mapping (APIException, Http404, PermissionDenied), reshaped.

    Returns None for exceptions DRF does not know, so Django's 500 handler answers (and logs) them.
    """
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        message = _message(exc.detail)
    elif response.status_code == 404:
        message = "Not found."
    else:
        message = _message(response.data)
    headers = {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)}
    return error_response(message, response.status_code, headers)


def _is_admin(request) -> bool:
    return request.path.startswith("/admin/")


def _bad_request_message(exception) -> str:
    """What was wrong, for the refusals Django raises itself (as SuspiciousOperation) before any view runs."""
    from django.core.exceptions import DisallowedHost, TooManyFieldsSent, TooManyFilesSent

    if isinstance(exception, DisallowedHost):
        return ("This server does not answer to the Host this request names; its operator lists the names it "
                "answers to in DJANGO_ALLOWED_HOSTS.")
    if isinstance(exception, TooManyFilesSent):
        return (f"The form has too many files (at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES}); "
                'send one file field named "file".')
    if isinstance(exception, TooManyFieldsSent):
        return f"The form has too many fields (at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})."
    return "Bad request."


def bad_request(request, exception=None):
    if _is_admin(request):
        return defaults.bad_request(request, exception)
    return error_response(_bad_request_message(exception), 400)


def permission_denied(request, exception=None):
    if _is_admin(request):
        return defaults.permission_denied(request, exception)
    return error_response("You do not have permission to perform this action.", 403)


def page_not_found(request, exception=None):
    if _is_admin(request):
        return defaults.page_not_found(request, exception)
    return error_response(f"Not found: {request.path}", 404)


def server_error(request):
    if _is_admin(request):
        return defaults.server_error(request)
    return error_response("Internal server error.", 500)
