"""POST /predict/: quota first, then the upload, then the (fake) pipeline; refunds and headers."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions import runtime
from predictions.ml.errors import (ImageRejected, ImageTooLarge, InvalidImage, NoFaceFound,
                                   UnsupportedImageFormat)
from quotas.ledger import QuotaLedger
from quotas.models import DailyLimitOverride

from .conftest import basic_auth

IMAGE = b"\x89PNG fake image bytes"
QUOTA_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Policy",
                 "RateLimit")


def post_image(client, auth, data=IMAGE, field="file", path="/predict/", **extra):
    return client.post(path, {field: SimpleUploadedFile("face.jpg", data, "image/jpeg")}, **auth, **extra)


@pytest.fixture
def limit(settings):
    settings.QUOTA_DAILY_LIMIT = 3
    return 3


def test_it_returns_the_analysis_with_request_id_and_quota(client, pinpin_auth, fake_pipeline, limit):
    response = post_image(client, pinpin_auth)
    assert response.status_code == 200
    body = response.json()
    assert body["gender"] == "female" and body["faces"][0]["box"]["width"] == 30
    assert body["request_id"] == response["X-Request-ID"]
    assert body["quota"]["used"] == 1 and body["quota"]["remaining"] == limit - 1
    assert fake_pipeline.received == [IMAGE]


def test_a_remembered_sign_in_and_its_charge_cost_one_database_query(client, pinpin, pinpin_auth, fake_pipeline,
                                                                     django_assert_num_queries):
    DailyLimitOverride.objects.create(user=pinpin, daily_limit=7)
    assert post_image(client, pinpin_auth).status_code == 200  # the password is checked once
    with django_assert_num_queries(1):
        response = post_image(client, pinpin_auth)
    assert response.status_code == 200 and response["X-RateLimit-Limit"] == "7"


def test_it_accepts_the_path_without_trailing_slash(client, pinpin_auth, fake_pipeline):
    assert post_image(client, pinpin_auth, path="/predict").status_code == 200


def test_it_sets_rate_limit_headers(client, pinpin_auth, fake_pipeline, limit):
    response = post_image(client, pinpin_auth)
    state = QuotaLedger().usage(response.wsgi_request.user)
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "2"
    assert response["X-RateLimit-Reset"] == str(int(state.resets_at.timestamp()))
    assert response["RateLimit-Policy"] == '"daily";q=3;w=86400'
    assert response["RateLimit"] == f'"daily";r=2;t={state.seconds_to_reset}'


def test_it_echoes_a_sane_request_id_and_replaces_a_bad_one(client, pinpin_auth, fake_pipeline):
    sane = post_image(client, pinpin_auth, HTTP_X_REQUEST_ID="abc-123")
    assert sane["X-Request-ID"] == "abc-123" and sane.json()["request_id"] == "abc-123"
    bad = post_image(client, pinpin_auth, HTTP_X_REQUEST_ID="<script>" * 20)
    assert len(bad["X-Request-ID"]) == 32 and bad.json()["request_id"] == bad["X-Request-ID"]


def test_it_refuses_over_quota_with_429_and_never_runs_the_model(client, pinpin_auth, fake_pipeline, limit):
    for _ in range(limit):
        assert post_image(client, pinpin_auth).status_code == 200
    response = post_image(client, pinpin_auth)
    assert response.status_code == 429
    assert "quota" in response.json()["error"].lower()
    assert set(response.json()) == {"error"}
    assert 1 <= int(response["Retry-After"]) <= 86400 + 3600
    assert response["X-RateLimit-Remaining"] == "0"
    assert response["RateLimit"].startswith('"daily";r=0;t=')
    assert len(fake_pipeline.received) == limit


def test_quota_is_per_user(client, pinpin_auth, admin_auth, fake_pipeline, limit):
    for _ in range(limit):
        post_image(client, pinpin_auth)
    assert post_image(client, admin_auth).status_code == 200


@pytest.mark.parametrize("error", [
    InvalidImage("The file is not an image."),
    UnsupportedImageFormat("HEIC is not supported."),
    ImageTooLarge("Too many pixels."),
    NoFaceFound("No face was found in the image."),
], ids=lambda e: type(e).__name__)
def test_it_maps_pipeline_rejections_to_their_status_and_refunds(client, pinpin_auth, fake_pipeline, error):
    fake_pipeline.error = error
    response = post_image(client, pinpin_auth)
    assert response.status_code == error.status
    assert response.json() == {"error": str(error)}
    assert response["X-RateLimit-Remaining"] == response["X-RateLimit-Limit"]
    assert QuotaLedger().usage(response.wsgi_request.user).used == 0


def test_it_maps_any_image_rejected_subclass_by_its_status(client, pinpin_auth, fake_pipeline):
    class Teapot(ImageRejected):
        status = 418

    fake_pipeline.error = Teapot("I'm a teapot.")
    assert post_image(client, pinpin_auth).status_code == 418


@pytest.mark.parametrize("field", ["image", "files"])
def test_it_rejects_another_field_name_with_400_and_refunds(client, pinpin_auth, fake_pipeline, field):
    response = post_image(client, pinpin_auth, field=field)
    assert response.status_code == 400
    assert '"file"' in response.json()["error"]
    assert QuotaLedger().usage(response.wsgi_request.user).used == 0
    assert fake_pipeline.received == []


def test_it_rejects_an_empty_file_with_400(client, pinpin_auth, fake_pipeline):
    response = post_image(client, pinpin_auth, data=b"")
    assert response.status_code == 400
    assert "error" in response.json()
    assert fake_pipeline.received == []


def test_it_rejects_a_post_without_body_with_400(client, pinpin_auth, fake_pipeline):
    response = client.post("/predict/", **pinpin_auth)
    assert response.status_code == 400
    assert response["X-RateLimit-Remaining"]


def test_a_raw_image_body_gets_415_saying_how_to_send_the_form_and_costs_nothing(
        client, pinpin, pinpin_auth, fake_pipeline):
    response = client.post("/predict/", data=b"\xff\xd8\xff", content_type="image/jpeg", **pinpin_auth)
    assert response.status_code == 415
    assert response.json() == {"error": 'Send the image as multipart/form-data with a file field named "file" '
                                        '(curl -F "file=@photo.jpg"); this request\'s Content-Type is '
                                        "'image/jpeg'."}
    assert QuotaLedger().usage(pinpin).used == 0 and fake_pipeline.received == []


def test_two_files_in_one_form_get_400_instead_of_one_being_picked(client, pinpin, pinpin_auth, fake_pipeline):
    files = [SimpleUploadedFile("a.jpg", b"one"), SimpleUploadedFile("b.jpg", b"two")]
    response = client.post("/predict/", {"file": files}, **pinpin_auth)
    assert response.status_code == 400
    assert response.json() == {"error": 'Send one image per request: the form has 2 files named "file".'}
    assert QuotaLedger().usage(pinpin).used == 0 and fake_pipeline.received == []


def test_it_answers_503_and_refunds_when_the_model_cannot_load(client, pinpin_auth, monkeypatch):
    monkeypatch.setattr(runtime, "load_pipeline", lambda: (_ for _ in ()).throw(FileNotFoundError("model.h5")))
    response = post_image(client, pinpin_auth)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "model" in response.json()["error"]
    assert QuotaLedger().usage(response.wsgi_request.user).used == 0


def test_it_answers_503_with_retry_after_when_redis_is_down(client, pinpin_auth, fake_pipeline, broken_redis):
    response = post_image(client, pinpin_auth)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "quota" in response.json()["error"]
    assert fake_pipeline.received == []


def test_it_refunds_and_answers_json_500_on_an_unexpected_error(client, pinpin_auth, fake_pipeline):
    fake_pipeline.error = ZeroDivisionError("bug")
    client.raise_request_exception = False
    response = post_image(client, pinpin_auth)
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error."}
    assert QuotaLedger().usage(response.wsgi_request.user).used == 0


def test_it_requires_authentication_and_charges_nothing(client, pinpin, fake_pipeline):
    response = post_image(client, {})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="genderapi"'
    assert QuotaLedger().usage(pinpin).used == 0


def test_it_refuses_get_with_405_json(client, pinpin_auth):
    response = client.get("/predict/", **pinpin_auth)
    assert response.status_code == 405
    assert "error" in response.json()


def test_it_counts_a_charge_per_successful_prediction(client, fake_pipeline, pinpin):
    auth = basic_auth("pinpin", "azerty")
    for _ in range(2):
        post_image(client, auth)
    assert QuotaLedger().usage(pinpin).used == 2


def test_a_user_whose_daily_limit_is_zero_is_told_they_are_blocked_not_to_wait(
        client, pinpin, pinpin_auth, fake_pipeline):
    from quotas.models import DailyLimitOverride

    DailyLimitOverride.objects.create(user=pinpin, daily_limit=0)
    response = post_image(client, pinpin_auth)
    assert response.status_code == 429
    assert response.json() == {
        "error": "This account's daily limit is 0: predictions are blocked; ask an administrator."}
    assert "Retry-After" not in response
    assert fake_pipeline.received == []


@pytest.fixture
def refused_cap(settings):
    settings.QUOTA_REFUSED_PER_HOUR = 2
    return 2


def test_past_the_refused_uploads_cap_a_user_gets_429_before_the_upload_is_read(
        client, pinpin, pinpin_auth, admin_auth, fake_pipeline, refused_cap):
    fake_pipeline.error = NoFaceFound("No face was found in the image.")
    assert [post_image(client, pinpin_auth).status_code for _ in range(refused_cap)] == [422, 422]
    fake_pipeline.error = None
    fake_pipeline.received.clear()
    response = post_image(client, pinpin_auth)  # a good photo, now refused too
    assert response.status_code == 429
    assert response.json()["error"].startswith("Too many refused uploads")
    assert 0 < int(response["Retry-After"]) <= 3600
    assert fake_pipeline.received == []
    assert QuotaLedger().usage(pinpin).used == 0  # nothing charged, nothing lost
    assert post_image(client, admin_auth).status_code == 200  # others are not affected


def test_refused_forms_count_towards_the_cap_but_server_failures_do_not(client, pinpin_auth, fake_pipeline,
                                                                        refused_cap):
    fake_pipeline.error = runtime.PipelineUnavailable("model missing")
    assert [post_image(client, pinpin_auth).status_code for _ in range(3)] == [503, 503, 503]
    fake_pipeline.error = None
    assert [post_image(client, pinpin_auth, field="image").status_code for _ in range(2)] == [400, 400]
    assert post_image(client, pinpin_auth).status_code == 429


def test_a_zero_refused_uploads_cap_turns_it_off(client, pinpin_auth, fake_pipeline, settings):
    settings.QUOTA_REFUSED_PER_HOUR = 0
    fake_pipeline.error = NoFaceFound("No face was found in the image.")
    assert {post_image(client, pinpin_auth).status_code for _ in range(5)} == {422}
