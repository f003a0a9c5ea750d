"""Take the README's screenshots of the app as a user sees it.

    .venv/bin/python docs/screenshots.py [--out docs/img] [--keep]

Starts the app like `make run` does (a real `manage.py serve` process on the embedded default, in
a temporary DATA_DIR), with DeepSeek answered by the fake DeepSeek server of the tests so the chat
shows a real streamed, cited and verified answer without a network. It uploads a short expenses
policy (PDF) and remote-work guidelines (Markdown) through the Documents page, plus a scan without
a text layer that fails with its reason, asks in the chat, opens a citation, then signs in as an
auditor. Debian's Chromium drives the pages headless (`apt-get install chromium`).

Writes chat.png, chat-phone.png (375 px), documents.png, audit.png, audit-answer.png and
evaluation.png into --out and prints their paths.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.docs import make_pdf, make_scanned_pdf  # noqa: E402
from tests.fakes.deepseek import FakeDeepSeek, Scripted  # noqa: E402
from tests.live import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    Server,
    embedded_env,
    manage,
)

VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
TIMEOUT_MS = 90_000  # the first upload loads the embedding model in the worker
AUDITOR, AUDITOR_PASSWORD = "dana.auditor", "screenshots-auditor-pw"

POLICY_PAGES = [
    "Northwind Ltd - Travel and Expenses Policy\n"
    "Version 4.2, effective 1 March 2026. Owner: Finance.\n"
    "\n"
    "1. Scope\n"
    "This policy applies to every employee and contractor who travels for Northwind.\n"
    "Book travel through the travel desk; trips abroad need your manager's approval\n"
    "before anything is booked.",
    "2. Meals and accommodation\n"
    "The daily meal allowance is 45 EUR in Europe and 60 EUR elsewhere.\n"
    "Alcohol is never reimbursed.\n"
    "Hotel rooms up to 150 EUR per night need no prior approval; more expensive rooms\n"
    "must be approved by Finance in writing before booking.",
    "3. Claims and receipts\n"
    "Submit each claim in the expenses tool within 30 days of the end of the trip.\n"
    "Attach an itemised receipt for every amount above 25 EUR.\n"
    "Claims submitted more than 90 days after the trip are not reimbursed.\n"
    "Finance pays approved claims with the next monthly salary.",
]
REMOTE_WORK_MD = """# Remote work guidelines

Northwind staff may work from home up to three days a week, agreed with their manager.

## Equipment

Employees who work from home may claim up to 300 EUR once every three years for a desk
chair or a monitor. Claim it in the expenses tool like any other expense, with the receipt.

## Security

Use the company VPN for every connection to internal systems, and lock your screen whenever
you leave your desk.
"""
QUESTIONS = [
    "What is the daily meal allowance when I travel in Europe?",
    "How long do I have to submit an expense claim, and can I claim a desk chair "
    "for working from home?",
]

PROBLEMS: list[str] = []  # what the fake model could not do, for the error message
_SOURCE = re.compile(r'<source id="(\d+)" document="([^"]*)"[^>]*>\n(.*?)\n</source>', re.S)


def fake_reasoner(request: dict) -> tuple[str, str]:
    """Answer like a careful reasoning model: cite the sources that hold each fact, by number."""
    prompt = "\n".join(str(m.get("content") or "") for m in request.get("messages", []))
    sources = {int(n): (doc, text) for n, doc, text in _SOURCE.findall(prompt)}

    def cite(phrase: str) -> tuple[int, str]:
        for number, (doc, text) in sorted(sources.items()):
            if phrase in text:
                return number, doc
        PROBLEMS.append(f"no source holds {phrase!r} (retrieval changed?): {sorted(sources)}")
        raise LookupError(PROBLEMS[-1])  # the fake server answers 500; ask() reports this

    last = [m for m in request["messages"] if m.get("role") == "user"][-1]["content"]
    question = last.rpartition("Question:")[2]
    if "meal allowance" in question:
        n, doc = cite("45 EUR")
        return (
            f"The user asks about meals on trips in Europe. Source [{n}] ({doc}) states the "
            "allowance per region; Europe is 45 EUR.",
            f"The daily meal allowance is 45 EUR in Europe and 60 EUR elsewhere [{n}]. "
            f"Alcohol is never reimbursed [{n}].",
        )
    claims, policy = cite("within 30 days")
    chair, guidelines = cite("desk")
    reasoning = (
        "Two questions: the deadline for expense claims, and whether home-office furniture can "
        f"be claimed. Source [{claims}] ({policy}, section 3) gives the 30-day deadline, the "
        "receipt threshold and the 90-day cut-off. "
        f"Source [{chair}] ({guidelines}, Equipment) allows up to 300 EUR every three years for "
        "a chair or monitor. Both answers are in the sources; cite each claim."
    )
    answer = (
        f"Submit each claim in the expenses tool within 30 days of the end of the trip "
        f"[{claims}]. Attach an itemised receipt for every amount above 25 EUR [{claims}]; "
        f"claims submitted more than 90 days after the trip are not reimbursed [{claims}].\n\n"
        f"Yes: employees who work from home may claim up to 300 EUR once every three years "
        f"for a desk chair or a monitor [{chair}]."
    )
    return reasoning, answer


def log_in(page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda address: "/login/" not in address)  # staff: chat, auditor: audit


def wait_documents_settled(page, count: int) -> None:
    """Every uploaded row has reached a final status (ready, failed or duplicate)."""
    page.wait_for_function(
        "(n) => { const rows = [...document.querySelectorAll('#document-rows tr[data-status]')];"
        " return rows.length >= n && rows.every(r =>"
        " ['ready', 'failed', 'duplicate'].includes(r.dataset.status)); }",
        arg=count,
    )


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.click("#send")
    # done streaming: the last answer has its citation chips and is no longer marked streaming
    try:
        page.wait_for_function(
            "() => { const a = [...document.querySelectorAll('.msg.assistant .answer')].pop();"
            " return a && !a.classList.contains('streaming') && a.querySelector('button.cite'); }"
        )
    except PlaywrightTimeout as exc:
        shown = page.locator(".msg.assistant").last.inner_text(timeout=5_000)
        raise RuntimeError(f"no cited answer to {question!r}: {PROBLEMS or shown!r}") from exc


def take(browser, server: Server, samples: Path, out: Path) -> list[Path]:
    shots = []
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, server.url, "admin", PASSWORD)

    # Documents: upload through the page, as an admin would, and wait for the worker.
    page.goto(f"{server.url}/documents/")
    page.set_input_files("#file-input", [str(p) for p in sorted(samples.iterdir())])
    wait_documents_settled(page, 3)
    page.mouse.move(0, 0)
    shots.append(out / "documents.png")
    page.screenshot(path=str(shots[-1]))

    # Chat: a first conversation, then the one shown, with a citation opened.
    page.goto(f"{server.url}/")
    ask(page, QUESTIONS[0])
    page.goto(f"{server.url}/")
    ask(page, QUESTIONS[1])
    answer = page.locator(".msg.assistant").last
    answer.locator("details.reasoning summary").click()
    answer.locator("button.cite").first.click()
    page.locator("#source-panel").wait_for(state="visible")
    page.locator("#source-text mark").first.wait_for()
    page.mouse.move(0, 0)
    shots.append(out / "chat.png")
    page.screenshot(path=str(shots[-1]))
    conversation = page.url
    context.close()

    # The same conversation on a phone (375 px): the thread has the whole width.
    context = browser.new_context(viewport=PHONE, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, server.url, "admin", PASSWORD)
    page.goto(conversation)
    page.locator(".msg.assistant button.cite").first.wait_for()
    page.locator(".msg.assistant").last.scroll_into_view_if_needed()
    shots.append(out / "chat-phone.png")
    page.screenshot(path=str(shots[-1]))
    context.close()

    # Audit: an auditor reviews the answers, then opens the last one's full record.
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, server.url, AUDITOR, AUDITOR_PASSWORD)
    page.goto(f"{server.url}/audit/?kind=all")
    shots.append(out / "audit.png")
    page.screenshot(path=str(shots[-1]))
    page.goto(f"{server.url}/audit/?kind=answer")
    page.locator(".audit-table td.num a").first.click()
    page.wait_for_load_state()
    shots.append(out / "audit-answer.png")
    page.screenshot(path=str(shots[-1]))
    context.close()

    # Evaluation: the run history an admin sees (runs made by run_evaluations before).
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, server.url, "admin", PASSWORD)
    page.goto(f"{server.url}/evaluation/")
    page.locator(".eval-chart svg").first.wait_for()
    shots.append(out / "evaluation.png")
    page.screenshot(path=str(shots[-1]), full_page=True)
    context.close()
    return shots


# A retriever change that loses quality (the BM25 half switched off): the gate catches it.
WORSE_RETRIEVER = {"RETRIEVAL_LEXICAL_WEIGHT": "0", "RETRIEVAL_DENSE_WEIGHT": "1"}


def run_evaluations(env: dict) -> None:
    """A short history of real runs on HaluEval-QA (100 questions, 1,000 passages): the retriever as shipped,
    then a worse setting caught by the gate, then as shipped again. (No `eval answers` run:
    with the fake DeepSeek its numbers would mean nothing.) Each run indexes its own temporary
    store, so the app need not be up."""
    retrieval = [
        "eval",
        "retrieval",
        "--dataset",
        "halueval-qa",
        "--limit",
        "100",
        "--passages",
        "1000",
        "--gate",
    ]
    manage(env, *retrieval)
    failed = manage({**env, **WORSE_RETRIEVER}, *retrieval, check=False)
    assert failed.returncode == 1, failed.stderr  # the gate must fail this one
    manage(env, *retrieval)


def write_samples(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "expenses-policy.pdf").write_bytes(
        make_pdf(POLICY_PAGES, title="Travel and Expenses Policy")
    )
    (folder / "remote-work.md").write_text(REMOTE_WORK_MD)
    (folder / "board-minutes-scan.pdf").write_bytes(make_scanned_pdf(2))  # fails: no text layer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rag-screenshots-"))
    staging = work / "shots"
    staging.mkdir()
    samples = work / "samples"
    write_samples(samples)
    server = None
    started = time.monotonic()
    try:
        with FakeDeepSeek(api_key="sk-screenshots", default=Scripted(fake_reasoner)) as deepseek:
            env = embedded_env(
                work / "data",
                DEEPSEEK_API_KEY="sk-screenshots",
                DEEPSEEK_BASE_URL=deepseek.base_url,
            )
            manage(env, "migrate", "--noinput")
            manage(env, "ensure_admin")
            manage(env, "users", "create", "dana.auditor", "--role", "auditor",
                   "--password", AUDITOR_PASSWORD)  # fmt: skip
            run_evaluations(env)
            server = Server(env)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                try:
                    shots = take(browser, server, samples, staging)
                finally:
                    browser.close()
    except BaseException:
        if server is not None:
            print(server.output()[-4000:], file=sys.stderr)
        print(f"failed; the app's data is kept in {work}", file=sys.stderr)
        raise
    finally:
        if server is not None:
            try:
                server.stop()
            except Exception as exc:  # a stuck server was killed: say so, keep the original error
                print(f"the app did not stop cleanly: {exc!r}", file=sys.stderr)
    written = []
    for shot in shots:
        target = args.out / shot.name
        shutil.move(shot, target)
        written.append(target)
    if args.keep:
        print(f"data kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"took {len(written)} screenshots in {time.monotonic() - started:.0f} s", file=sys.stderr)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
