"""The manuals development set: its data file, its metrics, and fetching its PDFs.

No test here downloads a package: fetching is exercised with the download replaced at the
package boundary (``_package_member``), and the check of every label against the parsed PDFs
runs only when the manuals are already in the cache (``bench/manuals.py`` puts them there);
otherwise it is skipped.
"""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from evaluation import manuals
from evaluation.manuals import (
    ManualsError,
    bootstrap_interval,
    labels_check,
    manuals_fetch,
    manuals_load,
    page_hit,
    page_key,
    page_sentences,
    questions_select,
    quotes_page,
)


@pytest.fixture(scope="module")
def data():
    return manuals_load()


def test_the_question_file_is_well_formed(data):
    kinds = [q.kind for q in data.questions]
    assert kinds.count("heading") >= 40
    assert kinds.count("reworded") == kinds.count("heading")  # half and half
    assert kinds.count("unanswerable") >= 10
    assert len(data.manuals) >= 3
    assert len({m.package for m in data.manuals}) == len(data.manuals)
    by_name = {m.name: m for m in data.manuals}
    for q in data.questions:
        if q.kind == "unanswerable":
            assert q.manual is None and q.pages == ()
            continue
        manual = by_name[q.manual]  # every manual named is in the manifest
        assert q.pages and all(type(p) is int and 1 <= p <= manual.pages for p in q.pages), q.id
        assert q.evidence, q.id
        assert not set(q.pages) & manual.navigation_pages, q.id  # answers are on content pages
    for manual in data.manuals:
        assert manual.navigation_pages, manual.name  # contents pages are labelled
        # every manual is asked both ways
        asked = {q.kind for q in data.questions if q.manual == manual.name}
        assert asked == {"heading", "reworded"}


def test_reworded_questions_do_not_copy_a_heading(data):
    headings = {q.question.lower() for q in data.questions if q.kind == "heading"}
    for q in data.questions:
        if q.kind == "reworded":
            assert not any(h in q.question.lower() for h in headings if len(h) > 12), q.id


def write_set(tmp_path: Path, *, questions: list[dict]) -> Path:
    manual = {
        "name": "guide",
        "document": "guide.pdf",
        "package": "guide-doc",
        "version": "1.0",
        "member": "usr/share/doc/guide.pdf",
        "sha256": "a" * 64,
        "pages": 10,
        "title": "Guide",
        "toolchain": "test",
        "navigation_pages": [2],
    }
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"manuals": [manual], "questions": questions}))
    return path


QUESTION = {"id": "q1", "manual": "guide", "kind": "heading", "question": "Intro", "pages": [3]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"manual": "other"}, "not in the manifest"),
        ({"pages": [0]}, "1-based page numbers"),
        ({"pages": [11]}, "1-based page numbers"),
        ({"pages": []}, "1-based page numbers"),
        ({"pages": ["3"]}, "1-based page numbers"),
        ({"kind": "chapter"}, "is not one of"),
        ({"kind": "unanswerable"}, "names no manual"),
    ],
)
def test_a_malformed_question_is_refused(tmp_path, change, message):
    path = write_set(tmp_path, questions=[{**QUESTION, **change}])
    with pytest.raises(ManualsError, match=message):
        manuals_load(path)


def test_relevance_keys_are_document_and_page(tmp_path):
    data = manuals_load(write_set(tmp_path, questions=[{**QUESTION, "pages": [3, 4]}]))
    assert data.relevant(data.questions[0]) == {"guide.pdf#3", "guide.pdf#4"}
    assert data.navigation_keys() == {"guide.pdf#2"}
    assert page_key(SimpleNamespace(document_name="guide.pdf", page=3)) == "guide.pdf#3"


def hit(document: str, page: int):
    return SimpleNamespace(document_name=document, page=page)


def test_page_hit_needs_the_right_manual_and_page_within_k():
    relevant = frozenset({"a.pdf#5", "a.pdf#6"})
    hits = [hit("b.pdf", 5), hit("a.pdf", 2), hit("a.pdf", 6)]
    assert not page_hit(hits, relevant, 1)  # page 5 of another manual is no hit
    assert not page_hit(hits, relevant, 2)
    assert page_hit(hits, relevant, 3)
    assert not page_hit([], relevant, 5)


PAGE = (
    "2.5 Missing values\nIn some cases the components of a vector may not be com-\n"
    "pletely known. When an element or value is   “not available” or a missing value in\n"
    "the statistical sense, a place within a vector may be reserved for it. See below."
)


def test_page_sentences_are_long_sentences_with_whitespace_normalised():
    sentences = page_sentences(PAGE)
    assert "See below." not in sentences  # too short to count as a quote
    assert (
        "When an element or value is “not available” or a missing value in the statistical "
        "sense, a place within a vector may be reserved for it." in sentences
    )


def test_an_answer_quotes_the_page_when_it_holds_a_whole_sentence_of_it():
    quoted = (
        "When an element or value is “not available” or a missing value in the\n statistical "
        "sense, a place within a vector may be reserved for it. [1]"
    )
    assert quotes_page(quoted, [PAGE])
    with_marker_inside = quoted.replace("reserved for it.", "reserved for it [1].")
    assert quotes_page(with_marker_inside, [PAGE])  # citation markers are ignored
    assert not quotes_page("2.5 Missing values", [PAGE])  # a heading is not an answer
    assert not quotes_page("a place within a vector may be reserved", [PAGE])  # a fragment
    assert not quotes_page(quoted, ["another page entirely, with its own words in it."])
    assert not quotes_page("", [PAGE])


def test_a_quote_counts_when_its_page_sentence_runs_on_from_a_heading_line():
    page = "2.12 Text object methods The text object methods shown above relate to basic geometry."
    answer = (
        "**Quoted from your documents.** Here is what matches:\n\n"
        "> The text object methods shown above relate to basic geometry. [3]\n> — *guide.pdf*"
    )
    assert quotes_page(answer, [page])
    assert not quotes_page("> The text object methods shown above relate to [3]", [page])
    assert not quotes_page(answer, ["The text object methods shown below are different."])


def test_bootstrap_interval_is_fixed_and_brackets_the_mean():
    values = [1.0] * 30 + [0.0] * 10
    low, high = bootstrap_interval(values)
    assert low < 0.75 < high
    assert 0.55 < low and high < 0.9
    assert bootstrap_interval(values) == [low, high]  # same seed, same interval
    assert bootstrap_interval([1.0, 1.0, 1.0]) == [1.0, 1.0]
    assert bootstrap_interval([]) is None


def test_labels_check_finds_evidence_despite_lost_spaces_and_hyphens(tmp_path):
    data = manuals_load(
        write_set(
            tmp_path,
            questions=[
                {**QUESTION, "id": "ok", "evidence": "completely known"},
                {**QUESTION, "id": "moved", "evidence": "reserved for it"},
            ],
        )
    )
    texts = {"guide.pdf#3": "may not be com-\npletelyknown.", "guide.pdf#4": "reserved for it"}
    assert labels_check(data, texts) == ["moved: 'reserved for it' is not on pages [3]"]


def test_questions_select_takes_the_first_of_each_kind(data):
    chosen = questions_select(data.questions, limit=2)
    assert [q.kind for q in chosen].count("heading") == 2
    assert [q.kind for q in chosen].count("unanswerable") == 2
    assert len(chosen) == 6
    only = questions_select(data.questions, kinds=("reworded",))
    assert {q.kind for q in only} == {"reworded"} and len(only) == 40


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------


def one_manual(tmp_path, content: bytes):
    path = write_set(tmp_path, questions=[QUESTION])
    raw = json.loads(path.read_text())
    raw["manuals"][0]["sha256"] = hashlib.sha256(content).hexdigest()
    path.write_text(json.dumps(raw))
    return manuals_load(path).manuals


def test_a_cached_manual_is_used_without_downloading(tmp_path, monkeypatch):
    content = b"%PDF-1.4 the labelled edition"
    listed = one_manual(tmp_path, content)
    cache = tmp_path / "cache"
    target = manuals.manual_path(listed[0], cache)
    target.parent.mkdir(parents=True)
    target.write_bytes(content)

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although cached")

    monkeypatch.setattr(manuals, "_package_member", no_download)
    assert manuals_fetch(listed, cache=cache) == {"guide": target}


def test_another_edition_is_refused_unless_allowed(tmp_path, monkeypatch):
    listed = one_manual(tmp_path, b"%PDF-1.4 the labelled edition")
    cache = tmp_path / "cache"
    monkeypatch.setattr(manuals, "_package_member", lambda manual, **kw: b"%PDF-1.4 a new one")
    with pytest.raises(ManualsError, match="its pages may have moved"):
        manuals_fetch(listed, cache=cache)
    assert not manuals.manual_path(listed[0], cache).exists()  # nothing wrong is cached
    warnings = []
    paths = manuals_fetch(listed, cache=cache, allow_changed=True, log=warnings.append)
    assert paths["guide"].read_bytes() == b"%PDF-1.4 a new one"
    assert any("using it anyway" in w for w in warnings)


def test_fetching_without_apt_get_says_where_to_put_the_file(tmp_path, monkeypatch):
    listed = one_manual(tmp_path, b"%PDF-1.4")
    monkeypatch.setattr(manuals.shutil, "which", lambda tool: None)
    with pytest.raises(ManualsError, match="apt-get was not found") as error:
        manuals_fetch(listed, cache=tmp_path / "cache")
    assert str(manuals.manual_path(listed[0], tmp_path / "cache")) in str(error.value)


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_MANUALS_CACHE", str(tmp_path))
    assert manuals.cache_dir() == tmp_path


# ---------------------------------------------------------------------------------------------
# Every label against the app's parser (only when the manuals are cached)
# ---------------------------------------------------------------------------------------------


def cached_paths(data):
    cache = manuals.cache_dir()
    paths = {m.name: manuals.manual_path(m, cache) for m in data.manuals}
    if not all(p.is_file() for p in paths.values()):
        pytest.skip(f"the manuals are not cached in {cache} (bench/manuals.py fetches them)")
    return paths


def test_every_label_is_on_its_pages_as_the_app_parses_them(data):
    from rag.parsing import parse

    texts = {}
    for manual in data.manuals:
        path = cached_paths(data)[manual.name]
        assert manuals.file_sha256(path) == manual.sha256
        parsed = parse(path.read_bytes(), manual.document)
        assert parsed.page_count == manual.pages
        texts.update({f"{manual.document}#{p.number}": p.text for p in parsed.pages})
    assert labels_check(data, texts) == []
    headings = [q for q in data.questions if q.kind == "heading"]
    for q in headings:  # a heading question's first page holds the heading itself
        page = manuals._squash(texts[f"{data.manual(q.manual).document}#{q.pages[0]}"])
        assert manuals._squash(q.question) in page, q.id


# ---------------------------------------------------------------------------------------------
# `eval retrieval --dataset manuals`
# ---------------------------------------------------------------------------------------------


def test_the_manuals_dataset_asks_the_answerable_questions_judged_by_page(data, monkeypatch):
    import contextlib

    from evaluation.datasets import dataset_open

    retriever = object()

    @contextlib.contextmanager
    def indexed(**kwargs):  # the real one fetches and embeds three manuals: minutes
        yield manuals.IndexedManuals(
            data=data,
            questions=list(data.questions),
            retriever=retriever,
            collection=manuals.COLLECTION,
            page_texts={},
            navigation_keys=data.navigation_keys(),
            chunks={m.name: {"content": 1, "navigation": 0} for m in data.manuals},
            label_problems=[],
        )

    monkeypatch.setattr(manuals, "manuals_open", indexed)
    with dataset_open("manuals", limit=3) as dataset:
        assert dataset.name == "manuals"
        assert dataset.retriever is retriever
        assert dataset.collections == ["manuals"]
        assert dataset.relevance_key is page_key
        assert len(dataset.cases) == 6  # the first 3 heading and 3 reworded questions
        first = data.questions[0]
        assert dataset.cases[0].query == first.question
        assert dataset.cases[0].relevant == data.relevant(first)
        assert all(case.relevant for case in dataset.cases)  # no unanswerable question


def test_the_manuals_dataset_has_no_reference_answers():
    from evaluation.datasets import DatasetError, dataset_open

    with pytest.raises(DatasetError, match="no reference answers"):
        with dataset_open("manuals", answers=True):
            pass
