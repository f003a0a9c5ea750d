"""Chat controls in headless Chromium against the app as `make run` serves it, with the fake
DeepSeek: one question in flight (Enter does not send while an answer streams, the button is
Stop meanwhile), Copy gives the answer with its numbered sources as plain text, feedback icons
are inline SVG with labels, Esc closes the source panel and focus returns to the chip; Stop ends
the answer as stopped and the button is Ask again; Regenerate replaces the last answer and Edit
the last question (neither offered while an answer streams), also after a reload."""

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


LONG = (
    "Receipts for travel must be handed in to the finance team together with the claim form "
    "and they must be submitted within thirty days of travel [1]."
)


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.keyboard.press("Enter")


def wait_done(page, count: int = 1) -> None:
    """Until ``count`` answers are checked (a checked answer has no draft left)."""
    page.wait_for_function(
        "(n) => document.querySelectorAll('.msg.assistant .msg-meta .badge').length === n"
        " && !document.querySelector('.msg.assistant .answer.streaming')",
        arg=count,
    )


def test_stop_ends_the_answer_marked_stopped_and_ask_returns(page, app):
    app.deepseek.enqueue(Reply(answer=LONG, delay=0.25))  # ~6 s: time to stop it
    ask(page, RECEIPTS)
    draft = page.locator(".msg.assistant .answer.provisional")
    page.wait_for_function(
        "() => (document.querySelector('.msg.assistant .answer.provisional') || {})"
        ".textContent?.includes('travel')"
    )
    send = page.locator("#send")
    assert send.inner_text() == "Stop"
    send.click()

    note = page.locator(".msg.assistant .status-note", has_text="You stopped this answer")
    note.wait_for(timeout=15_000)
    assert send.inner_text() == "Ask" and send.get_attribute("aria-label") is None
    assert draft.count() == 0  # the recorded answer replaced the draft
    written = page.locator(".msg.assistant .answer").inner_text().strip()
    assert written and LONG.startswith(written) and len(written) < len(LONG)
    assert page.locator(".msg.assistant .regenerate").is_visible()  # it may be asked again

    page.reload()  # recorded as stopped, with what was written
    assert "You stopped this answer" in page.locator(".msg.assistant").inner_text()
    assert page.locator(".msg.assistant .answer").inner_text().strip() == written


def test_regenerate_replaces_the_answer_and_edit_replaces_the_question(page, app):
    first = "Receipts must be submitted within thirty days of travel [1]."
    second = "Within thirty days of travel, receipts must be submitted [1]."
    edited_question = "Which class do I fly on short flights?"
    third = "Economy class is required for flights shorter than six hours [1]."
    app.deepseek.enqueue(Reply(answer=first))
    ask(page, RECEIPTS)
    wait_done(page)
    answers, questions = page.locator(".msg.assistant"), page.locator(".msg.user")
    assert "thirty days of travel" in answers.inner_text()

    app.deepseek.enqueue(Reply(answer=second, delay=0.1))
    answers.get_by_role("button", name="Regenerate this answer").click()
    page.locator(".msg.assistant .answer.provisional").wait_for()
    assert page.locator(".msg.assistant:visible").count() == 1  # the old one is hidden at once
    assert page.locator(".msg-actions .regenerate:visible").count() == 0  # none while streaming
    assert page.locator(".msg-actions .edit-question:visible").count() == 0
    wait_done(page)
    assert answers.count() == 1 and "Within thirty days" in answers.inner_text()
    assert questions.count() == 1 and questions.inner_text().strip() == RECEIPTS
    assert RECEIPTS in str(app.deepseek.requests[-1]["messages"])  # the same question again

    questions.get_by_role("button", name="Edit and ask again").click()
    assert page.input_value("#question") == RECEIPTS
    assert page.locator("#edit-banner").is_visible()
    assert page.evaluate("document.activeElement.id") == "question"
    app.deepseek.enqueue(Reply(answer=third))
    ask(page, edited_question)
    wait_done(page)
    assert page.locator("#edit-banner").is_hidden()
    assert questions.count() == 1 and questions.inner_text().strip() == edited_question
    assert answers.count() == 1 and "Economy class" in answers.inner_text()
    sent = str(app.deepseek.requests[-1]["messages"])
    assert edited_question in sent and RECEIPTS not in sent  # the old question stepped aside

    page.reload()  # what was replaced is kept on the server, not shown
    wait_done(page)
    assert questions.count() == 1 and questions.inner_text().strip() == edited_question
    assert answers.count() == 1 and "Economy class" in answers.inner_text()
