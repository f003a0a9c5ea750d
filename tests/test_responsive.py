"""The app as `make run` serves it (DEBUG off) at phone and desktop widths, in headless Chromium:
no page scrolls sideways, every control of the chat, Documents, Search and Audit pages can be
seen and reached (at 375 px after opening the menu or the conversation drawer), static files
are served without DEBUG, and errors are the app's own pages, never a traceback."""

from types import SimpleNamespace

import httpx
import pytest

from tests.assistant.test_browser import TRAVEL_MD, browser  # noqa: F401  (the Chromium fixture)
from tests.live import PASSWORD, Server, embedded_env, manage

pytestmark = pytest.mark.slow

PAGES = ["/", "/documents/", "/search/?q=meal+allowance", "/evaluation/"]
PHONE, DESKTOP = {"width": 375, "height": 740}, {"width": 1280, "height": 800}
NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"
# what sticks out, for the failure message
WIDE = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 5).map(e => e.tagName + '.' + e.className)"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("responsive")
    env = embedded_env(tmp / "data")
    env.pop("DEBUG", None)  # the default: off
    manage(env, "migrate", "--noinput")
    assert "Created the first admin" in manage(env, "ensure_admin").stdout
    again = manage(env, "ensure_admin").stdout
    assert "already exists ('admin')" in again and "changepassword admin" in again
    (tmp / "travel.md").write_text(TRAVEL_MD)
    manage(env, "ingest", str(tmp / "travel.md"), "--sync")
    manage(env, "users", "create", "aud", "--role", "auditor", "--password", PASSWORD)
    server = Server(env)
    try:
        yield SimpleNamespace(server=server, tmp=tmp)
    finally:
        server.stop()


def logged_in(browser, app, viewport, username="admin"):  # noqa: F811
    page = browser.new_page(viewport=viewport)
    page.goto(f"{app.server.url}/login/")
    assert page.evaluate(NO_OVERFLOW), "the login page scrolls sideways"
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)
    return page


def controls(page):
    """Every enabled, shown control in the page's main part."""
    return page.locator(
        "main a[href]:visible, main button:visible, main input:not([type=hidden]):visible, "
        "main select:visible, main textarea:visible"
    )


def assert_reachable(page, where: str) -> None:
    found = controls(page)
    assert found.count() > 0, where
    for i in range(found.count()):
        control = found.nth(i)
        box = control.bounding_box()
        width = page.viewport_size["width"]
        assert (
            box and box["width"] > 0 and box["x"] >= -1 and box["x"] + box["width"] <= width + 1
        ), (
            where,
            control.evaluate("e => e.outerHTML.slice(0, 120)"),
            box,
        )


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375px", "1280px"])
def test_no_page_scrolls_sideways_and_every_control_is_reachable(browser, app, viewport):  # noqa: F811
    page = logged_in(browser, app, viewport)
    try:
        for path in PAGES:
            page.goto(app.server.url + path)
            assert page.evaluate(NO_OVERFLOW), (path, page.evaluate(WIDE))
            if path != "/evaluation/":
                assert_reachable(page, path)
        nav = page.locator("#site-nav")
        if viewport is PHONE:
            assert nav.is_hidden()
            page.click(".nav-toggle")
        for name in ("Ask", "Search", "Documents", "Evaluation"):
            assert nav.get_by_role("link", name=name, exact=True).is_visible()
        page.keyboard.press("Escape")
    finally:
        page.close()
    page = logged_in(browser, app, viewport, username="aud")  # the audit list and a record
    try:
        page.goto(f"{app.server.url}/audit/?kind=all")
        assert page.evaluate(NO_OVERFLOW), page.evaluate(WIDE)
        assert_reachable(page, "/audit/")
        page.locator(".audit-table td.num a").first.click()
        page.wait_for_load_state()
        assert page.evaluate(NO_OVERFLOW), ("record", page.evaluate(WIDE))
        assert_reachable(page, page.url)
    finally:
        page.close()


def test_phone_chat_drawer_and_keyboard(browser, app):  # noqa: F811
    page = logged_in(browser, app, PHONE)
    try:
        # autofocus, and an empty chat that says what there is to ask about
        assert page.evaluate("document.activeElement.id") == "question"
        assert "General (1 document)" in page.locator("#welcome").inner_text()
        assert page.locator("button.example").count() >= 1
        drawer = page.locator("#conversation-drawer")
        new_chat = drawer.locator(".new-chat")
        assert not new_chat.is_visible()  # a closed drawer, off screen
        page.click("#drawer-toggle")
        new_chat.wait_for(state="visible")
        assert page.locator("#drawer-toggle").get_attribute("aria-expanded") == "true"
        assert page.evaluate("document.activeElement.className") == "new-chat"
        page.keyboard.press("Escape")
        page.wait_for_function("() => !document.querySelector('#conversation-drawer.open')")
        assert page.evaluate("document.activeElement.id") == "drawer-toggle"
        for selector in ("#question", "#collection", "#model", "#send"):
            assert page.locator(selector).is_visible()
    finally:
        page.close()


def test_static_files_and_error_pages_without_debug(app):
    css = httpx.get(f"{app.server.url}/static/css/app.css")
    assert css.status_code == 200 and ".chat-layout" in css.text
    missing = httpx.get(f"{app.server.url}/no/such/page/")
    assert missing.status_code == 404
    assert "Page not found" in missing.text and "/static/css/app.css" in missing.text
    assert "Traceback" not in missing.text and "URLconf" not in missing.text
