"""A person's journey in headless Chromium against the app as `make run` serves it (ASGI), with
DEEPSEEK_BASE_URL pointing at the fake DeepSeek server: log in, ask, watch the answer stream as
a draft being checked, open a citation at its page, expand the reasoning; read quoted, withheld
and nothing-found answers with the passages they list."""

import os
import shutil
from types import SimpleNamespace

import pytest

from tests.docs import make_pdf
from tests.fakes.deepseek import FakeDeepSeek, Hang, Reply
from tests.live import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    Server,
    answer_offline,
    embedded_env,
    manage,
)

from .conftest import HANDBOOK

pytestmark = pytest.mark.slow

RECEIPTS = "How long do I have to hand in my travel receipts?"
TRAVEL_MD = """# Travel and expenses

## 3 Claims

### 3.1 Meal allowance

The daily meal allowance is 45 EUR in Europe and 60 EUR elsewhere. Alcohol is never reimbursed.

### 3.2 Hotels

Hotel rooms up to 150 EUR per night need no prior approval.
"""
# Answered before the app serves, by the real pipeline with the offline model scripted to say
# something the passages do not support: quotes replace it, or nothing does.
OFFLINE = {
    "extractive": (RECEIPTS, "Hotels cost five hundred euros per night [1]."),
    "withheld": (
        "Which airline do we fly with and who pays for the hotel breakfast?",
        "Lufthansa pays for breakfast [1].",
    ),
    "no_sources": ("What is the capital of France?", "Paris [1]."),
}


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs the Debian package `chromium`")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    with FakeDeepSeek(api_key="sk-browser") as deepseek:
        env = embedded_env(
            tmp / "data",
            DEEPSEEK_API_KEY="sk-browser",
            DEEPSEEK_BASE_URL=deepseek.base_url,
            # a stalled stream (Hang) ends as an incomplete answer after this many seconds
            DEEPSEEK_TIMEOUT="8",
            ANSWER_CACHE="false",  # every test's question is answered afresh
        )
        manage(env, "migrate", "--noinput")
        manage(env, "ensure_admin")
        (tmp / "handbook.pdf").write_bytes(make_pdf(HANDBOOK))
        (tmp / "travel.md").write_text(TRAVEL_MD)
        manage(env, "ingest", str(tmp / "handbook.pdf"), str(tmp / "travel.md"), "--sync")
        answered = answer_offline(env, list(OFFLINE.values()))
        offline = dict(zip(OFFLINE, answered, strict=True))
        for status, result in offline.items():
            assert result["status"] == status, offline  # the setup still makes each case
        server = Server(env)
        try:
            yield SimpleNamespace(server=server, deepseek=deepseek, offline=offline, tmp=tmp)
        finally:
            server.stop()


@pytest.fixture
def page(browser, app):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{app.server.url}/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{app.server.url}/")
    yield page
    page.close()


def test_ask_stream_as_a_draft_cite_and_reason(page, app):
    app.deepseek.enqueue(
        Reply(
            reasoning="The question is about receipts. Source 1 is the travel policy on page 2.",
            answer="Receipts must be submitted within thirty days of travel [1].",
            delay=0.08,  # slow enough to watch the stream arrive piece by piece
        )
    )
    page.fill("#question", RECEIPTS)
    page.click("#send")

    # streamed: partial text, shown as a draft being checked, busy for screen readers
    page.wait_for_function(
        "() => { const a = document.querySelector('.msg.assistant .answer.provisional');"
        " return a && a.textContent.includes('Receipts') && !a.textContent.includes('travel'); }"
    )
    assert page.locator(".msg.assistant .provisional-note").is_visible()
    assert "checking against the sources" in page.locator(".provisional-note").inner_text()
    assert page.locator(".msg.assistant .answer").get_attribute("aria-busy") == "true"

    chip = page.locator(".msg.assistant button.cite").first
    chip.wait_for()  # done: the checked answer replaced the draft
    answer = page.locator(".msg.assistant .answer")
    assert "provisional" not in answer.get_attribute("class")
    assert answer.get_attribute("aria-busy") is None
    assert page.locator(".msg.assistant .provisional-note").is_hidden()
    assert "thirty days" in answer.inner_text()
    assert "cite-supported" in chip.get_attribute("class")
    assert "1 supported" in page.locator(".msg.assistant .msg-meta").inner_text()
    assert "deepseek-reasoner" in page.locator(".msg.assistant .badge").inner_text()
    status = page.locator("#answer-status")
    page.wait_for_function("() => document.querySelector('#answer-status').textContent")
    assert "Answer checked" in status.inner_text() and "thirty days" in status.inner_text()
    assert page.url.startswith(f"{app.server.url}/c/")

    sources = page.locator(".msg.assistant .source-list")
    assert "Sources" in sources.inner_text() and "handbook.pdf" in sources.inner_text()
    chip.click()
    panel = page.locator("#source-panel")
    panel.wait_for(state="visible")
    assert "handbook.pdf" in page.locator("#source-title").inner_text()
    assert "page 2" in page.locator("#source-meta").inner_text()
    assert "thirty days" in page.locator("#source-text mark").inner_text()
    link = page.locator("#source-open")
    assert link.get_attribute("href").endswith("/file#page=2")
    pdf = page.request.get(app.server.url + link.get_attribute("href").split("#")[0])
    assert pdf.headers["content-type"] == "application/pdf"

    reasoning = page.locator(".msg.assistant details.reasoning")
    assert reasoning.get_attribute("open") is None  # folded until asked for
    reasoning.locator("summary").click()
    assert "Source 1 is the travel policy" in reasoning.locator("pre").inner_text()
    page.screenshot(path=str(app.tmp / "chat.png"), full_page=True)

    page.reload()  # a reload shows the same citations, numbered the same way
    page.locator(".msg.assistant button.cite").first.click()
    assert "thirty days" in page.locator("#source-text mark").inner_text()


def test_a_sentence_is_marked_while_the_draft_streams(page, app):
    # The stream stops after the first sentence and a word of the second: its verdict is in,
    # the answer is not, and stays a draft until the model's stream times out.
    app.deepseek.enqueue(
        Hang(answer="Receipts must be submitted within thirty days of travel [1]. Economy class")
    )
    page.fill("#question", RECEIPTS)
    page.click("#send")

    page.locator(".msg.assistant .answer.provisional .cite.cite-supported").wait_for()
    assert page.locator(".msg.assistant .provisional-note").is_visible()
    assert "Economy class" in page.locator(".msg.assistant .answer.provisional").inner_text()

    # the stream gives up: what arrived is the answer, marked incomplete, no longer a draft
    page.locator(".msg.assistant .answer:not(.provisional)").wait_for(timeout=60_000)
    assert page.locator(".msg.assistant .provisional-note").is_hidden()
    assert "stopped before it was finished" in page.locator(".msg.assistant").inner_text()


def test_a_quoted_answer_is_marked_quoted_not_supported(page, app):
    page.goto(f"{app.server.url}/c/{app.offline['extractive']['conversation_id']}")
    message = page.locator(".msg.assistant")
    chips = message.locator(".answer button.cite")
    chips.first.wait_for()
    assert chips.count() >= 1
    for i in range(chips.count()):
        assert "cite-quoted" in chips.nth(i).get_attribute("class")
    meta = message.locator(".msg-meta").inner_text()
    assert "quoted" in meta and "supported" not in meta
    assert "word for word from the documents" in message.inner_text()
    assert "Hotels cost" not in message.locator(".answer").inner_text()

    chips.first.click()
    assert page.locator("#source-verdict .verdict-quoted").inner_text() == "quoted"
    assert "supported" not in page.locator("#source-verdict").inner_text()


def test_a_withheld_answer_lists_the_passages_searched(page, app):
    page.goto(f"{app.server.url}/c/{app.offline['withheld']['conversation_id']}")
    sources = page.locator(".msg.assistant .source-list")
    sources.wait_for()
    assert "Passages searched" in sources.inner_text()
    entries = sources.locator("button.source-entry")
    assert entries.count() >= 2
    assert "handbook.pdf" in sources.inner_text()

    entry = entries.filter(has_text="travel.md").first
    assert "Travel and expenses › 3 Claims" in entry.inner_text()
    entry.click()
    page.locator("#source-panel").wait_for(state="visible")
    assert "travel.md" in page.locator("#source-title").inner_text()
    assert "3 Claims" in page.locator("#source-section").inner_text()
    assert page.locator("#source-text").inner_text().strip()

    pdf_entry = entries.filter(has_text="handbook.pdf").first
    assert "page " in pdf_entry.inner_text()
    pdf_entry.click()
    assert "handbook.pdf" in page.locator("#source-title").inner_text()
    assert "/file#page=" in page.locator("#source-open").get_attribute("href")


def test_nothing_found_lists_the_closest_passages(page, app):
    page.goto(f"{app.server.url}/c/{app.offline['no_sources']['conversation_id']}")
    sources = page.locator(".msg.assistant .source-list")
    sources.wait_for()
    assert "Closest passages (not close enough to count as evidence)" in sources.inner_text()
    sources.locator("button.source-entry").first.click()
    page.locator("#source-panel").wait_for(state="visible")
    assert "not close enough" in page.locator("#source-verdict").inner_text()


def test_search_results_show_page_and_section(page, app):
    page.goto(f"{app.server.url}/search/?q=daily+meal+allowance")
    results = page.locator("ol.results > li")
    results.first.wait_for()
    first = results.first
    assert "travel.md" in first.inner_text()
    assert (
        first.locator(".result-section").inner_text()
        == "Travel and expenses › 3 Claims › 3.1 Meal allowance"
    )
    pdf = results.filter(has_text="handbook.pdf").first
    link = pdf.locator("a.result-page")
    assert link.inner_text().startswith("page ")
    assert "#page=" in link.get_attribute("href")
