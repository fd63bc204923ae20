"""The public subscriber flow in a real headless Chromium: subscribe, confirm by email, manage, unsubscribe.

Debian's `chromium` package drives it through Playwright's `executable_path` (Playwright's own
browser downloads are not used). CI installs both: `apt-get install chromium` and
`pip install -r requirements-dev.txt` (playwright). The test is skipped only when one of them
is missing, saying which; under CI (the CI variable set, as .ci/run does) a missing one is a
failure, so CI cannot pass without driving the browser.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.core import mail

from incidents.models import Page
from subscribers import tokens
from subscribers.models import ConsentAction, ConsentEvent, ConsentSource, Subscriber, SubscriberStatus
from tests import factories

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
SCREENSHOT_DIR = os.environ.get("E2E_SCREENSHOT_DIR", "")


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test, but {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser_page(monkeypatch):
    if not CHROMIUM.exists() and not shutil.which(str(CHROMIUM)):
        _missing(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright module is missing: pip install -r requirements-dev.txt")
    # Playwright's sync API keeps an asyncio loop running in this thread, and Django refuses
    # ORM calls from a thread with a running loop (SynchronousOnlyOperation). The test's own
    # database checks are plain synchronous code, so allow them for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        context = browser.new_context()
        # Everything must come from the live server: no request may leave the machine.
        context.route(re.compile(r"^(?!http://(localhost|127\.0\.0\.1):)"), lambda route: route.abort())
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # While Playwright's loop runs, Django keys connections by context, so the test's
            # checks opened one of their own: close it, or PostgreSQL cannot drop the test database.
            from django.db import connections

            connections.close_all()


@pytest.fixture
def live_page(live_server, transactional_db) -> Page:
    page = factories.make_page(name="Acme", url=live_server.url, is_default=True)
    group = factories.make_group(page=page, name="API", position=1)
    factories.make_component(page=page, group=group, name="REST API", position=1)
    factories.make_component(page=page, name="Dashboard", position=2)
    return page


def link_in(body: str, kind: str) -> str:
    return re.search(rf"https?://\S+/subscribers/{kind}/\S+", body).group(0)


def test_subscribe_confirm_manage_and_unsubscribe_in_a_real_browser(browser_page, live_page, live_server):
    tab = browser_page

    # The status page points to the subscribe page.
    tab.goto(live_server.url + "/")
    tab.get_by_role("link", name="Subscribe to updates").click()
    tab.wait_for_url("**/subscribe")
    if SCREENSHOT_DIR:
        tab.screenshot(path=str(Path(SCREENSHOT_DIR) / "subscribe.png"), full_page=True)

    # Subscribe by email.
    tab.get_by_label("Email address").fill("ann@example.com")
    tab.locator("#id_consent").check()
    tab.get_by_role("button", name="Subscribe").click()
    tab.get_by_role("heading", name="Check your inbox").wait_for()
    ann = Subscriber.objects.get()
    assert (ann.address, ann.status, ann.all_components) == ("ann@example.com", SubscriberStatus.PENDING, True)
    assert ConsentEvent.objects.filter(subscriber=ann, action=ConsentAction.SUBSCRIBE, source=ConsentSource.PUBLIC_PAGE).count() == 1

    # The confirmation email went through the configured backend.
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ann@example.com"]
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    confirm_link = link_in(email.body, tokens.CONFIRM)
    assert confirm_link.startswith(live_server.url)

    # Opening the link only asks; the button confirms.
    tab.goto(confirm_link)
    tab.get_by_role("heading", name="Confirm your subscription").wait_for()
    ann.refresh_from_db()
    assert ann.status == SubscriberStatus.PENDING
    tab.get_by_role("button", name="Confirm subscription").click()
    tab.get_by_role("heading", name="You are subscribed").wait_for()
    ann.refresh_from_db()
    assert ann.status == SubscriberStatus.CONFIRMED and ann.confirmed_at is not None

    # Manage: hear about the Dashboard only, and no maintenance.
    tab.goto(link_in(email.body, tokens.MANAGE))
    tab.get_by_role("heading", name="Your subscription").wait_for()
    tab.get_by_label("Only the components I choose").check()
    tab.get_by_label("Dashboard").check()
    tab.get_by_label("Scheduled maintenance").uncheck()
    tab.get_by_label("Time zone").select_option("Europe/Berlin")
    tab.get_by_role("button", name="Save preferences").click()
    tab.get_by_text("Your preferences are saved.").wait_for()
    ann.refresh_from_db()
    assert ann.all_components is False
    assert [c.name for c in ann.components.all()] == ["Dashboard"]
    assert (ann.notify_incidents, ann.notify_maintenance, ann.time_zone) == (True, False, "Europe/Berlin")
    assert ConsentEvent.objects.filter(subscriber=ann, action=ConsentAction.PREFERENCES).count() == 1

    # Unsubscribe: the link asks, the button leaves.
    tab.goto(link_in(email.body, tokens.UNSUBSCRIBE))
    tab.get_by_role("heading", name="Unsubscribe").wait_for()
    ann.refresh_from_db()
    assert ann.status == SubscriberStatus.CONFIRMED
    tab.get_by_role("button", name="Unsubscribe").click()
    tab.get_by_role("heading", name="You are unsubscribed").wait_for()
    ann.refresh_from_db()
    assert ann.status == SubscriberStatus.UNSUBSCRIBED and ann.unsubscribed_at is not None
    event = ConsentEvent.objects.get(subscriber=ann, action=ConsentAction.UNSUBSCRIBE)
    assert event.source == ConsentSource.PUBLIC_PAGE
