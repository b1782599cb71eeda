"""Middleware that must run before any view: request ids and the upload size limit."""
from __future__ import annotations

import re
import uuid

from django.conf import settings

from .errors import error_response

# An incoming X-Request-ID is echoed only if it is short and made of safe characters (it ends up in logs).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIDMiddleware:
    """Give every request an id (``request.request_id``) and return it in the ``X-Request-ID`` header.

    A sane incoming ``X-Request-ID`` (from a proxy or the client) is kept so logs line up across hops;
    anything else is replaced by a fresh uuid4 hex.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class UploadSizeLimitMiddleware:
    """Refuse, with 413, a request whose declared Content-Length exceeds ``MAX_UPLOAD_BYTES``.

    It looks only at the headers, so the body is never read. A chunked body without Content-Length gets
    411: Django reads at most Content-Length bytes, so it would otherwise see an empty body. Whatever gets
    through is still bounded by :class:`genderapi.uploads.SizeLimitedUploadHandler`.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.MAX_UPLOAD_BYTES
        declared = request.META.get("CONTENT_LENGTH") or ""
        if not declared:
            if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
                return error_response("Send the request with a Content-Length header, not chunked.", 411)
            declared = "0"
        try:
            length = int(declared)
        except ValueError:
            return error_response("Invalid Content-Length header.", 400)
        if length > limit:
            return error_response(
                f"Request body too large: {length} bytes, the limit is {limit} bytes.", 413)
        return self.get_response(request)
