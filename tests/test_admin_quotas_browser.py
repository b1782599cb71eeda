"""The quota console in a real browser: Selenium drives Debian's headless Chromium (``chromium`` and
``chromium-driver``, at fixed paths, so Selenium Manager never downloads anything) against a live server
and the real Redis. The live server runs in this process, so ``fake_pipeline`` answers its /predict/.

The pages are saved as screenshots under test-artifacts/. No browser: this fails under CI=true (CI installs
it, see the Makefile's ``tools`` target) and skips elsewhere.
"""
from __future__ import annotations

import base64
import os
import urllib.request
import uuid
from pathlib import Path

import pytest

from quotas.ledger import QuotaLedger
from quotas.models import DailyLimitOverride, QuotaReset

from .conftest import ADMIN_PASSWORD, PINPIN_PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-dev-shm-usage", "--window-size=1400,900"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PAGE = "/admin/quotas/userquota/"
WAIT_SECONDS = 15


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(message: str):
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        unavailable(f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        unavailable(f"selenium is not installed ({exc}): pip install -r requirements-dev.txt")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # An explicit driver path: Selenium then never runs Selenium Manager (which would try to download one).
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


# --- helpers -------------------------------------------------------------------------------------------

def predict(base_url: str, username: str, password: str) -> int:
    """POST an image to /predict/ with Basic auth, as a client would; return the status."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="face.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\nnot really a jpeg\r\n--{boundary}--\r\n").encode()
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(f"{base_url}/predict/", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
        return response.status


def wait_for(driver, css: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def submit_and_wait(driver, button, css: str):
    """Click a button that loads a new page, and wait until that page shows ``css``."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old_page = driver.find_element("tag name", "html")
    button.click()
    WebDriverWait(driver, WAIT_SECONDS).until(expected_conditions.staleness_of(old_page))
    return wait_for(driver, css)


def log_in(driver, base_url: str, username: str, password: str, next_path: str = PAGE):
    driver.get(f"{base_url}/admin/login/?next={next_path}")
    driver.find_element("id", "id_username").send_keys(username)
    driver.find_element("id", "id_password").send_keys(password)
    submit_and_wait(driver, driver.find_element("css selector", "input[type=submit]"), "body")


def row(driver, username: str):
    return driver.find_element(
        "xpath", f"//table[@id='result_list']//tr[td[contains(@class,'field-username')][normalize-space()='{username}']]")


def cell(driver, username: str, column: str) -> str:
    return row(driver, username).find_element("css selector", f"td.field-{column}").text.strip()


def success_message(driver) -> str:
    return wait_for(driver, "ul.messagelist li.success").text


def screenshot(driver, name: str) -> Path:
    """Save the whole page as test-artifacts/<name>.png: the window is grown until the page fits in it."""
    ARTIFACTS.mkdir(exist_ok=True)
    width = driver.get_window_size()["width"]
    chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + chrome)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    return path


# --- tests ---------------------------------------------------------------------------------------------

def test_admin_sees_counts_resets_a_row_then_two_users_in_bulk(browser, live_server, real_redis, fake_pipeline,
                                                                admin_user, pinpin, django_user_model):
    from selenium.webdriver.support.ui import Select

    ledger = QuotaLedger()
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    carol = django_user_model.objects.create_user("carol")
    django_user_model.objects.create_user("ops", is_staff=True)
    DailyLimitOverride.objects.create(user=bob, daily_limit=5, reason="trial account")
    for user, count in ((alice, 2), (bob, 5), (carol, 42)):
        for _ in range(count):
            ledger.charge(user)
    assert [predict(live_server.url, "pinpin", PINPIN_PASSWORD) for _ in range(3)] == [200, 200, 200]

    log_in(browser, live_server.url, "admin", ADMIN_PASSWORD)
    wait_for(browser, "#result_list")
    assert cell(browser, "pinpin", "used") == "3"
    assert (cell(browser, "bob", "limit"), cell(browser, "bob", "remaining")) == ("5", "0")
    assert cell(browser, "pinpin", "resets").splitlines()[-1].startswith("in ")
    screenshot(browser, "admin-quotas")

    # The row button, then the confirmation page.
    row(browser, "pinpin").find_element("css selector", "a.quota-reset").click()
    assert wait_for(browser, "#quota-used").text == "3"
    screenshot(browser, "admin-quotas-confirm-row-reset")
    submit_and_wait(browser, browser.find_element("css selector", "input[value='Yes, reset']"), "#result_list")
    assert success_message(browser) == "Reset the quota of pinpin (3 used → 0)."
    assert cell(browser, "pinpin", "used") == "0"
    assert ledger.usage(pinpin).used == 0

    # Two users through the bulk action, then its confirmation page.
    for username in ("alice", "bob"):
        row(browser, username).find_element("css selector", "input.action-select").click()
    Select(browser.find_element("name", "action")).select_by_value("reset_selected")
    listing = submit_and_wait(browser, browser.find_element("css selector", "button[name=index]"),
                              "#quota-reset-list")
    assert "alice: 2 of 50 used" in listing.text and "bob: 5 of 5 used" in listing.text
    screenshot(browser, "admin-quotas-confirm-bulk-reset")
    submit_and_wait(browser, browser.find_element("css selector", "input[value='Yes, reset']"), "#result_list")
    assert success_message(browser) == "Reset the quotas of 2 users: alice (2 used → 0), bob (5 used → 0)."
    assert [cell(browser, name, "used") for name in ("alice", "bob", "carol")] == ["0", "0", "42"]
    assert [ledger.usage(user).used for user in (alice, bob, carol)] == [0, 0, 42]
    screenshot(browser, "admin-quotas-after-resets")

    records = QuotaReset.objects.order_by("pk").values_list("username", "previous_used", "actor_name", "source")
    assert list(records) == [("pinpin", 3, "admin", "admin-page"), ("alice", 2, "admin", "admin-action"),
                             ("bob", 5, "admin", "admin-action")]


def test_a_non_staff_user_cannot_open_the_page(browser, live_server, real_redis, pinpin):
    log_in(browser, live_server.url, "pinpin", PINPIN_PASSWORD)
    assert "correct username and password for a staff account" in wait_for(browser, ".errornote").text
    browser.get(f"{live_server.url}{PAGE}")
    wait_for(browser, "#login-form")
    assert "/admin/login/" in browser.current_url
    assert not browser.find_elements("id", "result_list")
