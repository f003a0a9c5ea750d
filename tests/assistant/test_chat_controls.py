"""Chat controls in headless Chromium against the app as `make run` serves it, with the fake
DeepSeek: one question in flight (Enter does not send while an answer streams, the button is
Stop meanwhile), Copy gives the answer with its numbered sources as plain text, feedback icons
are inline SVG with labels, Esc closes the source panel and focus returns to the chip."""

from types import SimpleNamespace

import pytest

from tests.docs import make_pdf
from tests.fakes.deepseek import FakeDeepSeek, Reply
from tests.live import PASSWORD, Server, embedded_env, manage

from .conftest import HANDBOOK
from .test_browser import RECEIPTS, browser  # noqa: F401  (the Chromium fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("controls")
    with FakeDeepSeek(api_key="sk-controls") as deepseek:
        env = embedded_env(
            tmp / "data",
            DEEPSEEK_API_KEY="sk-controls",
            DEEPSEEK_BASE_URL=deepseek.base_url,
            ANSWER_CACHE="false",
        )
        manage(env, "migrate", "--noinput")
        manage(env, "ensure_admin")
        (tmp / "handbook.pdf").write_bytes(make_pdf(HANDBOOK))
        manage(env, "ingest", str(tmp / "handbook.pdf"), "--sync")
        server = Server(env)
        try:
            yield SimpleNamespace(server=server, deepseek=deepseek)
        finally:
            server.stop()


@pytest.fixture
def page(browser, app):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.server.url)
    page = context.new_page()
    page.goto(f"{app.server.url}/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{app.server.url}/")
    yield page
    context.close()


def test_one_question_in_flight_then_copy_feedback_and_escape(page, app):
    app.deepseek.enqueue(
        Reply(answer="Receipts must be submitted within thirty days of travel [1].", delay=0.15)
    )
    assert page.evaluate("document.activeElement.id") == "question"  # autofocus
    page.keyboard.type(RECEIPTS)
    page.keyboard.press("Enter")
    page.locator(".msg.assistant .answer.provisional").wait_for()  # streaming
    send = page.locator("#send")
    assert send.inner_text() == "Stop" and send.get_attribute("aria-label") == "Stop the answer"
    page.keyboard.type("A second question while the first streams")
    page.keyboard.press("Enter")  # not sent: one question in flight
    page.locator(".msg.assistant button.cite").first.wait_for()  # done
    assert page.locator(".msg.user").count() == 1
    assert len(app.deepseek.requests) == 1
    assert send.inner_text() == "Ask"
    assert page.input_value("#question") == "A second question while the first streams"

    actions = page.locator(".msg.assistant .msg-actions")
    for label in ("Helpful", "Not helpful", "Copy the answer with its sources"):
        button = actions.get_by_role("button", name=label, exact=True)
        assert button.locator("svg").count() == 1 and button.inner_text().strip() == ""
    actions.get_by_role("button", name="Copy the answer with its sources").click()
    actions.locator(".done-note").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("Receipts must be submitted within thirty days of travel [1].")
    assert "\n\nSources:\n[1] handbook.pdf, page 2" in copied

    actions.get_by_role("button", name="Helpful", exact=True).click()
    page.wait_for_function(
        "() => document.querySelector('.msg.assistant .thumb-up')"
        ".getAttribute('aria-pressed') === 'true'"
    )

    chip = page.locator(".msg.assistant button.cite").first
    chip.focus()
    page.keyboard.press("Enter")
    page.locator("#source-panel").wait_for(state="visible")
    page.keyboard.press("Escape")
    page.locator("#source-panel").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('cite')")
