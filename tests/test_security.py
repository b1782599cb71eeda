"""Who may reach what, what never reaches a log, and the production settings against ``check --deploy``."""
from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from quotas.ledger import QuotaLedger

from .conftest import basic_auth

ROOT = Path(__file__).resolve().parent.parent


def test_passwords_and_authorization_headers_never_reach_the_logs_at_debug(
        client, pinpin, pinpin_auth, fake_pipeline, settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.AUTH_LOCKOUT_USER_FAILURES = 2
    wrong = basic_auth("pinpin", "s3cr3t-guess")

    def predict(auth):
        return client.post("/predict/", {"file": SimpleUploadedFile("a.jpg", b"img")}, **auth).status_code

    assert predict(pinpin_auth) == 200
    assert [predict(wrong), predict(wrong), predict(wrong)] == [401, 401, 429]  # failures, then the lock
    assert predict(basic_auth("nobody", "another-s3cret")) == 401
    assert client.get("/quota/", HTTP_AUTHORIZATION="Basic " + "!" * 20).status_code == 401

    records = caplog.records
    assert any("sign-in failed: user='pinpin'" in r.getMessage() for r in records)
    assert any("sign-in failed: user='nobody'" in r.getMessage() for r in records)
    logged = caplog.text + "".join(str(r.__dict__) for r in records)
    for secret in ("azerty", "s3cr3t-guess", "another-s3cret", pinpin_auth["HTTP_AUTHORIZATION"].split()[1],
                   wrong["HTTP_AUTHORIZATION"].split()[1]):
        assert secret not in logged


def test_a_500_is_logged_without_the_authorization_header(client, pinpin_auth, fake_pipeline, caplog):
    caplog.set_level(logging.DEBUG)
    fake_pipeline.error = ZeroDivisionError("a bug")
    client.raise_request_exception = False
    response = client.post("/predict/", {"file": SimpleUploadedFile("a.jpg", b"img")}, **pinpin_auth)
    assert response.status_code == 500 and response.json() == {"error": "Internal server error."}
    assert "ZeroDivisionError" in caplog.text
    assert "azerty" not in caplog.text and pinpin_auth["HTTP_AUTHORIZATION"].split()[1] not in caplog.text


@pytest.mark.parametrize("method, path", [("get", "/user/admin/quota"), ("post", "/user/admin/reset_quota"),
                                          ("get", "/users/quotas/")])
def test_a_user_cannot_read_or_reset_another_users_quota(client, pinpin_auth, admin_user, method, path):
    QuotaLedger().charge(admin_user)
    response = getattr(client, method)(path, **pinpin_auth)
    assert response.status_code == 403 and list(response.json()) == ["error"]
    assert QuotaLedger().usage(admin_user).used == 1


def test_a_non_staff_user_cannot_sign_in_to_the_admin(pinpin):
    browser = Client()
    page = browser.post("/admin/login/?next=/admin/", {"username": "pinpin", "password": "azerty"})
    assert page.status_code == 200 and "staff account" in page.content.decode()
    assert browser.get("/admin/").status_code == 302


def test_the_admin_does_not_accept_basic_auth(client, admin_auth):
    response = client.get("/admin/", **admin_auth)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_with_ssl_redirect_on_the_api_redirects_to_https_but_the_probes_do_not(client, pinpin_auth, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/quota/", **pinpin_auth)
    assert response.status_code == 301 and response["Location"].startswith("https://")
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503  # answered (no pipeline here), not redirected


def check_deploy(tmp_path, **env) -> tuple[int, set]:
    """``manage.py check --deploy --fail-level WARNING`` with the production environment of docker-compose.yml."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "QUOTA_", "REDIS_URL"))}
    environ.update(DJANGO_SECRET_KEY=secrets.token_urlsafe(50), REDIS_URL="redis://redis:6379/0",
                   DATABASE_PATH=str(tmp_path / "db.sqlite3"), DJANGO_ALLOWED_HOSTS="api.example.com", **env)
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
    return result.returncode, set(re.findall(r"\((\w+\.\w+)\)", result.stdout + result.stderr))


def test_production_settings_fail_check_deploy_only_on_what_tls_termination_covers(tmp_path):
    code, issues = check_deploy(tmp_path)
    assert code != 0
    # HSTS, the HTTPS redirect and secure cookies: set by the TLS proxy, or by the DJANGO_SECURE_* variables.
    assert issues == {"security.W004", "security.W008", "security.W012", "security.W016"}


def test_production_settings_pass_check_deploy_behind_https(tmp_path):
    code, issues = check_deploy(tmp_path, DJANGO_SECURE_PROXY_SSL_HEADER="true", DJANGO_SECURE_SSL_REDIRECT="true",
                                DJANGO_SECURE_HSTS_SECONDS="31536000", DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
                                DJANGO_SECURE_HSTS_PRELOAD="true", DJANGO_SECURE_COOKIES="true")
    assert (code, issues) == (0, set())
