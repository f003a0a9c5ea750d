"""A person's journey in headless Chromium against the app as `make run` serves it (ASGI), with
DEEPSEEK_BASE_URL pointing at the fake DeepSeek server: log in, ask, watch the answer stream,
open a citation at its page, expand the reasoning."""

import os
import shutil

import pytest

from tests.docs import make_pdf
from tests.fakes.deepseek import FakeDeepSeek, Reply
from tests.live import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Server, embedded_env, manage

from .conftest import HANDBOOK

pytestmark = pytest.mark.slow


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


@pytest.fixture
def app(tmp_path):
    with FakeDeepSeek(api_key="sk-browser") as deepseek:
        env = embedded_env(
            tmp_path / "data",
            DEEPSEEK_API_KEY="sk-browser",
            DEEPSEEK_BASE_URL=deepseek.base_url,
        )
        manage(env, "migrate", "--noinput")
        manage(env, "ensure_admin")
        pdf = tmp_path / "handbook.pdf"
        pdf.write_bytes(make_pdf(HANDBOOK))
        manage(env, "ingest", str(pdf), "--sync", "--json")
        server = Server(env)
        try:
            yield server, deepseek
        finally:
            server.stop()


def test_ask_stream_cite_and_reason(browser, app, tmp_path):
    server, deepseek = app
    deepseek.enqueue(
        Reply(
            reasoning="The question is about receipts. Source 1 is the travel policy on page 2.",
            answer="Receipts must be submitted within thirty days of travel [1].",
            delay=0.08,  # slow enough to watch the stream arrive piece by piece
        )
    )
    page = browser.new_page()
    try:
        page.goto(f"{server.url}/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")

        page.fill("#question", "How long do I have to hand in my travel receipts?")
        page.click("#send")

        # streamed: the answer shows partial text before it is complete
        page.wait_for_function(
            "() => { const a = document.querySelector('.msg.assistant .answer.streaming');"
            " return a && a.textContent.includes('Receipts') && !a.textContent.includes('[1]'); }"
        )
        chip = page.locator(".msg.assistant button.cite").first
        chip.wait_for()
        assert page.url.startswith(f"{server.url}/c/")
        assert "thirty days" in page.locator(".msg.assistant .answer").inner_text()
        assert "cite-supported" in chip.get_attribute("class")
        assert "deepseek-reasoner" in page.locator(".msg.assistant .badge").inner_text()

        chip.click()
        panel = page.locator("#source-panel")
        panel.wait_for(state="visible")
        assert "handbook.pdf" in page.locator("#source-title").inner_text()
        assert "page 2" in page.locator("#source-meta").inner_text()
        assert "thirty days" in page.locator("#source-text mark").inner_text()
        link = page.locator("#source-open")
        assert link.get_attribute("href").endswith("/file#page=2")
        pdf = page.request.get(server.url + link.get_attribute("href").split("#")[0])
        assert pdf.headers["content-type"] == "application/pdf"

        reasoning = page.locator(".msg.assistant details.reasoning")
        assert reasoning.get_attribute("open") is None  # folded until asked for
        reasoning.locator("summary").click()
        assert "Source 1 is the travel policy" in reasoning.locator("pre").inner_text()
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)

        page.reload()  # a reload shows the same citations, numbered the same way
        page.locator(".msg.assistant button.cite").first.click()
        assert "thirty days" in page.locator("#source-text mark").inner_text()
    finally:
        page.close()
