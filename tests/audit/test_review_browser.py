"""An auditor's journey in headless Chromium against the app as `make run` serves it (ASGI,
embedded SQLite): answers are made beforehand with `manage.py ask` against the fake DeepSeek
server, one of them with a citation its source does not support. The auditor logs in, filters
on it, reads the answer beside its evidence, and exports the filtered set."""

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.assistant.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.conftest import HANDBOOK
from tests.docs import make_pdf
from tests.fakes.deepseek import FakeDeepSeek, Scripted
from tests.live import PASSWORD, Server, embedded_env, manage

pytestmark = pytest.mark.slow

RECEIPTS = "How long do I have to hand in my travel receipts?"
LAPTOPS = "Do laptops need full disk encryption?"
WRONG = "The office cafeteria serves free pizza every Friday"
_SOURCE = re.compile(r'<source id="(\d+)"[^>]*>\n(.*?)\n</source>', re.S)


def naive_model(request: dict) -> tuple[str, str]:
    """Cite the source that holds the fact; on receipts, add a claim no source supports."""
    prompt = request["messages"][-1]["content"]
    sources = {text: n for n, text in _SOURCE.findall(prompt)}

    def cite(needle: str) -> str:
        return next(n for text, n in sources.items() if needle in text)

    if RECEIPTS in prompt:
        n = cite("thirty days")
        return (
            f"Source {n} is the travel policy; it gives the deadline for receipts.",
            f"Receipts must be submitted within thirty days of travel [{n}]. {WRONG} [{n}].",
        )
    n = cite("encryption")
    return (
        f"Source {n} is the security policy.",
        f"Laptops must use full disk encryption [{n}].",
    )


@pytest.fixture
def app(tmp_path):
    with FakeDeepSeek(api_key="sk-audit", default=Scripted(naive_model)) as deepseek:
        env = embedded_env(
            tmp_path / "data",
            DEEPSEEK_API_KEY="sk-audit",
            DEEPSEEK_BASE_URL=deepseek.base_url,
            ANSWER_MIN_RELEVANCE="0",  # every page reaches the prompt: some go uncited
        )
        manage(env, "migrate", "--noinput")
        manage(env, "users", "create", "aud", "--role", "auditor", "--password", PASSWORD)
        pdf = tmp_path / "handbook.pdf"
        pdf.write_bytes(make_pdf(HANDBOOK))
        manage(env, "ingest", str(pdf), "--sync", "--json")
        asked = [json.loads(manage(env, "ask", q, "--json").stdout) for q in (RECEIPTS, LAPTOPS)]
        assert len(deepseek.requests) == 2
        server = Server(env)
        try:
            yield server, asked
        finally:
            server.stop()


def test_auditor_reviews_an_unsupported_citation(browser, app, tmp_path):  # noqa: F811
    server, (receipts, laptops) = app
    seq = receipts["audit_id"]
    assert isinstance(seq, int), "manage.py ask should report the answer's audit record"
    page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    try:
        page.goto(f"{server.url}/login/")
        page.fill("input[name=username]", "aud")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/audit/")  # an auditor lands on the log

        rows = page.locator("tr.audit-row")
        assert rows.count() == 2  # answers only: the logins are there too, under "all kinds"
        assert "⚠" not in rows.nth(0).locator("td.flags").inner_text()  # laptops, newest
        assert "⚠" in rows.nth(1).locator("td.flags").inner_text()
        page.check("input[name=unsupported]")
        page.click(".filter-actions button[type=submit]")
        page.wait_for_url(re.compile(r".*unsupported=1.*"))
        assert rows.count() == 1
        assert rows.nth(0).locator("td.num").inner_text() == str(seq)
        assert "travel receipts" in rows.nth(0).locator("td.question").inner_text()
        page.screenshot(path=str(tmp_path / "audit-list.png"), full_page=True)

        # export what is shown: exactly the filtered record, hash and all
        with page.expect_download() as download:
            page.click("#export-jsonl")
        assert re.fullmatch(r"audit-\d{8}T\d{6}Z\.jsonl", download.value.suggested_filename)
        lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
        (exported,) = [json.loads(line) for line in lines]
        assert exported["seq"] == seq and exported["payload"]["has_unsupported"] is True
        assert exported["content"]["question"] == RECEIPTS
        with page.expect_download() as download:
            page.click("#export-csv")
        exported_csv = Path(download.value.path()).read_text(encoding="utf-8")
        rows_csv = list(csv.DictReader(io.StringIO(exported_csv)))
        assert [int(r["seq"]) for r in rows_csv] == [seq]

        rows.nth(0).locator("td.question a").click()
        page.wait_for_url(f"{server.url}/audit/{seq}")
        left, right = page.locator(".audit-left"), page.locator(".audit-right")
        box_left, box_right = left.bounding_box(), right.bounding_box()
        # side by side: the evidence starts level with the answer, to its right
        assert box_right["x"] >= box_left["x"] + box_left["width"]
        assert abs(box_right["y"] - box_left["y"]) < 5

        assert WRONG in left.locator("#answer").inner_text()
        assert "travel policy" in left.locator("pre#reasoning").inner_text()
        assert left.locator("pre#reasoning").is_visible()
        verdicts = page.locator("table.citations .verdict").all_inner_texts()
        assert verdicts == ["supported", "unsupported"]
        n = receipts["citations"][0]["marker"]
        mark = right.locator(f"#source-{n} mark")
        assert mark.count() == 1 and "thirty days" in mark.inner_text()
        link = right.locator(f"#source-{n} .evidence-head a")
        assert link.get_attribute("href").endswith("/file#page=2")
        assert page.request.get(server.url + link.get_attribute("href").split("#")[0]).ok
        assert "checks out" in page.locator("#integrity").inner_text()
        # the sources no citation points to are greyed out
        unused = right.locator("article.evidence.unused")
        assert unused.count() == right.locator("article.evidence").count() - 1 >= 1
        assert float(unused.first.evaluate("e => getComputedStyle(e).opacity")) < 1
        assert f"#source-{n}" not in [
            f"#{i}" for i in unused.evaluate_all("es => es.map(e => e.id)")
        ]

        page.locator("#answer button.cite").first.click()  # a chip leads to its source
        page.wait_for_selector(f"#source-{n}.flash")
        page.locator("details#prompt summary").click()
        assert "Question: " + RECEIPTS in page.locator("details#prompt").inner_text()
        page.screenshot(path=str(tmp_path / "audit-record.png"), full_page=True)

        # other kinds are in the log too: the auditor's own sign-in, shown as its JSON
        page.goto(f"{server.url}/audit/?kind=auth.login")
        assert rows.count() == 1 and rows.nth(0).locator("td").nth(2).inner_text() == "aud"
        rows.nth(0).locator("td.num a").click()
        page.wait_for_selector("pre.json")
        assert "user_agent" in page.locator("pre.json").first.inner_text()
        assert "checks out" in page.locator("#integrity").inner_text()
        page.screenshot(path=str(tmp_path / "audit-other.png"), full_page=True)
        print(f"\nscreenshots in {tmp_path}: audit-list.png audit-record.png audit-other.png")
    finally:
        page.close()
