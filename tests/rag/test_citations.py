"""rag.citations: marker parsing, sentence splitting, and verification with the real MiniLM.

``LABELLED`` is the calibration set for ``VerifierThresholds`` (the numbers were chosen on it),
``SECOND_ROUND`` a second tuning round, and ``FRESH`` pairs nothing was tuned on; the accuracy
tests keep all three honest. Tests that load the model are marked ``slow``.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from rag.citations import (
    DEFAULT_THRESHOLDS,
    VerifierThresholds,
    parse_markers,
    score_support,
    split_sentences,
    verify_citations,
)
from rag.embedding import SentenceTransformerEmbedder
from rag.prompting import ABSTAIN_TEXT
from rag.types import ScoredChunk


def chunk(
    key: str, text: str, *, page: int | None = 1, heading: tuple[str, ...] = ()
) -> ScoredChunk:
    return ScoredChunk(
        chunk_id=f"chunk-{key}",
        document_id=f"doc-{key}",
        collection="general",
        page=page,
        start=0,
        end=len(text),
        text=text,
        score=0.5,
        heading_path=heading,
        document_name=f"{key}.pdf",
    )


TRAVEL = chunk(
    "travel",
    "Expense claims. Employees must submit original receipts for all travel expenses within "
    "thirty (30) days of returning from the trip. Claims submitted after this deadline will not "
    "be reimbursed unless the line manager grants an exception in writing. Receipts for taxi "
    "fares under 10 euros are not required.",
    page=4,
    heading=("Travel policy", "Receipts"),
)
LAPTOP = chunk(
    "laptop",
    "All company laptops must use full-disk encryption. BitLocker is enabled on Windows devices "
    "and FileVault on macOS devices before the laptop is handed to the employee. A lost or "
    "stolen laptop must be reported to the IT service desk within 24 hours.",
    heading=("IT security", "Laptops"),
)
PASSWORD = chunk(
    "password",
    "Passwords must be at least 14 characters long and must not reuse any of the previous 5 "
    "passwords. Multi-factor authentication is mandatory for remote access to company systems. "
    "Accounts are locked after 10 failed sign-in attempts.",
)
LEAVE = chunk(
    "leave",
    "Full-time employees are entitled to 25 days of paid annual leave per calendar year. Up to "
    "5 unused days may be carried over to the next year, and carried-over days expire on 31 "
    "March. Leave requests must be approved by the line manager at least two weeks in advance.",
    page=None,
)
RETENTION = chunk(
    "retention",
    "Customer records are retained for seven years after the end of the business relationship, "
    "as required by the 2017 Money Laundering Regulations. After that period the records are "
    "securely deleted. Paper copies are shredded on site.",
)
GIFTS = chunk(
    "gifts",
    "Staff may accept gifts or hospitality worth up to £50 without approval. Gifts above this "
    "value must be declared in the gifts register within 5 working days. Cash gifts must never "
    "be accepted.",
)
BREACH = chunk(
    "breach",
    "A personal data breach must be reported to the Data Protection Officer (DPO) immediately. "
    "Where the breach is likely to result in a risk to individuals, the DPO notifies the "
    "supervisory authority within 72 hours of becoming aware of it.",
)
REMOTE = chunk(
    "remote",
    "Employees may work remotely for up to three days per week with their manager's agreement. "
    "Remote workers must use the company VPN when accessing internal systems. Home office "
    "equipment can be claimed up to a total of 300 euros once every three years.",
)

# (claim, cited chunk, label). Written before the thresholds were set.
LABELLED = [
    # supported: exact quotes and paraphrases
    (
        "Employees must submit original receipts for all travel expenses within thirty (30) days "
        "of returning from the trip.",
        TRAVEL,
        "supported",
    ),
    ("Travel receipts have to be handed in within 30 days after the trip.", TRAVEL, "supported"),
    (
        "Late expense claims are not reimbursed unless the line manager grants a written exception.",
        TRAVEL,
        "supported",
    ),
    ("Laptops must have full-disk encryption.", LAPTOP, "supported"),
    (
        "A lost laptop has to be reported to the IT service desk within 24 hours.",
        LAPTOP,
        "supported",
    ),
    ("Passwords need at least 14 characters.", PASSWORD, "supported"),
    ("Remote access requires multi-factor authentication.", PASSWORD, "supported"),
    ("Accounts lock after ten failed sign-in attempts.", PASSWORD, "supported"),
    ("Full-time staff get 25 days of paid annual leave each year.", LEAVE, "supported"),
    ("Carried-over leave days expire on 31 March.", LEAVE, "supported"),
    (
        "Customer records are kept for seven years after the relationship ends.",
        RETENTION,
        "supported",
    ),
    ("Paper copies are shredded on site.", RETENTION, "supported"),
    ("Gifts worth up to £50 can be accepted without approval.", GIFTS, "supported"),
    ("Cash gifts must never be accepted.", GIFTS, "supported"),
    ("The DPO informs the supervisory authority within 72 hours.", BREACH, "supported"),
    (
        "Staff can work from home up to three days a week if their manager agrees.",
        REMOTE,
        "supported",
    ),
    ("Remote workers have to use the VPN to reach internal systems.", REMOTE, "supported"),
    # partial: part of the claim is in the passage, part is not
    (
        "Receipts must be submitted within 30 days and approved by the finance director.",
        TRAVEL,
        "partial",
    ),
    (
        "Laptops must be encrypted with BitLocker and backed up to the cloud daily.",
        LAPTOP,
        "partial",
    ),
    (
        "Passwords must be at least 14 characters long and changed every 90 days.",
        PASSWORD,
        "partial",
    ),
    (
        "Customer records are retained for seven years and then archived on tape.",
        RETENTION,
        "partial",
    ),
    (
        "Gifts above £50 must be declared in the register and approved by the chief executive.",
        GIFTS,
        "partial",
    ),
    ("A data breach must be reported to the DPO immediately and to the police.", BREACH, "partial"),
    ("Remote workers must use the company VPN and a company-issued phone.", REMOTE, "partial"),
    (
        "Home office equipment can be claimed, and staff also receive a monthly internet allowance.",
        REMOTE,
        "partial",
    ),
    # unsupported: wrong citations, wrong numbers, on-topic but different claims
    ("Original receipts are required for every travel expense.", LAPTOP, "unsupported"),
    ("Travel receipts must be submitted within 30 days.", LAPTOP, "unsupported"),
    ("Gifts above £50 must be declared in the register.", PASSWORD, "unsupported"),
    ("Laptops must use full-disk encryption.", LEAVE, "unsupported"),
    ("Travel receipts must be submitted within 60 days of the trip.", TRAVEL, "unsupported"),
    ("Passwords must be at least 8 characters long.", PASSWORD, "unsupported"),
    ("Employees are entitled to 30 days of paid annual leave.", LEAVE, "unsupported"),
    ("Customer records are retained for ten years.", RETENTION, "unsupported"),
    ("The supervisory authority must be notified within 48 hours.", BREACH, "unsupported"),
    ("Employees may work remotely five days a week.", REMOTE, "unsupported"),
    ("Laptops may be taken abroad without asking anyone.", LAPTOP, "unsupported"),
    ("Unused leave days are paid out at the end of the year.", LEAVE, "unsupported"),
    ("The company pays for business class flights on long trips.", TRAVEL, "unsupported"),
    ("Visitors must sign in at reception and wear a badge.", GIFTS, "unsupported"),
]

# What the calibration set must reach: the overall share of right verdicts, and no confusion
# between the extremes (a supported claim called unsupported or the reverse) beyond this many.
MIN_ACCURACY = 0.8
MAX_EXTREME_ERRORS = 2


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["load the model once"])
    return embedder


# A second round, written after the first thresholds were set. Its misses led to two changes
# ("every" became a stop word; a number that counts the same thing differently is a
# contradiction) and to the final cut-offs, so it is calibration data too, not a held-out set.
PROCUREMENT = chunk(
    "procurement",
    "Purchases above 5,000 euros require three written quotes from different suppliers. "
    "Purchases above 25,000 euros must also be approved by the procurement committee, which "
    "meets on the first Monday of each month. Framework agreements are reviewed every two years.",
)
VISITORS = chunk(
    "visitors",
    "Visitors must sign in at reception and wear a visible badge at all times. They must be "
    "accompanied by a member of staff in all areas except the lobby and the canteen. Badges are "
    "returned when leaving the building.",
)
TRAINING = chunk(
    "training",
    "All staff complete the information security awareness course within their first month and "
    "then once a year. Managers track completion in the learning system. Staff who miss the "
    "annual deadline lose access to email until the course is completed.",
)
SECOND_ROUND = [
    ("Purchases over 5,000 euros need three written quotes.", PROCUREMENT, "supported"),
    (
        "The procurement committee meets on the first Monday of every month.",
        PROCUREMENT,
        "supported",
    ),
    ("Framework agreements are reviewed every two years.", PROCUREMENT, "supported"),
    ("Visitors must sign in at reception and wear a badge.", VISITORS, "supported"),
    (
        "Visitors need a staff escort everywhere except the lobby and the canteen.",
        VISITORS,
        "supported",
    ),
    (
        "New staff take the security awareness course in their first month and repeat it every year.",
        TRAINING,
        "supported",
    ),
    (
        "Missing the annual training deadline means losing email access until the course is done.",
        TRAINING,
        "supported",
    ),
    (
        "Purchases above 25,000 euros need committee approval and a legal review.",
        PROCUREMENT,
        "partial",
    ),
    ("Visitors must wear a badge and show photo ID.", VISITORS, "partial"),
    ("Managers track course completion and report it to the board.", TRAINING, "partial"),
    ("Purchases above 5,000 euros require five written quotes.", PROCUREMENT, "unsupported"),
    ("The procurement committee meets every week.", PROCUREMENT, "unsupported"),
    ("Visitors may walk around the building unaccompanied.", VISITORS, "unsupported"),
    ("The awareness course is optional for contractors.", TRAINING, "unsupported"),
    ("Laptops must be encrypted before they are handed out.", VISITORS, "unsupported"),
    ("Badges can be kept as souvenirs.", VISITORS, "unsupported"),
]

# Written last and scored once, with the final thresholds: nothing was tuned on these.
WHISTLEBLOWING = chunk(
    "whistleblowing",
    "Concerns about wrongdoing can be raised anonymously through the ethics hotline, which is "
    "run by an external provider and open 24 hours a day. Reports are reviewed by the compliance "
    "officer within 10 working days. Retaliation against anyone who raises a concern in good "
    "faith is a disciplinary offence.",
)
BACKUPS = chunk(
    "backups",
    "Production databases are backed up every night at 02:00 and the backups are kept for 35 "
    "days. A restore test is carried out every quarter and the result is recorded in the change "
    "log. Backups are encrypted and stored in a second data centre.",
)
FRESH = [
    ("The ethics hotline is available around the clock.", WHISTLEBLOWING, "supported"),
    (
        "Staff can report wrongdoing anonymously via an externally run hotline.",
        WHISTLEBLOWING,
        "supported",
    ),
    ("The compliance officer reviews reports within 10 working days.", WHISTLEBLOWING, "supported"),
    (
        "Retaliating against someone who raised a concern in good faith is a disciplinary offence.",
        WHISTLEBLOWING,
        "supported",
    ),
    ("Database backups are retained for 35 days.", BACKUPS, "supported"),
    ("Restores are tested every quarter and the results are logged.", BACKUPS, "supported"),
    ("Backups are encrypted and copied to a public cloud provider.", BACKUPS, "partial"),
    (
        "Reports are reviewed within 10 working days and shared with the board.",
        WHISTLEBLOWING,
        "partial",
    ),
    ("Backups are kept for 90 days.", BACKUPS, "unsupported"),
    (
        "Reports are reviewed by the compliance officer within 5 working days.",
        WHISTLEBLOWING,
        "unsupported",
    ),
    ("The ethics hotline is run by the HR department.", WHISTLEBLOWING, "unsupported"),
    ("Production databases are backed up every night.", WHISTLEBLOWING, "unsupported"),
    ("Staff must give their name when reporting a concern.", WHISTLEBLOWING, "unsupported"),
]


class RecordingEmbedder:
    """The real embedder, counting calls: one answer must cost one embed call."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.dimension = inner.dimension
        self.name = inner.name
        self.calls: list[int] = []

    def embed(self, texts):
        self.calls.append(len(texts))
        return self.inner.embed(texts)


# ---------------------------------------------------------------------------------------------
# Markers
# ---------------------------------------------------------------------------------------------


def markers(answer: str) -> list[tuple[int, ...]]:
    return [s.markers for s in parse_markers(answer)]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Receipts are due in 30 days [1].", [(1,)]),
        ("Receipts are due in 30 days [1, 2].", [(1, 2)]),
        ("Receipts are due in 30 days [1,2].", [(1, 2)]),
        ("Receipts are due in 30 days [1][2].", [(1, 2)]),
        ("Receipts are due in 30 days [ 3 ; 1 ].", [(3, 1)]),
        ("Receipts are due in 30 days [2-4].", [(2, 3, 4)]),
        ("Receipts are due [1] within 30 days [1].", [(1,)]),
        ("Out of range [0] and [12].", [(0, 12)]),
        ("A footnote [note] is not a citation.", [()]),
        ("See [the policy](https://example.com/policy) for details.", [()]),
        ("A link whose text is a number [1](https://example.com) is a link.", [()]),
        ("Code like `items[1]` or `x = [1, 2]` is not a citation.", [()]),
        ("The year [2023] is not a marker.", [()]),
        ("A reference-style link [the policy][2] is not a citation.", [()]),
    ],
)
def test_parse_markers(answer, expected):
    assert markers(answer) == expected


def test_markers_belong_to_their_sentence_even_after_the_full_stop():
    answer = "Receipts are due in 30 days. [1] Laptops are encrypted.[2][3] No marker here."
    parsed = parse_markers(answer)
    assert [s.markers for s in parsed] == [(1,), (2, 3), ()]
    assert [s.claim for s in parsed] == [
        "Receipts are due in 30 days.",
        "Laptops are encrypted.",
        "No marker here.",
    ]
    for sentence in parsed:
        assert answer[sentence.start : sentence.end] == sentence.text


def test_claim_has_markers_and_markdown_removed():
    (sentence,) = parse_markers("- **Receipts** are due in `30` days [1, 2] .")
    assert sentence.claim == "Receipts are due in 30 days."
    assert sentence.kind == "item"


def test_code_blocks_reference_definitions_and_source_lists_are_not_sentences():
    answer = (
        "Receipts are due in 30 days [1].\n\n"
        "```python\nlimits = [1, 2]\n```\n\n"
        "[1]: https://intranet.example/travel\n\n"
        "Sources:\n[1] Travel policy, page 4\n[2] IT security policy\n"
    )
    parsed = parse_markers(answer)
    assert [(s.claim, s.markers) for s in parsed] == [("Receipts are due in 30 days.", (1,))]


def test_no_markers_in_empty_answer():
    assert parse_markers("") == []
    assert parse_markers("   \n\n  ") == []


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "One claim. Another claim! A question? Yes.",
            ["One claim.", "Another claim!", "A question?", "Yes."],
        ),
        (
            "Claims over 3.5 days, e.g. long trips, need approval. Version 2.0 applies.",
            ["Claims over 3.5 days, e.g. long trips, need approval.", "Version 2.0 applies."],
        ),
        (
            "Dr. Smith signs off, i.e. the CFO. Section 4.2.1 applies to U.S. staff. Next.",
            ["Dr. Smith signs off, i.e. the CFO.", "Section 4.2.1 applies to U.S. staff.", "Next."],
        ),
        ("See p. 4 and approx. five pages.", ["See p. 4 and approx. five pages."]),
        ("It ends in 2023. The next one starts.", ["It ends in 2023.", "The next one starts."]),
        (
            "The rules:\n- Receipts within 30 days [1]\n- Taxi fares under 10 euros\n  need none [1]",
            [
                "The rules:",
                "Receipts within 30 days [1]",
                "Taxi fares under 10 euros need none [1]",
            ],
        ),
        (
            "1. First step. Still first.\n2. Second step",
            ["First step.", "Still first.", "Second step"],
        ),
        (
            "## Travel\n\nA **soft**\nwrapped line. Another.\n\n> Quoted text.",
            ["Travel", "A soft wrapped line.", "Another.", "Quoted text."],
        ),
        (
            "| Item | Limit |\n|---|---|\n| Taxi | 10 euros [1] |",
            ["Item Limit", "Taxi 10 euros [1]"],
        ),
        ("", []),
    ],
)
def test_split_sentences(answer, expected):
    assert split_sentences(answer) == expected


# ---------------------------------------------------------------------------------------------
# Verification with the real embedder
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_deliberately_wrong_citation_is_unsupported(embedder):
    answer = "Original receipts are required for every travel expense [1]."
    report = verify_citations(answer=answer, sources=[LAPTOP], embedder=embedder)
    (citation,) = report.citations
    assert citation.verdict == "unsupported"
    assert citation.quote == ""
    assert citation.chunk is LAPTOP
    assert report.has_unsupported


@pytest.mark.slow
def test_exact_quote_is_supported_and_quote_offsets_slice_back(embedder):
    answer = "Claims submitted after this deadline will not be reimbursed [2]."
    report = verify_citations(answer=answer, sources=[LAPTOP, TRAVEL], embedder=embedder)
    (citation,) = report.citations
    assert citation.marker == 2
    assert citation.verdict == "supported"
    assert citation.score > 0.9
    assert citation.sentence == "Claims submitted after this deadline will not be reimbursed."
    assert TRAVEL.text[citation.quote_start : citation.quote_end] == citation.quote
    assert citation.quote.startswith("Claims submitted after this deadline")
    assert not report.has_unsupported


@pytest.mark.slow
def test_paraphrase_is_supported(embedder):
    answer = (
        "Staff have to hand in their travel receipts no later than thirty days after a trip [1]."
    )
    (citation,) = verify_citations(answer=answer, sources=[TRAVEL], embedder=embedder).citations
    assert citation.verdict == "supported"
    assert "original receipts" in citation.quote


@pytest.mark.slow
@pytest.mark.parametrize(
    "claim",
    [
        "Travel receipts must be submitted within 60 days of returning from the trip.",
        "Travel receipts must be submitted within sixty days of returning from the trip.",
    ],
)
def test_wrong_number_cannot_be_supported(embedder, claim):
    (citation,) = verify_citations(
        answer=f"{claim} [1]", sources=[TRAVEL], embedder=embedder
    ).citations
    assert citation.verdict == "unsupported"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("claim", "verdict"),
    [
        ("Carried-over leave days expire on 31 March.", "supported"),
        ("Carried-over leave days expire on 31 April.", "unsupported"),
        ("Carried-over leave days expire on 30 March.", "unsupported"),
    ],
)
def test_dates_must_match(embedder, claim, verdict):
    (citation,) = verify_citations(
        answer=f"{claim} [1]", sources=[LEAVE], embedder=embedder
    ).citations
    assert citation.verdict == verdict


@pytest.mark.slow
def test_a_number_that_counts_the_same_thing_differently_is_a_contradiction(embedder):
    answer = "Purchases above 5,000 euros require five written quotes [1]."
    (citation,) = verify_citations(
        answer=answer, sources=[PROCUREMENT], embedder=embedder
    ).citations
    assert citation.verdict == "unsupported"


@pytest.mark.slow
def test_number_words_and_digits_match(embedder):
    answer = "Accounts are locked after ten failed sign-in attempts [1]."
    (citation,) = verify_citations(answer=answer, sources=[PASSWORD], embedder=embedder).citations
    assert citation.verdict == "supported"


@pytest.mark.slow
def test_an_extra_number_makes_a_true_claim_partial_at_best(embedder):
    answer = "Passwords must be at least 14 characters long and changed every 90 days [1]."
    (citation,) = verify_citations(answer=answer, sources=[PASSWORD], embedder=embedder).citations
    assert citation.verdict == "partial"
    assert PASSWORD.text[citation.quote_start : citation.quote_end] == citation.quote
    assert "14 characters" in citation.quote


@pytest.mark.slow
def test_claim_with_an_unsupported_clause_is_partial(embedder):
    answer = "Customer records are retained for seven years and then archived on tape [1]."
    (citation,) = verify_citations(answer=answer, sources=[RETENTION], embedder=embedder).citations
    assert citation.verdict == "partial"


@pytest.mark.slow
def test_every_marker_of_every_sentence_is_checked(embedder):
    answer = (
        "Laptops must use full-disk encryption [1][2]. "
        "Receipts are needed within 30 days of the trip [2]. "
        "Lost laptops are reported within 24 hours [1]."
    )
    report = verify_citations(answer=answer, sources=[LAPTOP, TRAVEL], embedder=embedder)
    got = [(c.marker, c.verdict) for c in report.citations]
    assert got == [(1, "supported"), (2, "unsupported"), (2, "supported"), (1, "supported")]
    for citation in report.citations:
        assert 0.0 <= citation.score <= 1.0
        assert citation.chunk.text[citation.quote_start : citation.quote_end] == citation.quote


@pytest.mark.slow
def test_out_of_range_markers_are_dropped_and_flagged(embedder):
    answer = "Laptops must use full-disk encryption [1][3]. Cash gifts are refused [0]."
    report = verify_citations(answer=answer, sources=[LAPTOP], embedder=embedder)
    assert [c.marker for c in report.citations] == [1]
    assert report.invalid_markers == (3, 0)
    assert report.has_unsupported


@pytest.mark.slow
def test_uncited_claims_are_reported_but_not_headings_questions_or_abstention(embedder):
    answer = (
        "## Travel receipts\n\n"
        "Here is what I found:\n"
        "- Receipts are due within 30 days of the trip [1].\n"
        "- Late claims are only paid with a written exception from the line manager.\n\n"
        "Anything else?\n"
        "Hope this helps.\n"
        f"{ABSTAIN_TEXT}"
    )
    report = verify_citations(answer=answer, sources=[TRAVEL], embedder=embedder)
    assert report.uncited_sentences == (
        "Late claims are only paid with a written exception from the line manager.",
    )
    assert [c.verdict for c in report.citations] == ["supported"]


@pytest.mark.slow
def test_one_embed_call_per_answer(embedder):
    recording = RecordingEmbedder(embedder)
    answer = (
        "Laptops must use full-disk encryption [1]. Receipts are due within 30 days [2]. "
        "Lost laptops are reported within 24 hours [1][2]."
    )
    verify_citations(answer=answer, sources=[LAPTOP, TRAVEL], embedder=recording)
    assert len(recording.calls) == 1

    verify_citations(answer="No citations here at all.", sources=[LAPTOP], embedder=recording)
    verify_citations(answer=ABSTAIN_TEXT, sources=[], embedder=recording)
    assert len(recording.calls) == 1  # nothing to verify, nothing embedded


def test_parsing_and_verification_never_break_on_odd_input():
    pieces = list("ab XY .,;:!?[]()`*_#->|\n0123456789") + [
        "[1]", "[2, 3]", "e.g.", "Dr.", "```", "**", "- ", "1. ", "[note]", "](http://x)", "…",
    ]  # fmt: skip
    rng = random.Random(7)
    for _ in range(400):
        answer = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        for sentence in parse_markers(answer):
            assert answer[sentence.start : sentence.end] == sentence.text
        report = verify_citations(answer=answer, sources=[TRAVEL, LAPTOP])
        for citation in report.citations:
            assert citation.chunk.text[citation.quote_start : citation.quote_end] == citation.quote
            assert 0.0 <= citation.score <= 1.0
            assert 1 <= citation.marker <= 2


def test_lexical_mode_without_an_embedder():
    report = verify_citations(
        answer=(
            "Claims submitted after this deadline will not be reimbursed [1]. "
            "Original receipts are required for every travel expense [2]. "
            "Receipts are due within 60 days [1]."
        ),
        sources=[TRAVEL, LAPTOP],
    )
    assert [c.verdict for c in report.citations] == ["supported", "unsupported", "unsupported"]


@pytest.mark.slow
def test_sources_and_answer_are_not_mutated(embedder):
    sources = [TRAVEL, LAPTOP]
    verify_citations(
        answer="Receipts are due within 30 days [1].", sources=sources, embedder=embedder
    )
    assert sources == [TRAVEL, LAPTOP]


def test_thresholds_are_validated():
    with pytest.raises(ValueError):
        VerifierThresholds(supported=0.4, partial=0.6)
    with pytest.raises(ValueError):
        VerifierThresholds(embedding_weight=1.5)
    with pytest.raises(ValueError):
        VerifierThresholds(cosine_floor=0.9, cosine_ceiling=0.5)
    assert DEFAULT_THRESHOLDS.partial < DEFAULT_THRESHOLDS.supported


# ---------------------------------------------------------------------------------------------
# Calibration: the labelled pairs
# ---------------------------------------------------------------------------------------------


class BatchedEmbedder:
    """Embeds every text the pairs will ask for in one call up front, then answers from memory."""

    def __init__(self, inner: SentenceTransformerEmbedder, pairs) -> None:
        self.dimension = inner.dimension
        self.name = inner.name
        wanted: list[str] = []
        self.vectors: dict[str, np.ndarray] = {}
        self._collect = wanted
        for claim, passage, _ in pairs:
            score_support(claim=claim, chunk=passage, embedder=self)
        self._collect = None
        unique = list(dict.fromkeys(wanted))
        self.vectors = dict(zip(unique, inner.embed(unique), strict=True))

    def embed(self, texts):
        if self._collect is not None:
            self._collect.extend(texts)
            return np.zeros((len(texts), self.dimension), dtype=np.float32)
        return np.stack([self.vectors[text] for text in texts])


def evaluate(pairs, embedder) -> tuple[float, int, list[str]]:
    """Accuracy, count of supported<->unsupported confusions, and a line per miss."""
    if embedder is not None:
        embedder = BatchedEmbedder(embedder, pairs)
    right, extreme, misses = 0, 0, []
    for claim, passage, label in pairs:
        result = score_support(claim=claim, chunk=passage, embedder=embedder)
        right += result.verdict == label
        extreme += {result.verdict, label} == {"supported", "unsupported"}
        if result.verdict != label:
            misses.append(f"{label} -> {result.verdict} ({result.score:.2f}): {claim}")
    return right / len(pairs), extreme, misses


def test_calibration_set_is_big_and_balanced():
    counts = Counter(label for _, _, label in LABELLED)
    assert len(LABELLED) >= 30
    assert min(counts.values()) >= 8


@pytest.mark.slow
def test_calibration_accuracy_with_embedder(embedder):
    accuracy, extreme, misses = evaluate(LABELLED, embedder)
    print(f"calibration set: accuracy {accuracy:.3f} on {len(LABELLED)} pairs", *misses, sep="\n")
    assert accuracy >= 0.9, misses
    assert extreme <= 1, misses


@pytest.mark.slow
def test_accuracy_on_second_round_and_unseen_pairs(embedder):
    accuracy, extreme, misses = evaluate(SECOND_ROUND + FRESH, embedder)
    print(f"second round + fresh: accuracy {accuracy:.3f}", *misses, sep="\n")
    assert accuracy >= MIN_ACCURACY, misses
    assert extreme <= MAX_EXTREME_ERRORS, misses


def test_calibration_accuracy_without_embedder():
    accuracy, extreme, misses = evaluate(LABELLED, None)
    print(f"lexical only: accuracy {accuracy:.3f} on {len(LABELLED)} pairs", *misses, sep="\n")
    assert accuracy >= 0.85, misses
    assert extreme <= 1, misses


def test_sentence_spans_and_content_words_for_other_readers():
    from rag.citations import content_words, sentence_spans

    text = "Dr. Smith approved it. Receipts are due in 3.5 days!\nThe source code is public."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Dr. Smith approved it.",
        "Receipts are due in 3.5 days!",
        "The source code is public.",
    ]
    assert "sourc" not in content_words("the source code")  # a claim's framing word
    assert content_words("the source code", stopwords=frozenset({"the"})) == ("sourc", "cod")
