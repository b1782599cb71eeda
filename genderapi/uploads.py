"""An upload handler that stops a multipart body once its files pass ``MAX_UPLOAD_BYTES``.

The middleware already refuses a declared Content-Length over the limit; this handler is the second line,
for bodies whose size is only known while reading them. It sits first in ``FILE_UPLOAD_HANDLERS``.
"""
from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework.exceptions import APIException


class UploadTooLarge(APIException):
    status_code = 413
    default_detail = "Uploaded file too large."
    default_code = "upload_too_large"


class SizeLimitedUploadHandler(FileUploadHandler):
    """Count the bytes of every file in the request and raise :class:`UploadTooLarge` past the limit.

    It passes each chunk on unchanged, so the next handler stores the file as usual.
    """

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        limit = settings.MAX_UPLOAD_BYTES
        if self.received > limit:
            raise UploadTooLarge(f"Uploaded file too large: the limit is {limit} bytes.")
        return raw_data

    def file_complete(self, file_size):
        return None
