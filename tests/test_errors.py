"""The one error shape, and the upload size limit that answers 413 before reading the body."""
from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.test.client import BOUNDARY, encode_multipart

MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"  # pre-encoded body: the client must not re-encode it

from genderapi.middleware import UploadSizeLimitMiddleware
from genderapi.uploads import SizeLimitedUploadHandler, UploadTooLarge


class ExplodingStream(io.RawIOBase):
    def read(self, *args):
        raise AssertionError("the body was read")


def test_content_length_over_the_limit_gets_413_without_reading_the_body(settings):
    settings.MAX_UPLOAD_BYTES = 1000
    request = RequestFactory().post("/predict/", data=b"", content_type="application/octet-stream")
    request.META["CONTENT_LENGTH"] = "1001"
    request.META["wsgi.input"] = ExplodingStream()
    request._stream = ExplodingStream()
    response = UploadSizeLimitMiddleware(lambda r: pytest.fail("the view ran"))(request)
    assert response.status_code == 413
    assert "1000" in json.loads(response.content)["error"]


def test_oversized_upload_gets_413_json_before_authentication(client, settings, fake_pipeline):
    settings.MAX_UPLOAD_BYTES = 1000
    response = client.post("/predict/", {"file": SimpleUploadedFile("a.jpg", b"x" * 2000)})
    assert response.status_code == 413
    assert list(response.json()) == ["error"]
    assert response["X-Request-ID"]
    assert fake_pipeline.received == []


def test_body_at_the_limit_passes_and_one_byte_more_gets_413(client, settings, pinpin_auth, fake_pipeline):
    body = encode_multipart(BOUNDARY, {"file": SimpleUploadedFile("a.jpg", b"x" * 500)})
    settings.MAX_UPLOAD_BYTES = len(body)
    assert client.post("/predict/", body, content_type=MULTIPART, **pinpin_auth).status_code == 200
    settings.MAX_UPLOAD_BYTES = len(body) - 1
    assert client.post("/predict/", body, content_type=MULTIPART, **pinpin_auth).status_code == 413


def test_chunked_body_without_content_length_gets_411_json(client, pinpin_auth, fake_pipeline):
    response = client.generic("POST", "/predict/", b"", CONTENT_TYPE="multipart/form-data; boundary=x",
                              HTTP_TRANSFER_ENCODING="chunked", **pinpin_auth)
    assert response.status_code == 411
    assert "Content-Length" in response.json()["error"]
    assert fake_pipeline.received == []


def test_invalid_content_length_gets_400_json(client):
    response = client.generic("POST", "/predict/", b"", CONTENT_LENGTH="abc")
    assert response.status_code == 400
    assert "Content-Length" in response.json()["error"]


def test_upload_handler_raises_once_the_files_pass_the_limit(settings):
    settings.MAX_UPLOAD_BYTES = 100
    handler = SizeLimitedUploadHandler()
    assert handler.receive_data_chunk(b"x" * 60, 0) == b"x" * 60
    with pytest.raises(UploadTooLarge):
        handler.receive_data_chunk(b"x" * 41, 60)


def test_upload_handler_answers_413_json_when_the_middleware_lets_a_body_through(
        client, settings, pinpin_auth, fake_pipeline):
    # Without the Content-Length check (as for a body whose length was not declared up front), the
    # handler still stops the upload as it streams in.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("UploadSizeLimitMiddleware")]
    settings.MAX_UPLOAD_BYTES = 100
    response = client.post("/predict/", {"file": SimpleUploadedFile("a.jpg", b"x" * 500)}, **pinpin_auth)
    assert response.status_code == 413
    assert response.json() == {"error": "Uploaded file too large: the limit is 100 bytes."}
    assert fake_pipeline.received == []


def test_unknown_path_gets_404_json(client):
    response = client.get("/nope/")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found: /nope/"}


def test_admin_paths_keep_html_404(client):
    response = client.get("/admin/nope/", follow=False)
    assert "application/json" not in response["Content-Type"]


def test_method_not_allowed_gets_405_json(client, pinpin_auth):
    response = client.delete("/quota/", **pinpin_auth)
    assert response.status_code == 405
    assert response.json() == {"error": 'Method "DELETE" not allowed.'}


def test_disallowed_host_gets_400_json_naming_the_setting(client):
    response = client.get("/quota/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "DJANGO_ALLOWED_HOSTS" in response.json()["error"]


def test_a_form_with_too_many_files_gets_400_saying_so(client, pinpin_auth, settings, fake_pipeline):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    files = [SimpleUploadedFile(f"{i}.jpg", b"x") for i in range(4)]
    response = client.post("/predict/", {"file": files[0], "other": files[1:]}, **pinpin_auth)
    assert response.status_code == 400
    assert response.json()["error"].startswith("The form has too many files (at most 3)")
    assert fake_pipeline.received == []
    assert client.get("/quota/", **pinpin_auth).json()["used"] == 0  # refused input costs nothing


def test_a_form_with_too_many_fields_gets_400_saying_so(client, pinpin_auth, settings, fake_pipeline):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"f{i}": "v" for i in range(6)}
    response = client.post("/predict/", {"file": SimpleUploadedFile("a.jpg", b"x"), **fields}, **pinpin_auth)
    assert response.status_code == 400
    assert response.json() == {"error": "The form has too many fields (at most 5)."}
    assert client.get("/quota/", **pinpin_auth).json()["used"] == 0
